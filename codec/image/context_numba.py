"""Numba integer inference of a context network: the same integers as :mod:`.context_ref`, about 100x faster.

One kernel per layer, parallel over output channels: int16 feature maps (first-layer inputs fit 16 bits, later
ones 8), int32 accumulators (the model's load-time bounds guarantee ``|acc| < 2**31``, so no sum can wrap), the
requantisation in int64. Integer addition is associative, so the order of the taps, the vector width and the
number of threads cannot change a result: ``NUMBA_NUM_THREADS=1`` and ``=2`` give the same outputs (tested).
"""

from __future__ import annotations

import numpy as np

from nctk.codec.image.model import OUT_MAX, Net
from nctk.entropy.jit import njit, prange

__all__ = ["run"]


@njit(parallel=True, cache=True)
def _conv(x, weight, bias, mult, shift, last, out, pad_out):
    """``out[o, pad_out + y, pad_out + x]`` = layer output at (y, x) from the zero-padded input ``x``."""
    co, ci, k = weight.shape[0], weight.shape[1], weight.shape[2]
    h = x.shape[1] - (k - 1)
    w = x.shape[2] - (k - 1)
    for o in prange(co):
        acc = np.empty((h, w), dtype=np.int32)
        b = np.int32(bias[o])
        for y in range(h):
            for j in range(w):
                acc[y, j] = b
        for i in range(ci):
            for dy in range(k):
                for dx in range(k):
                    wv = weight[o, i, dy, dx]  # int16: int16 * int32 products stay 32-bit (vectorised 8 wide)
                    if wv == 0:
                        continue
                    for y in range(h):
                        row = x[i, y + dy]
                        for j in range(w):
                            acc[y, j] += wv * np.int32(row[j + dx])
        m = mult[o]
        s = shift[o]
        half = np.int64(1) << (s - 1)
        for y in range(h):
            for j in range(w):
                v = (np.int64(acc[y, j]) * m + half) >> s
                if last:
                    if v > OUT_MAX:
                        v = OUT_MAX
                    elif v < -OUT_MAX:
                        v = -OUT_MAX
                elif v > 255:
                    v = 255
                elif v < 0:
                    v = 0
                out[o, pad_out + y, pad_out + j] = v


def run(net: Net, x: np.ndarray, first_bias: np.ndarray) -> np.ndarray:
    """int32 ``(outputs, h, w)`` of ``net`` on integer inputs ``x`` ``(inputs, h, w)`` (each within int16)."""
    h, w = x.shape[-2:]
    r = net.layers[0].radius
    a = np.zeros((x.shape[0], h + 2 * r, w + 2 * r), dtype=np.int16)
    a[:, r : r + h, r : r + w] = x
    for i, layer in enumerate(net.layers):
        last = i == len(net.layers) - 1
        pad = 0 if last else net.layers[i + 1].radius
        co = layer.weight.shape[0]
        out = np.zeros((co, h + 2 * pad, w + 2 * pad), dtype=np.int32 if last else np.int16)
        bias = first_bias if i == 0 else layer.bias
        _conv(a, layer.weight16, bias, layer.mult, layer.shift, last, out, pad)
        a = out
    return a


def warm() -> None:
    """Compile (and cache) the kernel for both of its signatures, so a first decode pays no compilation."""
    from nctk.codec.image.model import Layer

    w = np.zeros((1, 1, 1, 1), dtype=np.int8)
    one = np.ones(1, dtype=np.int64)
    layer = Layer(w, one, one, one, w.astype(np.int16))
    run(Net("warm", (Layer(w, np.ones((1, 2, 1), np.int64), one, one, w.astype(np.int16)), layer), one),
        np.zeros((1, 2, 2), dtype=np.int64), one)


if __name__ == "__main__":  # `python -m nctk.codec.image.context_numba`: what `make` can run to warm the cache
    warm()
