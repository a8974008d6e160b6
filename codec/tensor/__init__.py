"""Tensor codecs: ``tensor-lossless`` (exact ``.safetensors`` / ``.npy`` files, numpy arrays, torch tensors).

- :mod:`nctk.codec.tensor.fields`: splitting elements into symbol fields (fast and reference twins).
- :mod:`nctk.codec.tensor.formats`: reading ``.npy`` / ``.safetensors`` layouts, arrays and tensors as bytes.
- :mod:`nctk.codec.tensor.lossless`: the codec and its section layout.

This module holds only the codecs' static metadata, so listing codecs imports nothing heavy.
"""

from nctk.codec.registry import CodecInfo

LOSSLESS = CodecInfo(
    id="tensor-lossless", version=1, modality="tensor", lossless=True, quality_range=None,
    extensions=(".safetensors", ".npy"),
    description=("lossless .safetensors/.npy files, numpy arrays and torch tensors: float exponents "
                 "and mantissa planes, integer byte planes, order-0 rANS; byte-identical round trip"),
    entry="nctk.codec.tensor.lossless:TensorLossless",
)
