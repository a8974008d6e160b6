"""The integer colour transform and the integer CDF 9/7 wavelet of ``image-wavelet``: exact on every machine.

Everything here maps integers to integers with int64 additions, multiplications by integer constants and
arithmetic right shifts (floor division by a power of two), so encoder and decoder compute the same coefficients
and the same reconstruction bit for bit, and each transform is exactly invertible (lifting: each step adds a
function of the other phase, which the inverse subtracts).

- Colour: pixels times ``2**GUARD``, then YCoCg-R (reversible), luma centred. The guard bits make YCoCg-R's halvings
  exact (it is then the linear YCoCg), keep the lifting's rounding far below any quantiser step and put coefficients
  in 1/8-pixel units; the decoder rounds them away only at the very end.
- Wavelet: the CDF 9/7 lifting steps (JPEG 2000's irreversible filter) with 16-bit fixed-point constants, each
  step rounded (``(A * (a + b) + 2**15) >> 16``), without the final K scaling (not invertible in integers: the
  quantiser's per-band steps absorb it). Whole-sample symmetric extension at both ends. ``LEVELS`` dyadic
  levels of a separable 2-D transform: rows (last axis) first, then columns.

Arrays carry any leading axes (``(..., C, H, W)``): a batch of crops transforms like one image. Heights and widths
must be multiples of ``2**LEVELS`` (:func:`pad` makes them so).
"""

from __future__ import annotations

import numpy as np

__all__ = ["GUARD", "LEVELS", "MULTIPLE", "analysis", "band_gains", "colour_forward", "colour_inverse", "pad",
           "synthesis", "synthesis_level"]

LEVELS = 5
MULTIPLE = 1 << LEVELS  # padded heights and widths are multiples of this
GUARD = 3  # pixels enter the colour transform times 2**GUARD (coefficients in 1/8-pixel units)
_CENTRE = 128 << GUARD
# CDF 9/7 lifting constants alpha, beta, gamma, delta (-1.586134342059924, -0.052980118572961, 0.882911075530934,
# 0.443506852043971) as round(c * 2**16): these integers, not the reals, define the transform.
LIFT = (-103949, -3472, 57862, 29066)
_SHIFT = 16
_HALF = 1 << (_SHIFT - 1)


# ------------------------------------------------------------------------------------------------ colour

def colour_forward(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``(..., H, W, 3)`` RGB (or ``(..., H, W, 1)`` grey) to int64 ``(..., 3, H, W)`` Y, Co, Cg.

    Pixels are first scaled by ``2**GUARD``, then YCoCg-R: ``Co = R - B; t = B + (Co >> 1); Cg = G - t;
    Y = t + (Cg >> 1) - 1024`` (on multiples of 8 every halving is exact: this is the linear YCoCg, times 8, luma
    centred). Grey is R = G = B: ``Y = 8 v - 1024``, ``Co = Cg = 0``.
    """
    x = np.moveaxis(np.asarray(rgb), -1, -3).astype(np.int64) << GUARD
    if x.shape[-3] == 1:
        y = x[..., 0, :, :] - _CENTRE
        z = np.zeros_like(y)
        return np.stack([y, z, z], axis=-3)
    r, g, b = x[..., 0, :, :], x[..., 1, :, :], x[..., 2, :, :]
    co = r - b
    t = b + (co >> 1)
    cg = g - t
    y = t + (cg >> 1) - _CENTRE
    return np.stack([y, co, cg], axis=-3)


def colour_inverse(ycc: np.ndarray, channels: int = 3) -> np.ndarray:
    """Inverse of :func:`colour_forward`, then the guard bits rounded away: uint8 ``(..., H, W, channels)``.

    ``t = Y + 1024 - (Cg >> 1); G = Cg + t; B = t - (Co >> 1); R = B + Co`` (exact on whatever integers come in),
    then ``(v + 4) >> 3`` clamped to 0..255 (lossy coefficients can land outside). ``channels=1`` gives the luma
    plane (grey images).
    """
    v = np.asanyarray(ycc).astype(np.int64, copy=False)
    y, co, cg = v[..., 0, :, :] + _CENTRE, v[..., 1, :, :], v[..., 2, :, :]
    if channels == 1:
        planes = y[..., None]
    else:
        t = y - (cg >> 1)
        g = cg + t
        b = t - (co >> 1)
        planes = np.stack([b + co, g, b], axis=-1)
    return np.clip((planes + (1 << (GUARD - 1))) >> GUARD, 0, 255).astype(np.uint8)


def pad(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` pixels edge-replicated on the bottom and right to multiples of :data:`MULTIPLE`."""
    h, w = rgb.shape[:2]
    ph, pw = -h % MULTIPLE, -w % MULTIPLE
    if ph == 0 and pw == 0:
        return rgb
    return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")


# ------------------------------------------------------------------------------------------------ wavelet

def _step(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """One rounded lifting term: ``(LIFT[k] * (a + b) + 2**15) >> 16`` (floor shift, int64)."""
    return (LIFT[k] * (a + b) + _HALF) >> _SHIFT


def _next(v: np.ndarray) -> np.ndarray:  # v[n + 1], mirrored at the end (whole-sample symmetric extension)
    return np.concatenate([v[..., 1:], v[..., -1:]], axis=-1)


def _prev(v: np.ndarray) -> np.ndarray:  # v[n - 1], mirrored at the start
    return np.concatenate([v[..., :1], v[..., :-1]], axis=-1)


def _forward_1d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level along the last axis (even length): (low, high)."""
    e, o = x[..., 0::2].copy(), x[..., 1::2].copy()
    o += _step(e, _next(e), 0)
    e += _step(_prev(o), o, 1)
    o += _step(e, _next(e), 2)
    e += _step(_prev(o), o, 3)
    return e, o


def _inverse_1d(e: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`_forward_1d`."""
    e, o = e.copy(), o.copy()
    e -= _step(_prev(o), o, 3)
    o -= _step(e, _next(e), 2)
    e -= _step(_prev(o), o, 1)
    o -= _step(e, _next(e), 0)
    x = np.empty_like(e, shape=e.shape[:-1] + (2 * e.shape[-1],))
    x[..., 0::2], x[..., 1::2] = e, o
    return x


def _cols(f, *arrays):
    """Apply a last-axis function along the second-to-last axis."""
    out = f(*(np.swapaxes(a, -1, -2) for a in arrays))
    if isinstance(out, tuple):
        return tuple(np.swapaxes(t, -1, -2) for t in out)
    return np.swapaxes(out, -1, -2)


def analysis(x: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """``(LL_LEVELS, [(LH, HL, HH) of level 1 (finest) .. LEVELS])`` of int64 ``(..., H, W)``.

    Level k bands are ``(..., H >> k, W >> k)``; ``LH`` is low along rows (width), high along columns.
    """
    v = np.asarray(x, dtype=np.int64)
    if v.shape[-1] % MULTIPLE or v.shape[-2] % MULTIPLE:
        raise ValueError(f"wavelet input {v.shape[-2:]} is not a multiple of {MULTIPLE}")
    details = []
    for _ in range(LEVELS):
        lo, hi = _forward_1d(v)
        ll, lh = _cols(_forward_1d, lo)
        hl, hh = _cols(_forward_1d, hi)
        details.append((np.ascontiguousarray(lh), np.ascontiguousarray(hl), np.ascontiguousarray(hh)))
        v = np.ascontiguousarray(ll)
    return v, details


def synthesis_level(ll: np.ndarray, lh: np.ndarray, hl: np.ndarray, hh: np.ndarray) -> np.ndarray:
    """Invert one level: the low band of the next finer level (or the image)."""
    lo = _cols(_inverse_1d, ll, lh)
    hi = _cols(_inverse_1d, hl, hh)
    return _inverse_1d(lo.copy(), hi.copy())  # C-ordered copies (kept as the caller's array type)


def synthesis(ll: np.ndarray, details: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Exact inverse of :func:`analysis`."""
    v = np.asarray(ll, dtype=np.int64)
    for lh, hl, hh in reversed(details):
        v = synthesis_level(v, lh, hl, hh)
    return v


# ---------------------------------------------------------------------------------- gains (informative)

def band_gains(size: int = 4096) -> dict[str, float]:
    """L2 norms of the linearised synthesis basis functions, in float64 (informative: how the integer constants
    of :mod:`.quantiser` were derived; decoders never call it).

    Keys ``"L1".."L5"`` (a low coefficient of level k, 1-D) and ``"H1".."H5"`` (high): a 2-D band's gain is the
    product of its two 1-D gains (separable basis), times the colour channel's synthesis norm (:data:`COLOUR_GAIN`).
    """
    c = [a / 2.0**_SHIFT for a in LIFT]

    def synth(e: np.ndarray, o: np.ndarray) -> np.ndarray:
        e = e - c[3] * (_prev(o) + o)
        o = o - c[2] * (e + _next(e))
        e = e - c[1] * (_prev(o) + o)
        o = o - c[0] * (e + _next(e))
        x = np.empty(2 * len(e))
        x[0::2], x[1::2] = e, o
        return x

    out = {}
    for k in range(1, LEVELS + 1):
        for band in "LH":
            n = size >> k
            unit, zero = np.zeros(n), np.zeros(n)
            unit[n // 2] = 1.0
            x = synth(unit, zero) if band == "L" else synth(zero, unit)
            for _ in range(k - 1):
                x = synth(x, np.zeros_like(x))
            out[f"{band}{k}"] = float(np.sqrt(np.sum(x * x)))
    return out


# Synthesis norms of the colour channels (columns of the linearised inverse YCoCg): Y (1, 1, 1), Co (1/2, 0, -1/2),
# Cg (-1/2, 1/2, -1/2).
COLOUR_GAIN = (3.0**0.5, 0.5**0.5, 0.75**0.5)
