"""Classical codecs that rate-distortion sweeps compare against (harness codecs, not ``.nctk`` file codecs).

Importing this package loads neither numpy nor Pillow: the registry can be listed cheaply, and each codec
imports its library when it is asked whether it is available or to encode.
"""

from nctk.rd.baselines.images import IMAGE_BASELINES, ImageCodec, available_ids, get

__all__ = ["IMAGE_BASELINES", "ImageCodec", "available_ids", "get"]
