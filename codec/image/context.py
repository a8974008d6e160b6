"""Running a context network over a whole band, strip by strip, with the reference or the Numba twin.

Outputs depend only on inputs within ``net.halo`` rows, so a band is processed in horizontal strips, each with
``halo`` extra rows of real input on both sides (zero padding only at the band's own edges): the result equals one
pass over the whole band exactly (tested), while memory stays bounded by the strip.
"""

from __future__ import annotations

import numpy as np

from nctk.codec.image.model import Net

__all__ = ["BACKENDS", "predict"]

BACKENDS = ("numba", "reference")
STRIP_ELEMENTS = 1 << 21  # feature-map elements per strip and layer (about 4 MB of int16)


def _impl(backend: str):
    if backend == "numba":
        from nctk.codec.image import context_numba

        return context_numba
    if backend == "reference":
        from nctk.codec.image import context_ref

        return context_ref
    raise ValueError(f"unknown context backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def strip_rows(net: Net, w: int) -> int:
    """Rows per strip for a band ``w`` wide."""
    widest = max(layer.weight.shape[0] for layer in net.layers)
    return max(16, STRIP_ELEMENTS // max(1, w * widest))


def predict(net: Net, x: np.ndarray, first_bias: np.ndarray, backend: str = "numba",
            rows: int | None = None) -> np.ndarray:
    """Integer ``(outputs, h, w)``: ``net`` on the integer inputs ``x`` ``(inputs, h, w)``, in strips of ``rows``."""
    impl = _impl(backend)
    h, w = x.shape[-2:]
    rows = rows or strip_rows(net, w)
    if h <= rows:
        return impl.run(net, x, first_bias)
    halo = net.halo
    out = np.empty((net.layers[-1].weight.shape[0], h, w), dtype=np.int32)  # outputs are within +-2**24
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        a, b = max(0, y0 - halo), min(h, y1 + halo)
        part = impl.run(net, x[:, a:b], first_bias)
        out[:, y0:y1] = part[:, y0 - a : y1 - a]
    return out
