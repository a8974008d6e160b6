"""Uniform quantisation of the integer wavelet coefficients of ``image-wavelet``, in integers only.

One global step ``D`` (an integer in 1/16-pixel units: the header's ``step``, ``Delta = D / 16`` pixels) is turned
into one step per subband and colour channel, ``S = max(2**16, (D * IG + 128) >> 8)`` in 1/65536 coefficient
units (coefficients are in 1/8 pixel), where ``IG = round(2**23 / g)`` and ``g`` is the band's synthesis gain (the
L2 norm of its basis function in RGB: :func:`nctk.codec.image.transform.band_gains` times the colour norm). So every
band's error counts the same in pixels (one ``Delta`` is MSE-balanced, as in the design study), and ``q * D`` is a
coefficient's dequantised value in orthonormal 1/16-pixel units whatever its band. ``S`` never falls below one
coefficient unit; at ``D = 1`` every band's step is one unit (all gains exceed 1/2), so the finest step is
lossless.

Quantisation rounds half away from zero: ``q = sign(c) * ((|c| << 16) + S // 2) // S``; dequantisation
``c' = sign(q) * ((|q| * S + 2**15) >> 16)``. Quality ``Q`` in [1, 8] maps to ``Delta = 2 ** (8 - (Q - 1) * 5 / 7)``
pixels (256 down to 8), ``D = round(16 * Delta)``: the encoder's float arithmetic ends in the integer it writes.
"""

from __future__ import annotations

import numpy as np

from nctk.codec.image.transform import LEVELS

__all__ = ["DEFAULT_QUALITY", "STEP_MAX", "detail_steps", "dequantise", "log2_q8", "low_steps", "quantise",
           "step_for_quality"]

STEP_FRAC = 16  # steps S carry 16 fractional bits
STEP_MAX = (1 << 16) - 1  # largest header step D (4096 pixels)
DEFAULT_QUALITY = 4.0
# round(2**23 / gain) per colour (Y, Co, Cg) of the coarsest low band, and per level 1..5 (finest first) of the
# detail bands LH, HL, HH: the integer constants that define the steps (derived by transform.band_gains).
IG_LOW = (1132850, 2774904, 2265700)
IG_DETAIL = (
    ((4789107, 11730868, 9578213), (4789107, 11730868, 9578213), (6152084, 15069466, 12304167)),
    ((3670384, 8990567, 7340768), (3670384, 8990567, 7340768), (5007380, 12265525, 10014759)),
    ((2651162, 6493994, 5302324), (2651162, 6493994, 5302324), (3524868, 8634127, 7049735)),
    ((1966590, 4817142, 3933180), (1966590, 4817142, 3933180), (2578961, 6317138, 5157921)),
    ((1479428, 3623843, 2958855), (1479428, 3623843, 2958855), (1932035, 4732501, 3864071)),
)
assert len(IG_DETAIL) == LEVELS


def step_for_quality(quality: float) -> int:
    """The header step ``D`` (1/16 pixel) of a quality in [1, 8]: ``round(16 * 2 ** (8 - (quality - 1) * 5 / 7))``."""
    delta = 2.0 ** (8.0 - (float(quality) - 1.0) * 5.0 / 7.0)
    return int(min(STEP_MAX, max(1, round(16.0 * delta))))


def _step(d: int, ig: int) -> int:
    return max(1 << STEP_FRAC, (d * ig + 128) >> 8)


def low_steps(d: int) -> np.ndarray:
    """int64 ``(3,)``: the steps of the coarsest low band's Y, Co, Cg."""
    return np.array([_step(d, g) for g in IG_LOW], dtype=np.int64)


def detail_steps(d: int, level: int) -> np.ndarray:
    """int64 ``(9,)``: the steps of level ``level``'s (1 = finest) detail channels, band-major: LH Y, Co, Cg, HL
    Y, Co, Cg, HH Y, Co, Cg."""
    return np.array([_step(d, g) for band in IG_DETAIL[level - 1] for g in band], dtype=np.int64)


def _per_channel(steps: np.ndarray, ndim: int) -> np.ndarray:
    return steps.reshape((-1,) + (1,) * 2) if ndim >= 3 else steps


def quantise(c: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """int64 indices of coefficients ``c`` (``(..., channels, h, w)``) with one step per channel."""
    s = _per_channel(steps, c.ndim)
    a = np.abs(c) << STEP_FRAC
    return np.sign(c) * ((a + (s >> 1)) // s)


def dequantise(q: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """int64 coefficients of indices ``q`` (``(..., channels, h, w)``) with one step per channel."""
    s = _per_channel(steps, q.ndim)
    return np.sign(q) * ((np.abs(q) * s + (1 << (STEP_FRAC - 1))) >> STEP_FRAC)


def log2_q8(d: int) -> int:
    """``floor(256 * log2(d))`` for an integer ``d >= 1``, exactly (no floats: the bit length of ``d**256``)."""
    if d < 1:
        raise ValueError("log2_q8 needs d >= 1")
    return (d**256).bit_length() - 1
