"""Reference SEANet arithmetic: the definition every fast kernel (:mod:`.seanet_numba`) reproduces bit for bit.

Activations are float32 and **time-major**, ``(T, C)``. Every operation below is a fixed sequence of IEEE
float32 or float64 additions, multiplications and divisions, each rounded to nearest on its own (never fused
into an FMA), so one input gives one output on every machine and thread count. In particular the value of an
output element never depends on how many other elements the same call computes: that is what makes streaming
encoders give the codes of a whole-file encode exactly (torch's and MKL's convolutions and matrix products do
not have this property: their summation order changes with the width of the call).

- **Convolution** ``y[j, o] = b[o] + sum_k sum_c w[o, c, k] * x[j*stride + k*dilation, c]`` (no padding here;
  callers pad): the accumulator starts at the bias and takes the terms ``k = 0 .. K-1`` outer, ``c = 0 ..
  Cin-1`` inner, each product rounded to float32, then each addition.
- **Transcendentals** are computed in float64 by one polynomial (:func:`expm1_64`: Cody-Waite reduction
  ``x = n ln2 + r``, the Taylor series of ``expm1(r)`` to degree 13 by Horner, scaling by ``2**n`` built from
  bits) and rounded to float32 once: ELU ``alpha * expm1(x)`` for ``x <= 0``; ``sigmoid(x) = 1 / (1 +
  exp(-x))``; ``tanh(|x|) = -expm1(-2|x|) / (2 + expm1(-2|x|))`` with the sign of ``x``. They are within an
  ulp or so of the correctly rounded float32 value (no libm involved, so no platform differences).
- **LSTM** (torch's gate order i, f, g, o): the pre-activation of step ``t`` starts as the 1x1 convolution of
  ``x[t]`` with ``W_ih`` and bias ``float32(b_ih + b_hh)``, then takes ``W_hh[:, k] * h[k]`` for ``k = 0 ..
  H-1`` in order; ``c = float32(f * c) + float32(i * g)``, ``h = o * tanh(c)``, all float32.
"""

from __future__ import annotations

import numpy as np

LOG2E = 1.4426950408889634
SHIFT = 6755399441055744.0  # 1.5 * 2**52: x + SHIFT rounds x to an integer (|x| < 2**51)
SHIFT_BITS = 0x4338000000000000  # its float64 bit pattern
LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits (trailing zeros: n * LN2_HI is exact for |n| < 2**20)
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
# 1/k! for k = 2 .. 13, the Taylor coefficients of expm1 after r itself
INV_FACT = (1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880, 1 / 3628800,
            1 / 39916800, 1 / 479001600, 1 / 6227020800)
EXP_CLAMP = 200.0  # arguments are clamped to [-200, 200]: beyond it every result rounds to its float32 limit
TANH_CLAMP = 20.0


def expm1_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(2**n, expm1(r))`` with ``x = n ln2 + r``, ``|r| <= ln2/2``, for float64 ``x`` in [-200, 200]."""
    kd = x * LOG2E + SHIFT
    n = kd - SHIFT
    r = (x - n * LN2_HI) - n * LN2_LO
    p = INV_FACT[-1]
    for coef in INV_FACT[-2::-1]:
        p = coef + r * p
    q = r + r * (r * p)  # r * (1 + r * p), written so that q == r exactly when r * p underflows
    two_n = ((kd.view(np.int64) - SHIFT_BITS + 1023) << 52).view(np.float64)
    return two_n, q


def expm1_64(x: np.ndarray) -> np.ndarray:
    """``exp(x) - 1`` in float64 (x clamped to [-200, 200])."""
    x = np.clip(np.asarray(x, dtype=np.float64), -EXP_CLAMP, EXP_CLAMP)
    two_n, q = expm1_parts(x)
    return two_n * q + (two_n - 1.0)


def exp_64(x: np.ndarray) -> np.ndarray:
    """``exp(x)`` in float64 (x clamped to [-200, 200])."""
    x = np.clip(np.asarray(x, dtype=np.float64), -EXP_CLAMP, EXP_CLAMP)
    two_n, q = expm1_parts(x)
    return two_n * q + two_n


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """ELU in float32: ``x`` where ``x > 0``, else ``float32(alpha * expm1(x))``."""
    x = np.asarray(x, dtype=np.float32)
    neg = (np.float64(alpha) * expm1_64(np.minimum(x.astype(np.float64), 0.0))).astype(np.float32)
    return np.where(x > 0, x, neg)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``float32(1 / (1 + exp(-x)))``."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    return (1.0 / (1.0 + exp_64(-x))).astype(np.float32)


def tanh(x: np.ndarray) -> np.ndarray:
    """``tanh`` in float32 through ``expm1`` (accurate near zero)."""
    x = np.asarray(x, dtype=np.float32)
    e = expm1_64(-2.0 * np.minimum(np.abs(x.astype(np.float64)), TANH_CLAMP))
    t = -e / (2.0 + e)
    return np.where(x >= 0, t, -t).astype(np.float32)


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, dilation: int = 1) -> np.ndarray:
    """Valid convolution of time-major ``x`` (Tx, Cin) with ``w`` (Cout, Cin, K) (torch's layout) and bias
    ``b`` (Cout,): ``(n_out, Cout)`` float32 with ``n_out = (Tx - (K-1)*dilation - 1) // stride + 1``."""
    x = np.asarray(x, dtype=np.float32)
    w = np.asarray(w, dtype=np.float32)
    cout, cin, k_size = w.shape
    n_out = max(0, (x.shape[0] - (k_size - 1) * dilation - 1) // stride + 1)
    acc = np.broadcast_to(np.asarray(b, dtype=np.float32), (n_out, cout)).copy()
    rows = np.arange(n_out) * stride
    for k in range(k_size):
        xk = x[rows + k * dilation]  # (n_out, Cin)
        for c in range(cin):
            acc = acc + xk[:, c : c + 1] * w[None, :, c, k]  # product rounded, then the sum: float32 each
    return acc


def lstm(x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray,
         h: np.ndarray | None = None, c: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One LSTM layer over ``x`` (T, In) from state ``(h, c)`` (zeros if None): ``(out (T, H), h, c)``."""
    hidden = w_hh.shape[1]
    h = np.zeros(hidden, np.float32) if h is None else np.asarray(h, np.float32).copy()
    c = np.zeros(hidden, np.float32) if c is None else np.asarray(c, np.float32).copy()
    bias = (np.asarray(b_ih, np.float32) + np.asarray(b_hh, np.float32)).astype(np.float32)
    pre = conv1d(x, np.asarray(w_ih, np.float32)[:, :, None], bias)
    w_hh = np.asarray(w_hh, np.float32)
    out = np.empty((x.shape[0], hidden), np.float32)
    for t in range(x.shape[0]):
        acc = pre[t].copy()
        for k in range(hidden):
            acc = acc + w_hh[:, k] * h[k]
        i, f, g, o = (acc[q * hidden : (q + 1) * hidden] for q in range(4))
        c = f32_add(sigmoid(f) * c, sigmoid(i) * tanh(g))
        h = (sigmoid(o) * tanh(c)).astype(np.float32)
        out[t] = h
    return out, h, c


def f32_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.asarray(a, np.float32) + np.asarray(b, np.float32)).astype(np.float32)
