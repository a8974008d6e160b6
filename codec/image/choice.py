"""Table choice of ``image-wavelet``: a network's integer outputs to (table index, base), in integers only.

A coefficient's index ``q`` is coded as ``q - base`` with table ``j * n_frac + f`` of the model's frozen set, the
same convention as :class:`nctk.entropy.tables.ParametricFamily` (table ``(j, f)``: a distribution of scale
``2 ** ((log2_scale_min_q8 + j * 2**scale_shift) / 256)`` centred at ``(f + 1/2) / n_frac`` above ``base``). From the
network's mean ``mu4`` (1/16 pixel) and log2 scale ``l8`` (1/256, pixels), with ``D`` the header step (1/16 pixel):

- ``m = floor(mu4 * n_frac / D)`` (the mean in units of the step, times ``n_frac``), clamped to +-2**28;
  ``base = m >> log2(n_frac)``, ``f = m & (n_frac - 1)``;
- ``lq = l8 - (log2_q8(D) - 1024)`` (256 log2 of the scale in units of the step);
  ``j = clamp((lq - log2_scale_min_q8 + 2**(scale_shift-1)) >> scale_shift, 0, n_scales - 1)``: the nearest scale.

Integer floor division and shifts only: every machine picks the same table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nctk.codec.image.quantiser import log2_q8

__all__ = ["Grid", "choose"]

MEAN_MAX = 1 << 28
LOG2_16_Q8 = 1024  # 256 * log2(16): log2_q8(D) - 1024 is 256 log2 of the step in pixels


@dataclass(frozen=True)
class Grid:
    """How tables are laid out: ``n_scales`` scales ``2**(scale_shift - 8)`` octaves apart from
    ``2**(log2_scale_min_q8 / 256)``, each with ``n_frac`` mean fractions (a power of two)."""

    log2_scale_min_q8: int = -1024  # 2**-4
    scale_shift: int = 5  # 8 scales per octave
    n_scales: int = 97  # up to 2**8
    n_frac: int = 16

    @classmethod
    def from_json(cls, obj: dict) -> Grid:
        """Parse and check a ``model.json`` grid; ValueError if implausible."""
        if not isinstance(obj, dict) or set(obj) != {"log2_scale_min_q8", "scale_shift", "n_scales", "n_frac"}:
            raise ValueError("grid needs exactly log2_scale_min_q8, scale_shift, n_scales, n_frac")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in obj.values()):
            raise ValueError("grid values must be integers")
        g = cls(**obj)
        if (not -4096 <= g.log2_scale_min_q8 <= 4096 or not 1 <= g.scale_shift <= 12 or not 2 <= g.n_scales <= 1024
                or g.n_frac < 1 or g.n_frac > 256 or g.n_frac & (g.n_frac - 1)):
            raise ValueError(f"implausible grid {obj}")
        return g

    def as_json(self) -> dict:
        """The ``model.json`` form."""
        return {"log2_scale_min_q8": self.log2_scale_min_q8, "scale_shift": self.scale_shift,
                "n_scales": self.n_scales, "n_frac": self.n_frac}


def choose(mu4: np.ndarray, l8: np.ndarray, d: int, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """``(table indexes int32, base int64)`` for network outputs ``mu4``, ``l8`` (integer arrays) at step ``d``."""
    fbits = grid.n_frac.bit_length() - 1
    m = np.clip(np.floor_divide(mu4.astype(np.int64) * grid.n_frac, d), -MEAN_MAX, MEAN_MAX)
    base = m >> fbits
    frac = m & (grid.n_frac - 1)
    lq = l8.astype(np.int64) - (log2_q8(d) - LOG2_16_Q8)
    j = np.clip((lq - grid.log2_scale_min_q8 + (1 << (grid.scale_shift - 1))) >> grid.scale_shift, 0,
                grid.n_scales - 1)
    return (j * grid.n_frac + frac).astype(np.int32), base
