"""The codecs a rate-distortion sweep can measure: classical baselines for images, audio and tensors.

These are harness codecs (bytes in memory for measuring rate and distortion, not ``.nctk`` file codecs). Each
has an ``id``, a ``modality`` ("image", "audio" or "tensor"), a default sweep of ``qualities``, a
``quality_range``, ``available()`` (False when the library it needs is not installed: nothing is installed on
demand), ``version()`` (the libraries that make the bytes, recorded in results) and ``encode``/``decode``.

Importing this package loads neither numpy nor any codec library: the registries can be listed cheaply, and each
codec imports its library when it is asked whether it is available or to encode.
"""

from __future__ import annotations

from typing import Any

from nctk.entropy.errors import CodecError
from nctk.rd.baselines.audio import AUDIO_BASELINES, AudioCodec
from nctk.rd.baselines.images import IMAGE_BASELINES, ImageCodec
from nctk.rd.baselines.tensors import TENSOR_BASELINES, TensorCodec

__all__ = ["AUDIO_BASELINES", "BASELINES", "IMAGE_BASELINES", "TENSOR_BASELINES", "AudioCodec", "ImageCodec",
           "TensorCodec", "available_ids", "get"]

BASELINES: dict[str, Any] = {**IMAGE_BASELINES, **AUDIO_BASELINES, **TENSOR_BASELINES}
assert len(BASELINES) == len(IMAGE_BASELINES) + len(AUDIO_BASELINES) + len(TENSOR_BASELINES), "ids collide"


def modality_of(codec_id: str) -> str | None:
    """The modality of a registered codec id (without checking that it can run here), or None if unknown."""
    codec = BASELINES.get(codec_id)
    return None if codec is None else codec.modality


def available_ids(modality: str | None = None) -> list[str]:
    """Ids of the registered codecs this environment can run (of one modality if given), in registry order."""
    return [i for i, c in BASELINES.items() if (modality is None or c.modality == modality) and c.available()]


def get(codec_id: str) -> Any:
    """The registered, available codec ``codec_id``; otherwise CodecError listing the ids that can run here."""
    codec = BASELINES.get(codec_id)
    if codec is None:
        raise CodecError(f"unknown rd codec {codec_id!r}; available: {', '.join(available_ids()) or 'none'}")
    if not codec.available():
        needs = getattr(codec, "requires", "a library that is not installed")
        raise CodecError(f"rd codec {codec_id!r} is not available here (it needs {needs}); "
                         f"available: {', '.join(available_ids(codec.modality)) or 'none'}")
    return codec
