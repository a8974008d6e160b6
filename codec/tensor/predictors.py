"""Predictors over a 2-D grid of quantiser indices: the residuals the encoder codes and their inverse.

Prediction works in integer index space on the indices themselves (which are the decoder's reconstruction,
exactly), so encoder and decoder agree on every machine without any float arithmetic. A tensor is viewed
as ``rows x cols`` (its last axis is ``cols``). Three predictors (docs/FORMAT.md gives the exact rules):

- ``none``: the residual is the index; for weight-like data without spatial correlation.
- ``lorenzo``: 2-D Lorenzo with zeros outside the grid, ``q[i,j-1] + q[i-1,j] - q[i-1,j-1]`` (on one row:
  the previous value); its inverse is a 2-D prefix sum.
- ``interp``: hierarchical interpolation as in SZ3: anchors on a grid of stride ``S``, then for
  ``h = S/2 ... 1`` a pass along the last axis and a pass along the first, each target predicted from
  points of coarser passes: by the average of its two neighbours at distance ``h``, or by integer weights
  (1/4096 units) over a small stencil that the encoder fits per pass by least squares. Targets of a pass
  depend only on earlier passes, so both directions compute a whole pass at once with numpy slices (a
  Numba loop measured no faster here: the passes are memory-bound).

All arithmetic is int64 and exact; every prediction is clamped to ``+/-Q_MAX`` so residuals of valid
indices fit int32.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nctk.codec.tensor.quantizer import Q_MAX
from nctk.entropy.errors import FormatError

PREDICTORS = ("none", "lorenzo", "interp")
SHIFT = 12  # interpolation weights are integers in units of 2**-SHIFT
MAX_WEIGHT = 1 << 16  # |weight| limit: 16 taps * 2**16 * 2**32 stays far inside int64
MAX_OFFSET = 7  # |di|, |dj| limit of a stencil tap, in units of the pass's h
MAX_TAPS = 16
MIN_FIT = 256  # interior targets a pass needs before the encoder fits weights for it
FIT_SAMPLES = 1 << 14  # targets the least-squares fit looks at, evenly spaced

# Stencils the encoder fits (taps (di, dj) in units of h; docs/FORMAT.md, "interp"). A pass along the last
# axis ("A") sees the grid of stride 2h (di even, dj odd); a pass along the first axis ("B") sees rows of that
# grid at stride h (di odd). The 1-D stencils serve grids too thin for the 2-D ones.
STENCILS = {
    ("A", 2): ((0, -1), (0, 1), (-2, -1), (-2, 1), (2, -1), (2, 1), (0, -3), (0, 3), (-2, -3), (-2, 3), (2, -3),
               (2, 3)),
    ("B", 2): ((-1, 0), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1), (-3, 0), (3, 0), (-1, -2), (-1, 2), (1, -2),
               (1, 2)),
    ("A", 1): ((0, -1), (0, 1), (0, -3), (0, 3), (0, -5), (0, 5)),
    ("B", 1): ((-1, 0), (1, 0), (-3, 0), (3, 0), (-5, 0), (5, 0)),
}

Weights = dict[int, list[tuple[int, int, int]]]  # pass index -> taps (di, dj, weight)


# ------------------------------------------------------------------------------------------ the passes

def anchor_stride(rows: int, cols: int) -> int:
    """``S``: the smallest power of two >= max(rows - 1, cols - 1, 1)."""
    s = 1
    while s < max(rows - 1, cols - 1):
        s *= 2
    return s


def passes(rows: int, cols: int) -> list[tuple[int, str]]:
    """``(h, kind)`` of every interpolation pass in coding order: for h = S/2 .. 1, "A" then "B"."""
    out = []
    h = anchor_stride(rows, cols) // 2
    while h >= 1:
        out += [(h, "A"), (h, "B")]
        h //= 2
    return out


def _grids(q: np.ndarray, h: int, kind: str) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The known grid of a pass (a view of ``q``) and the slices of ``q`` that are its targets."""
    if kind == "A":
        return q[0::2 * h, 0::2 * h], (slice(0, None, 2 * h), slice(h, None, 2 * h))
    return q[0::2 * h, 0::h], (slice(h, None, 2 * h), slice(0, None, h))


def _tap_shift(kind: str, di: int, dj: int) -> tuple[int, int]:
    """Where tap (di, dj) (in units of the pass's h) of target (k, m) lies in the known grid: (k + a, m + b).

    Pass "A" targets (2hk, h + 2hm) and knows the grid of stride 2h (di even, dj odd); pass "B" targets
    (h + 2hk, hm) and knows rows of stride 2h at stride h (di odd)."""
    if kind == "A":
        return di // 2, (dj + 1) // 2
    return (di + 1) // 2, dj


def _interior(shifts, shape: tuple[int, int], kshape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Rows ``r0:r1`` and columns ``c0:c1`` of targets whose every tap shift lies inside the known grid."""
    amin, amax = min(a for a, _ in shifts), max(a for a, _ in shifts)
    bmin, bmax = min(b for _, b in shifts), max(b for _, b in shifts)
    return max(0, -amin), min(shape[0], kshape[0] - amax), max(0, -bmin), min(shape[1], kshape[1] - bmax)


def _predict(known: np.ndarray, shape: tuple[int, int], kind: str, taps) -> np.ndarray:
    """Predictions (int64, ``shape``) for a pass's targets from its ``known`` grid (docs/FORMAT.md,
    "interp"); ``taps`` are ``(di, dj, w)``, or empty/None for the two-neighbour rule everywhere."""
    rt, ct = shape
    rk, ck = known.shape
    known = known.astype(np.int64, copy=False)
    pred = np.empty(shape, dtype=np.int64)
    if kind == "A":  # targets with an upper neighbour inside the grid come first along the axis
        nh = min(ct, ck - 1)
        pred[:, :nh] = (known[:rt, :nh] + known[:rt, 1 : nh + 1]) >> 1
        pred[:, nh:] = known[:rt, nh:ct]
    else:
        nh = min(rt, rk - 1)
        pred[:nh, :] = (known[:nh, :ct] + known[1 : nh + 1, :ct]) >> 1
        pred[nh:, :] = known[nh:rt, :ct]
    if taps:
        shifts = [_tap_shift(kind, di, dj) for di, dj, _ in taps]
        r0, r1, c0, c1 = _interior(shifts, shape, known.shape)
        if r0 < r1 and c0 < c1:
            acc = np.zeros((r1 - r0, c1 - c0), dtype=np.int64)
            for (a, b), (_, _, w) in zip(shifts, taps, strict=True):
                acc += w * known[r0 + a : r1 + a, c0 + b : c1 + b]
            pred[r0:r1, c0:c1] = (acc + (1 << (SHIFT - 1))) >> SHIFT
    return np.clip(pred, -Q_MAX, Q_MAX, out=pred)


def _anchors(q: np.ndarray) -> tuple[slice, slice]:
    s = anchor_stride(*q.shape)
    return slice(0, None, s), slice(0, None, s)


# ------------------------------------------------------------------------------------- forward, inverse

def residuals(q: np.ndarray, kind: str, weights: Weights | None = None) -> np.ndarray:
    """The residuals of the index grid ``q`` (rows x cols) in coding order, as int32."""
    q = q.astype(np.int64, copy=False)
    if kind == "none":
        return q.astype(np.int32).reshape(-1)
    if kind == "lorenzo":
        p = np.zeros((q.shape[0] + 1, q.shape[1] + 1), dtype=np.int64)
        p[1:, 1:] = q
        return (q - p[1:, :-1] - p[:-1, 1:] + p[:-1, :-1]).astype(np.int32).reshape(-1)
    parts = [q[_anchors(q)].reshape(-1)]
    for p, (h, k) in enumerate(passes(*q.shape)):
        known, tgt = _grids(q, h, k)
        t = q[tgt]
        if t.size:
            parts.append((t - _predict(known, t.shape, k, (weights or {}).get(p))).reshape(-1))
    return np.concatenate(parts).astype(np.int32)


def reconstruct(r: np.ndarray, rows: int, cols: int, kind: str, weights: Weights | None = None) -> np.ndarray:
    """The index grid (int64, rows x cols) whose residuals are ``r`` (the inverse of :func:`residuals`)."""
    r = r.astype(np.int64, copy=False)
    if kind == "none":
        return r.reshape(rows, cols)
    if kind == "lorenzo":  # the inverse of a 2-D difference with zero padding is the 2-D prefix sum
        return np.cumsum(np.cumsum(r.reshape(rows, cols), axis=0), axis=1)
    q = np.zeros((rows, cols), dtype=np.int64)
    pos = 0
    for sl, n in _order(q):
        if sl is None:
            q[_anchors(q)] = r[:n].reshape(q[_anchors(q)].shape)
        else:
            p, h, k = sl
            known, tgt = _grids(q, h, k)
            shape = q[tgt].shape
            q[tgt] = r[pos : pos + n].reshape(shape) + _predict(known, shape, k, (weights or {}).get(p))
        pos += n
    return q


def _order(q: np.ndarray) -> Iterator[tuple[tuple[int, int, str] | None, int]]:
    """The interpolation's pieces in coding order: (None, anchor count), then ((pass, h, kind), targets)."""
    yield None, q[_anchors(q)].size
    for p, (h, k) in enumerate(passes(*q.shape)):
        n = q[_grids(q, h, k)[1]].size
        if n:
            yield (p, h, k), n


# ------------------------------------------------------------------------------------- fitting (encoder)

def fit_interp(q: np.ndarray) -> Weights:
    """Least-squares stencil weights per pass (encoder only: any fit is valid, only the integers count).

    A pass gets weights when it has at least MIN_FIT interior targets and the fitted weights beat the
    two-neighbour average on the sample (sum of absolute residuals)."""
    q = q.astype(np.int64, copy=False)
    out: Weights = {}
    for p, (h, k) in enumerate(passes(*q.shape)):
        known, tgt = _grids(q, h, k)
        t = q[tgt]
        for dim in (2, 1):
            stencil = STENCILS[(k, dim)]
            r0, r1, c0, c1 = _interior([_tap_shift(k, di, dj) for di, dj in stencil], t.shape, known.shape)
            if (r1 - r0) * (c1 - c0) < MIN_FIT:
                continue
            taps = _fit(known, t, k, stencil, (r0, r1, c0, c1))
            if taps:
                out[p] = taps
            break
    return out


def _fit(known: np.ndarray, t: np.ndarray, kind: str, stencil, box) -> list[tuple[int, int, int]] | None:
    r0, r1, c0, c1 = box
    n = (r1 - r0) * (c1 - c0)
    pick = np.linspace(0, n - 1, min(n, FIT_SAMPLES)).astype(np.int64)  # evenly spaced sample
    rows, cols = r0 + pick // (c1 - c0), c0 + pick % (c1 - c0)
    y = t[rows, cols].astype(np.float64)
    x = np.stack([known[rows + a, cols + b] for a, b in (_tap_shift(kind, di, dj) for di, dj in stencil)], axis=1)
    w, *_ = np.linalg.lstsq(x.astype(np.float64), y, rcond=None)
    wi = np.clip(np.rint(w * (1 << SHIFT)), -MAX_WEIGHT, MAX_WEIGHT).astype(np.int64)
    if not wi.any():
        return None
    fitted = np.clip((x.astype(np.int64) @ wi + (1 << (SHIFT - 1))) >> SHIFT, -Q_MAX, Q_MAX)
    a, b = _tap_shift(kind, *stencil[0]), _tap_shift(kind, *stencil[1])  # the two neighbours along the axis
    lo, hi = known[rows + a[0], cols + a[1]], known[rows + b[0], cols + b[1]]
    plain = (lo + hi) >> 1
    y = y.astype(np.int64)
    if np.abs(y - fitted).sum() >= np.abs(y - plain).sum():
        return None
    return [(di, dj, int(w)) for (di, dj), w in zip(stencil, wi, strict=True) if w]


# ------------------------------------------------------------------------------------- validation

def check_weights(value, rows: int, cols: int) -> Weights:
    """Weights from a file: ``[[pass, [[di, dj, w], ...]], ...]``, passes increasing; FormatError otherwise."""
    if not isinstance(value, list):
        raise FormatError("interp weights must be a list")
    kinds = passes(rows, cols)
    out: Weights = {}
    last = -1
    for entry in value:
        if (not isinstance(entry, list) or len(entry) != 2 or not _is_int(entry[0])
                or not last < entry[0] < len(kinds) or not isinstance(entry[1], list)
                or not 1 <= len(entry[1]) <= MAX_TAPS):
            raise FormatError(f"bad interp weights entry {str(entry)[:80]}")
        p, taps = entry
        kind = kinds[p][1]
        for tap in taps:
            if (not isinstance(tap, list) or len(tap) != 3 or not all(_is_int(v) for v in tap)
                    or max(abs(tap[0]), abs(tap[1])) > MAX_OFFSET or abs(tap[2]) > MAX_WEIGHT
                    or (kind == "A" and (tap[0] % 2 or not tap[1] % 2)) or (kind == "B" and not tap[0] % 2)):
                raise FormatError(f"bad interp tap {str(tap)[:40]} for pass {p} ({kind})")
        out[p] = [tuple(t) for t in taps]
        last = p
    return out


def weights_json(weights: Weights | None) -> list:
    """``weights`` as written in a file (see :func:`check_weights`)."""
    return [[p, [list(t) for t in weights[p]]] for p in sorted(weights or {})]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


__all__ = ["PREDICTORS", "check_weights", "fit_interp", "passes", "reconstruct", "residuals", "weights_json"]
