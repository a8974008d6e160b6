"""Sample-rate conversion shared by the audio codecs and the RD metrics: one polyphase resampler."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads with scipy on first use: importing the RD metrics stays light
    import numpy as np


def resample(x: np.ndarray, sample_rate: int, target: int, axis: int = 0) -> np.ndarray:
    """``x`` at ``target`` Hz along ``axis`` via ``scipy.signal.resample_poly`` (the exact rational factor,
    Kaiser-windowed FIR; float64 math, the input's float dtype back); unchanged if the rates are equal."""
    if sample_rate == target:
        return x
    from scipy.signal import resample_poly

    g = math.gcd(sample_rate, target)
    return resample_poly(x, target // g, sample_rate // g, axis=axis)


__all__ = ["resample"]
