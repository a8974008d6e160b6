"""Reference integer inference of a context network: the definition :mod:`.context_numba` must match exactly.

Plain numpy in int64, one kernel tap at a time (an integer matrix product over input channels per tap), zero
padding, then the layer's requantisation (:mod:`.model`). Slow and obviously correct; integers only.
"""

from __future__ import annotations

import numpy as np

from nctk.codec.image.model import OUT_MAX, Net

__all__ = ["run"]


def _requantise(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, last: bool) -> np.ndarray:
    m, s = mult.reshape(-1, 1, 1), shift.reshape(-1, 1, 1)
    v = (acc * m + (np.int64(1) << (s - 1))) >> s
    return np.clip(v, -OUT_MAX, OUT_MAX) if last else np.clip(v, 0, 255)


def run(net: Net, x: np.ndarray, first_bias: np.ndarray) -> np.ndarray:
    """int64 ``(outputs, h, w)`` of ``net`` on integer inputs ``x`` ``(inputs, h, w)``; ``first_bias`` from
    :meth:`Net.first_bias`."""
    a = np.asanyarray(x).astype(np.int64, copy=False)
    h, w = a.shape[-2:]
    for i, layer in enumerate(net.layers):
        r = layer.radius
        k = 2 * r + 1
        padded = np.pad(a, ((0, 0), (r, r), (r, r)))
        bias = first_bias if i == 0 else layer.bias
        acc = np.broadcast_to(bias.reshape(-1, 1, 1), (layer.weight.shape[0], h, w)).copy()
        wt = layer.weight.astype(np.int64)
        for dy in range(k):
            for dx in range(k):
                acc += np.tensordot(wt[:, :, dy, dx], padded[:, dy : dy + h, dx : dx + w], axes=(1, 0))
        a = _requantise(acc, layer.mult, layer.shift, i == len(net.layers) - 1)
    return a
