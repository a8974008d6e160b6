"""Numba SEANet kernels: the arithmetic of :mod:`.seanet_ref`, bit for bit, at BLAS-like speed.

- :func:`conv1d`: output channels in blocks of 16 (two 8-lane vectors, :mod:`nctk.codec.kernels.simd`) times 4
  time steps, 8 accumulators in registers; every accumulator runs the reference's chain (bias, then ``k``
  outer, ``c`` inner, a rounded multiply then a rounded add: never fused). Which block or thread computes an
  element, and how wide the call is, never changes its value. Weights are packed once per layer
  (:func:`pack_conv`).
- :func:`elu`, :func:`lstm_layer`: the reference's float64 polynomial transcendentals (plain ``+ - * /``, bit
  casts for ``2**n``: no libm, so vectorised and scalar code give the same bits) and its LSTM step order.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from nctk.codec.audio.seanet_ref import (
    EXP_CLAMP,
    INV_FACT,
    LN2_HI,
    LN2_LO,
    LOG2E,
    SHIFT,
    SHIFT_BITS,
    TANH_CLAMP,
)
from nctk.codec.kernels.simd import f32x8, load8, splat8, store8
from nctk.entropy.jit import njit, prange

__all__ = ["BLOCK", "conv1d", "elu", "lstm_layer", "pack_conv", "pack_lstm"]

BLOCK = 16  # output channels per register block (two 8-lane vectors)
# conv1d and lstm_layer inline simd.py's intrinsics; Numba's cache keys on this file only, so this names
# simd.py's exact bytes (tests/test_encodec_kernels.py checks it): editing simd.py then means editing this file,
# which invalidates the cached machine code.
SIMD_SHA256 = "d7a2de18bff46383d935778acd1c16d3f0b38cd34d616f51aef30c6c83669f73"

# Below this many multiply-adds (or elements, for elu) a kernel runs on the calling thread alone: waking the
# other threads costs more than it saves, and far more (milliseconds) when another process keeps a core busy.
PARALLEL_MIN_WORK = 1 << 23

_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = INV_FACT


@intrinsic
def _mul8(typingctx, a, b):
    """Lane-wise float32 product, rounded (a plain ``fmul``: LLVM never fuses it with a later add)."""
    if not (a == b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])

    return f32x8(a, b), codegen


@intrinsic
def _add8(typingctx, a, b):
    """Lane-wise float32 sum, rounded."""
    if not (a == b == f32x8):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return f32x8(a, b), codegen


@intrinsic
def _f64_bits(typingctx, x):
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def _bits_f64(typingctx, i):
    if i != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


@njit(cache=True, inline="always")
def _expm1_parts(x):
    kd = x * LOG2E + SHIFT
    n = kd - SHIFT
    r = (x - n * LN2_HI) - n * LN2_LO
    p = _C13
    p = _C12 + r * p
    p = _C11 + r * p
    p = _C10 + r * p
    p = _C9 + r * p
    p = _C8 + r * p
    p = _C7 + r * p
    p = _C6 + r * p
    p = _C5 + r * p
    p = _C4 + r * p
    p = _C3 + r * p
    p = _C2 + r * p
    q = r + r * (r * p)
    two_n = _bits_f64((_f64_bits(kd) - SHIFT_BITS + 1023) << 52)
    return two_n, q


@njit(cache=True, inline="always")
def _clamp(x, lim):
    if x < -lim:
        return -lim
    if x > lim:
        return lim
    return x


@njit(cache=True, inline="always")
def _expm1(x):
    two_n, q = _expm1_parts(_clamp(x, EXP_CLAMP))
    return two_n * q + (two_n - 1.0)


@njit(cache=True, inline="always")
def _sigmoid(v):
    two_n, q = _expm1_parts(_clamp(-np.float64(v), EXP_CLAMP))
    return np.float32(1.0 / (1.0 + (two_n * q + two_n)))


@njit(cache=True, inline="always")
def _tanh(v):
    a = abs(np.float64(v))
    if a > TANH_CLAMP:
        a = TANH_CLAMP
    e = _expm1(-2.0 * a)
    t = -e / (2.0 + e)
    if v >= 0:
        return np.float32(t)
    return np.float32(-t)


@njit(parallel=True, cache=True, error_model="numpy")
def _elu(x, alpha, out):
    n = x.shape[0]
    for b in prange((n + 4095) // 4096):
        for i in range(b * 4096, min(n, b * 4096 + 4096)):
            v = x[i]
            m = np.float64(v)
            if m > 0.0:
                m = 0.0
            e = np.float32(alpha * _expm1(m))
            out[i] = v if v > 0 else e


def _launch(kernel, work: int, *args) -> None:
    """Run a parallel kernel, on one thread if ``work`` is small (same results either way)."""
    if work >= PARALLEL_MIN_WORK:
        kernel(*args)
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """:func:`.seanet_ref.elu`, same bits."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _launch(_elu, 8 * x.size, x.reshape(-1), np.float64(alpha), out.reshape(-1))
    return out


@njit(parallel=True, cache=True)
def _conv(x, wp, bias, cin, k_size, stride, dil, n_out, out):
    """x: flat (Tx, Cin); wp: flat (Ob, K, Cin, 16); bias: (Ob*16,); out: flat (n_out, Ob*16)."""
    nob = bias.shape[0] // 16
    cop = nob * 16
    nj = (n_out + 3) // 4
    for task in prange(nob * nj):
        ob = task // nj
        j0 = (task - ob * nj) * 4
        b0 = load8(bias, ob * 16)
        b1 = load8(bias, ob * 16 + 8)
        a00, a01, a10, a11, a20, a21, a30, a31 = b0, b1, b0, b1, b0, b1, b0, b1
        t0 = j0 * stride
        t1 = min(j0 + 1, n_out - 1) * stride  # a short last block recomputes the last step; never stored
        t2 = min(j0 + 2, n_out - 1) * stride
        t3 = min(j0 + 3, n_out - 1) * stride
        for k in range(k_size):
            r0 = (t0 + k * dil) * cin
            r1 = (t1 + k * dil) * cin
            r2 = (t2 + k * dil) * cin
            r3 = (t3 + k * dil) * cin
            wb = (ob * k_size + k) * cin * 16
            for c in range(cin):
                w0 = load8(wp, wb + c * 16)
                w1 = load8(wp, wb + c * 16 + 8)
                q = splat8(x[r0 + c])
                a00 = _add8(a00, _mul8(w0, q))
                a01 = _add8(a01, _mul8(w1, q))
                q = splat8(x[r1 + c])
                a10 = _add8(a10, _mul8(w0, q))
                a11 = _add8(a11, _mul8(w1, q))
                q = splat8(x[r2 + c])
                a20 = _add8(a20, _mul8(w0, q))
                a21 = _add8(a21, _mul8(w1, q))
                q = splat8(x[r3 + c])
                a30 = _add8(a30, _mul8(w0, q))
                a31 = _add8(a31, _mul8(w1, q))
        o = j0 * cop + ob * 16
        store8(out, o, a00)
        store8(out, o + 8, a01)
        if j0 + 1 < n_out:
            store8(out, o + cop, a10)
            store8(out, o + cop + 8, a11)
        if j0 + 2 < n_out:
            store8(out, o + 2 * cop, a20)
            store8(out, o + 2 * cop + 8, a21)
        if j0 + 3 < n_out:
            store8(out, o + 3 * cop, a30)
            store8(out, o + 3 * cop + 8, a31)


def pack_conv(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights (Cout, Cin, K) and bias in the kernel's layout: (Ob, K, Cin, 16) and (Ob*16,), Cout padded with
    zeros to a multiple of 16."""
    cout, cin, k_size = w.shape
    cop = -(-cout // BLOCK) * BLOCK
    wpad = np.zeros((cop, cin, k_size), np.float32)
    wpad[:cout] = w
    bpad = np.zeros(cop, np.float32)
    bpad[:cout] = b
    return np.ascontiguousarray(wpad.reshape(cop // BLOCK, BLOCK, cin, k_size).transpose(0, 3, 2, 1)), bpad


def conv1d(x: np.ndarray, packed: tuple[np.ndarray, np.ndarray], cout: int, stride: int = 1,
           dilation: int = 1) -> np.ndarray:
    """:func:`.seanet_ref.conv1d` with :func:`pack_conv`'s weights, same bits: (n_out, cout) float32."""
    wp, bias = packed
    x = np.ascontiguousarray(x, dtype=np.float32)
    nob, k_size, cin = wp.shape[:3]
    if x.ndim != 2 or x.shape[1] != cin:
        raise ValueError(f"conv1d: input (T, {cin}) expected, got {x.shape}")
    n_out = max(0, (x.shape[0] - (k_size - 1) * dilation - 1) // stride + 1)
    out = np.empty((n_out, nob * BLOCK), np.float32)
    if n_out:
        _launch(_conv, n_out * nob * BLOCK * cin * k_size, x.reshape(-1), wp.reshape(-1), bias, cin, k_size, stride,
                dilation, n_out, out.reshape(-1))
    return out if cout == nob * BLOCK else np.ascontiguousarray(out[:, :cout])


def pack_lstm(w_hh: np.ndarray) -> np.ndarray:
    """W_hh (4H, H) as (H/8, H, 4, 8): hidden units in blocks of 8, the four gates of a block side by side."""
    hidden = w_hh.shape[1]
    return np.ascontiguousarray(np.asarray(w_hh, np.float32).reshape(4, hidden // 8, 8, hidden).transpose(1, 3, 0, 2))


@njit(cache=True, error_model="numpy")
def _lstm(pre, whh, h, c, hidden, steps, out):
    """pre: flat (T, 4H) pre-activations (input projection with both biases); whh: flat pack_lstm;
    h, c: (H,) state, updated; out: flat (T, H). One thread: a step is ~1M multiply-adds, too little to
    share (the input projection, the bulk of the work over a chunk, runs in parallel in conv1d)."""
    hn = np.empty(hidden, np.float32)
    g = np.empty(32, np.float32)
    for t in range(steps):
        base = t * 4 * hidden
        for hb in range(hidden // 8):
            ai = load8(pre, base + hb * 8)
            af = load8(pre, base + hidden + hb * 8)
            ag = load8(pre, base + 2 * hidden + hb * 8)
            ao = load8(pre, base + 3 * hidden + hb * 8)
            wb = hb * hidden * 32
            for k in range(hidden):
                q = splat8(h[k])
                ai = _add8(ai, _mul8(load8(whh, wb + k * 32), q))
                af = _add8(af, _mul8(load8(whh, wb + k * 32 + 8), q))
                ag = _add8(ag, _mul8(load8(whh, wb + k * 32 + 16), q))
                ao = _add8(ao, _mul8(load8(whh, wb + k * 32 + 24), q))
            store8(g, 0, ai)
            store8(g, 8, af)
            store8(g, 16, ag)
            store8(g, 24, ao)
            for lane in range(8):
                j = hb * 8 + lane
                cj = _sigmoid(g[8 + lane]) * c[j] + _sigmoid(g[lane]) * _tanh(g[16 + lane])
                c[j] = cj
                hn[j] = _sigmoid(g[24 + lane]) * _tanh(cj)
        for j in range(hidden):
            h[j] = hn[j]
            out[t * hidden + j] = hn[j]


def lstm_layer(x: np.ndarray, w_ih_packed: tuple[np.ndarray, np.ndarray], whh_packed: np.ndarray,
               h: np.ndarray, c: np.ndarray) -> np.ndarray:
    """:func:`.seanet_ref.lstm`, same bits; ``w_ih_packed`` is :func:`pack_conv` of ``W_ih[:, :, None]`` with
    bias ``float32(b_ih + b_hh)``. Updates ``h`` and ``c`` in place; returns (T, H)."""
    hidden = h.shape[0]
    pre = conv1d(x, w_ih_packed, 4 * hidden)
    out = np.empty((x.shape[0], hidden), np.float32)
    if x.shape[0]:
        _lstm(pre.reshape(-1), whh_packed.reshape(-1), h, c, hidden, x.shape[0], out.reshape(-1))
    return out
