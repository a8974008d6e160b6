"""Bjøntegaard deltas between two rate-quality curves: the average rate saving at equal quality (BD-rate) and
the average quality gain at equal rate (BD-quality, e.g. BD-PSNR).

Each curve is interpolated piecewise-cubically and shape-preservingly (PCHIP, as in the "pchip" variant of the
JVET/VCEG reference sheet and the ``bjontegaard`` package): log-rate as a function of quality for BD-rate,
quality as a function of log-rate for BD-quality. The gap between the two interpolants is averaged over the
range where both curves have points; nothing is extrapolated. ``BDResult`` reports that range and how much of
each curve it covers, since a small overlap makes the number mean little.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nctk.entropy.errors import NctkError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike


class BDError(NctkError):
    """The curves cannot be compared (too few points, no overlap, not monotone, duplicated or bad values)."""


@dataclass(frozen=True)
class BDResult:
    """One Bjøntegaard delta, with the range it was averaged over.

    ``value``: for ``kind == "rate"`` the rate change of test against anchor at equal quality, in percent
    (negative: the test needs fewer bits); for ``kind == "quality"`` the quality change at equal rate, in the
    metric's units (positive: the test is better). ``overlap``: the integration range, in quality units for
    BD-rate and in rate units (not log) for BD-quality. ``anchor_coverage`` / ``test_coverage``: the fraction
    of that curve's own range (quality, resp. log-rate) that the overlap covers, in (0, 1].
    """

    kind: Literal["rate", "quality"]
    value: float
    overlap: tuple[float, float]
    anchor_coverage: float
    test_coverage: float
    lower_is_better: bool = False  # the metric is a distortion: a negative BD-quality means the test is better

    def __str__(self) -> str:
        lo, hi = self.overlap
        value = f"BD-rate {self.value:+.2f}%" if self.kind == "rate" else f"BD-quality {self.value:+.3f}"
        if self.kind == "quality" and self.lower_is_better:
            value += " (a distortion: lower is better)"
        axis = "quality" if self.kind == "rate" else "rate"
        return (f"{value} over {axis} {lo:.4g}..{hi:.4g} (covers {self.anchor_coverage:.0%} of the anchor's range, "
                f"{self.test_coverage:.0%} of the test's)")


def bd_rate(anchor_rate: ArrayLike, anchor_dist: ArrayLike, test_rate: ArrayLike, test_dist: ArrayLike) -> BDResult:
    """BD-rate of the test curve against the anchor, in percent: the mean log-rate gap at equal quality.

    ``*_dist`` is a quality, higher is better (PSNR, MS-SSIM in dB, ...); rates are positive (bpp, kbps, ...).
    """
    return _delta("rate", (anchor_rate, anchor_dist, "anchor"), (test_rate, test_dist, "test"))


def bd_quality(anchor_rate: ArrayLike, anchor_dist: ArrayLike, test_rate: ArrayLike, test_dist: ArrayLike) -> BDResult:
    """BD-quality (BD-PSNR for PSNR) of the test curve over the anchor: the mean quality gap at equal rate."""
    return _delta("quality", (anchor_rate, anchor_dist, "anchor"), (test_rate, test_dist, "test"))


# Metrics that measure a distortion, so a better codec has lower values. BD works on their negation (the
# curves must rise with rate); BD-quality is then reported in the metric's own units, negative = better.
LOWER_IS_BETTER = frozenset({"log-mel", "lsd-4k", "max-abs-error", "rel-frobenius", "mse"})


def bd_results(anchor: dict, test: dict, metric: str = "psnr-rgb", *, quality: bool = False,
               rate_key: str | None = None) -> BDResult:
    """BD-rate (or with ``quality=True`` BD-quality) between two CompressAI-style results dictionaries (as
    :func:`nctk.rd.results.load` returns) on ``metric``; the rate key is the one both use unless given.
    Distortions in :data:`LOWER_IS_BETTER` are compared as their negation and reported in their own units."""
    import dataclasses

    from nctk.rd import results

    curves = []
    for role, res in (("anchor", anchor), ("test", test)):
        source = f"{role} {res.get('name', '')!r}" if isinstance(res, dict) else role
        results.validate(res, source)
        key = rate_key or results.rate_key(res, source)
        if key not in res["results"]:
            raise BDError(f"{source}: no rate key {key!r}; the results hold {', '.join(map(repr, res['results']))}")
        if metric not in res["results"]:
            raise BDError(f"{source}: no metric {metric!r}; the results hold {', '.join(map(repr, res['results']))}")
        values = res["results"][metric]
        if metric in LOWER_IS_BETTER:
            values = [-v if isinstance(v, int | float) and not isinstance(v, bool) else v for v in values]
        curves.append((res["results"][key], values, source, key))
    if curves[0][3] != curves[1][3]:
        raise BDError(f"the anchor's rate is {curves[0][3]!r} but the test's is {curves[1][3]!r}: not comparable")
    out = _delta("quality" if quality else "rate", curves[0][:3], curves[1][:3])
    if metric not in LOWER_IS_BETTER:
        return out
    if quality:
        return dataclasses.replace(out, value=-out.value, lower_is_better=True)
    return dataclasses.replace(out, overlap=(-out.overlap[1], -out.overlap[0]), lower_is_better=True)


def bd_per_file(anchor: dict, test: dict, metric: str = "psnr-rgb", *, quality: bool = False) -> dict[str, Any]:
    """BD-rate (or BD-quality) file by file, for two results of nctk's harness that measured the same files
    (their ``"per_file"`` entries): ``{"files": {name: BDResult or the BDError's message}, "mean": float | None,
    "compared": n}``. The mean is over the files that could be compared; per-file figures show whether a
    curve-level gain holds on every image or comes from a few. BDError if the results share no files."""
    from nctk.rd import results

    rates = []
    for role, res in (("anchor", anchor), ("test", test)):
        source = f"{role} {res.get('name', '')!r}" if isinstance(res, dict) else role
        results.validate(res, source)
        if not isinstance(res.get("per_file"), dict) or not res["per_file"]:
            raise BDError(f"{source}: no per-file results (only nctk rd's own results files have them)")
        rates.append(results.rate_key(res, source))
    if rates[0] != rates[1]:
        raise BDError(f"the anchor's rate is {rates[0]!r} but the test's is {rates[1]!r}: not comparable")
    common = [f for f in anchor["per_file"] if f in test["per_file"]]
    if not common:
        raise BDError("the anchor and the test share no files: per-file BD needs sweeps of the same files")
    out: dict[str, Any] = {}
    for f in common:
        curves = [{"name": res["name"], "results": res["per_file"][f]} for res in (anchor, test)]
        try:
            out[f] = bd_results(*curves, metric, quality=quality, rate_key=rates[0])
        except (BDError, results.ResultsError) as e:
            out[f] = str(e)
    done = [r.value for r in out.values() if isinstance(r, BDResult)]
    return {"files": out, "mean": math.fsum(done) / len(done) if done else None, "compared": len(done)}


# ------------------------------------------------------------------------------------------------ internals


def _delta(kind: str, anchor: tuple, test: tuple) -> BDResult:
    import numpy as np
    from scipy.interpolate import PchipInterpolator

    (ar, aq), (tr, tq) = _checked(*anchor), _checked(*test)
    ax, ay, tx, ty = (aq, np.log(ar), tq, np.log(tr)) if kind == "rate" else (np.log(ar), aq, np.log(tr), tq)
    lo, hi = max(ax[0], tx[0]), min(ax[-1], tx[-1])
    if not hi > lo:
        axis = "quality" if kind == "rate" else "rate"
        span = (lambda x: f"{x[0]:.6g}..{x[-1]:.6g}") if kind == "rate" else (
            lambda x: f"{math.exp(x[0]):.6g}..{math.exp(x[-1]):.6g}")
        raise BDError(f"the curves do not overlap in {axis} (anchor {span(ax)}, test {span(tx)}): "
                      f"BD-{kind} needs a common {axis} range")
    # PCHIP is exactly integrable piecewise; for two points it is the straight line between them
    gap = (PchipInterpolator(tx, ty).integrate(lo, hi) - PchipInterpolator(ax, ay).integrate(lo, hi)) / (hi - lo)
    value = math.expm1(gap) * 100 if kind == "rate" else float(gap)
    overlap = (float(lo), float(hi)) if kind == "rate" else (math.exp(lo), math.exp(hi))
    return BDResult(kind, value, overlap, float((hi - lo) / (ax[-1] - ax[0])), float((hi - lo) / (tx[-1] - tx[0])))


def _checked(rate: ArrayLike, dist: ArrayLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The curve's points sorted by rate, after refusing anything PCHIP cannot interpolate meaningfully."""
    import numpy as np

    arrays = []
    for what, values in (("rates", rate), ("qualities", dist)):
        try:
            a = np.asarray(values)
        except (TypeError, ValueError) as e:  # ragged nested lists
            raise BDError(f"{name} curve: {what} must be a flat list of numbers ({e})") from e
        if a.dtype.kind not in "iuf":
            raise BDError(f"{name} curve: {what} must be numbers, got {a.dtype} values such as {a.flat[0]!r}"
                          if a.size else f"{name} curve: {what} must be numbers")
        if a.ndim != 1:
            raise BDError(f"{name} curve: {what} must be a flat list, got shape {a.shape}")
        arrays.append(a.astype(np.float64))
    r, q = arrays
    if len(r) != len(q):
        raise BDError(f"{name} curve: {len(r)} rates but {len(q)} qualities; each point needs both")
    if len(r) < 2:
        raise BDError(f"{name} curve: {len(r)} point{'s' * (len(r) != 1)}; BD needs at least 2 points per curve "
                      "(4 or more for a meaningful cubic interpolation)")
    for what, a in (("rate", r), ("quality", q)):
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            hint = " (an infinite PSNR is an exact reconstruction: leave that point out)" if what == "quality" else ""
            raise BDError(f"{name} curve: {what} of point {bad[0]} is {a[bad[0]]}; every value must be finite{hint}")
    bad = np.flatnonzero(r <= 0)
    if bad.size:
        raise BDError(f"{name} curve: rate of point {bad[0]} is {r[bad[0]]:g}; rates must be positive (log-rate)")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    for k in range(1, len(r)):
        i, j = order[k - 1], order[k]
        if r[k] == r[k - 1] and q[k] == q[k - 1]:
            raise BDError(f"{name} curve: points {i} and {j} are the same point (rate {r[k]:g}, quality {q[k]:g}); "
                          "remove the duplicate")
        if r[k] == r[k - 1]:
            raise BDError(f"{name} curve: points {i} and {j} have the same rate {r[k]:g} but qualities {q[k - 1]:g} "
                          f"and {q[k]:g}; each rate may appear once")
        if not q[k] > q[k - 1]:
            raise BDError(f"{name} curve is not monotone: quality goes from {q[k - 1]:g} at rate {r[k - 1]:g} "
                          f"(point {i}) to {q[k]:g} at the higher rate {r[k]:g} (point {j}); quality must rise "
                          "strictly with rate (for a distortion such as MSE, pass a quality such as PSNR)")
    return r, q
