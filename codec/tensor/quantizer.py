"""Error-bounded uniform scalar quantisation of float tensors: indices, exceptions, reconstruction.

A value ``x`` of a float dtype maps to an integer index ``q`` whose reconstruction
``dequantize(q) = round_dtype(q * step)`` lies within ``bound`` of ``x`` (checked in float64, after
rounding to the dtype). The step is a little under ``2 * bound`` (:func:`step_for`), which leaves room
for the final rounding in the common case; every element is still checked, and one that fails with its
nearest index and both neighbours, or that the quantiser must not touch (NaN, +/-Inf, -0.0, subnormals,
indices beyond ``+/-Q_MAX``), is an *exception*: kept exactly by the caller, with index 0 here.

Reconstruction is reproducible on every machine: ``q`` is an integer below 2**27 (exact in float64), the
product with ``step`` is one correctly rounded IEEE multiplication (no fused or reordered operations),
and rounding to the dtype is IEEE round-to-nearest-even (numpy's casts; bfloat16 by an exact integer
rounding of the float32 bits). Reconstructions that would be subnormal in the dtype are refused
(exceptions), so flush-to-zero settings of a machine cannot change a decoded value.
"""

from __future__ import annotations

import math

import numpy as np

SCHEMES = ("f16", "bf16", "f32", "f64")  # the float schemes of codec/tensor/fields.py this quantiser takes
Q_MAX = 1 << 27  # largest |index|: exact in float64; 2-D Lorenzo residuals stay within +/-2**29 (int32)
SLACK = 2.0**-10  # step = 2 * bound * (1 - SLACK): room for rounding to float32 up to |x| ~ 2**14 * bound
STEP_MIN, STEP_MAX = 2.0**-1000, 2.0**990  # q * step is then never subnormal nor infinite in float64
_UINT = {"f16": np.uint16, "bf16": np.uint16, "f32": np.uint32, "f64": np.uint64}
BLOCK = 1 << 16  # elements quantised at a time
_TINY = {"f16": 2.0**-14, "bf16": 2.0**-126, "f32": 2.0**-126, "f64": 2.0**-1022}  # smallest normal


def uint_dtype(scheme: str, order: str = "=") -> np.dtype:
    """The unsigned integer dtype holding one element of ``scheme`` in byte order ``order``."""
    return np.dtype(_UINT[scheme]).newbyteorder(order)


def to_float64(bits: np.ndarray, scheme: str) -> np.ndarray:
    """Values of native-order element bits (exact: every dtype here widens to float64 without rounding)."""
    with np.errstate(invalid="ignore"):  # signalling NaNs widen quietly (their bits are kept elsewhere)
        if scheme == "f16":
            return bits.view(np.float16).astype(np.float64)
        if scheme == "bf16":  # bfloat16 is the top half of a float32
            return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        if scheme == "f32":
            return bits.view(np.float32).astype(np.float64)
        return bits.view(np.float64).copy()


def from_float64(v: np.ndarray, scheme: str) -> np.ndarray:
    """Native-order element bits of float64 values rounded to the dtype (round to nearest, ties to even)."""
    with np.errstate(over="ignore", invalid="ignore"):
        if scheme == "f16":
            return v.astype(np.float16).view(np.uint16)
        if scheme == "bf16":
            # float64 -> float32 (IEEE), then float32 -> bfloat16 by rounding the low 16 bits to nearest
            # even: add 0x7FFF plus the lowest kept bit, truncate. Finite inputs cannot wrap a uint32
            # (at most 0xFF7FFFFF + 0x8000); a carry into the exponent gives the right power of two or Inf.
            f = v.astype(np.float32).view(np.uint32)
            return ((f + np.uint32(0x7FFF) + ((f >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
        if scheme == "f32":
            return v.astype(np.float32).view(np.uint32)
        return np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)


def step_for(bound: float) -> float:
    """The quantiser step for an absolute ``bound``: ``2 * bound * (1 - SLACK)`` kept in [STEP_MIN, STEP_MAX].

    A clamped step only makes more exceptions (a step above ``2 * bound`` fails the check); it never
    breaks the bound.
    """
    return float(min(max(2.0 * bound * (1.0 - SLACK), STEP_MIN), STEP_MAX))


def dequantize(q: np.ndarray, step: float, scheme: str) -> np.ndarray:
    """Native-order element bits of ``round_dtype(q * step)``: the decoder's reconstruction, bit for bit."""
    return from_float64(q.astype(np.float64) * step, scheme)


def quantize(bits: np.ndarray, scheme: str, bound: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """``(q, exceptions)`` for native-order element bits of dtype ``scheme``: int32 indices (0 at exceptions)
    whose reconstruction is within ``bound`` of each value, and the mask of elements kept exactly. Works a
    block at a time: the temporaries stay in cache (a whole-tensor pass is an order of magnitude slower)."""
    q = np.empty(bits.shape, dtype=np.int32)
    exc = np.empty(bits.shape, dtype=bool)
    for a in range(0, bits.size, BLOCK):
        q[a : a + BLOCK], exc[a : a + BLOCK] = _quantize_block(bits[a : a + BLOCK], scheme, bound, step)
    return q, exc


def _quantize_block(bits: np.ndarray, scheme: str, bound: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    x = to_float64(bits, scheme)
    tiny = _TINY[scheme]
    ax = np.abs(x)
    exc = ~np.isfinite(x) | ((x == 0) & np.signbit(x)) | ((ax > 0) & (ax < tiny))
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.rint(np.where(exc, 0.0, x) / step)
    exc |= ~(np.abs(t) <= Q_MAX)  # also catches an overflow to Inf
    q = np.where(exc, 0.0, t).astype(np.int64)
    bad = ~exc & ~_within(q, x, scheme, bound, step, tiny)
    if bad.any():  # rounding to the dtype moved it out: try the neighbouring indices, then give up
        idx = np.flatnonzero(bad)
        fixed = np.zeros(len(idx), dtype=bool)
        for d in (1, -1):
            cand = q[idx] + d
            ok = ~fixed & (np.abs(cand) <= Q_MAX) & _within(cand, x[idx], scheme, bound, step, tiny)
            q[idx[ok]] = cand[ok]
            fixed |= ok
        exc[idx[~fixed]] = True
        q[idx[~fixed]] = 0
    return q, exc


def _within(q: np.ndarray, x: np.ndarray, scheme: str, bound: float, step: float, tiny: float) -> np.ndarray:
    """Whether each reconstruction is within ``bound`` of ``x`` (in float64) and zero or normal in the dtype."""
    v = to_float64(dequantize(q, step, scheme), scheme)
    av = np.abs(v)
    with np.errstate(invalid="ignore"):
        return (np.abs(v - x) <= bound) & ((av == 0) | (av >= tiny))


def value_range(bits: np.ndarray, scheme: str) -> float:
    """``max - min`` of the finite values (float64), 0.0 when there are none: what ``rel_error`` scales."""
    lo, hi = math.inf, -math.inf
    for a in range(0, bits.size, BLOCK):
        x = to_float64(bits[a : a + BLOCK], scheme)
        x = x[np.isfinite(x)]
        if x.size:
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    if lo > hi:
        return 0.0
    r = hi - lo
    return r if math.isfinite(r) else float(np.finfo(np.float64).max)


__all__ = ["Q_MAX", "SCHEMES", "dequantize", "from_float64", "quantize", "step_for", "to_float64", "uint_dtype",
           "value_range"]
