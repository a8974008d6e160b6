"""Tensors in rate-distortion sweeps: a file's tensors (:mod:`nctk.rd.tensor_files`) measured with one codec.

Rate is bits per value of the codec's real bytes over all the file's tensors, with the ratio to the raw payload
beside it; lossless codecs must give every tensor back bit for bit, lossy ones are scored with the maximum
absolute error, the relative Frobenius error and PSNR over the value range (:mod:`nctk.rd.tensor_measure`).
"""

from __future__ import annotations

from typing import Any

from nctk.entropy.errors import CodecError
from nctk.rd.tensor_files import load, probe

__all__ = ["load", "measure", "probe", "required"]

LOSSY_METRICS = ("max-abs-error", "rel-frobenius", "psnr-range")


def measure(codec: Any, tensors: list, quality: int, metrics: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Encode and decode every tensor; bytes, bits per value, ratio, the lossy codecs' errors and the timings."""
    from nctk.rd.tensor_measure import measure_tensors

    if metrics is not None:
        raise CodecError("tensor sweeps measure a fixed set (ratio; errors for lossy codecs): no metric choice")
    return measure_tensors(codec, tensors, quality)


def required(info: dict[str, Any], codec: Any, metrics: tuple[str, ...] | None = None) -> list[str]:
    """The numbers an item holds: rate and ratio, plus the error measures for a lossy codec."""
    return ["bytes", "bits_per_value", "ratio"] + ([] if codec.lossless else list(LOSSY_METRICS))
