"""Rate-distortion plots of sweep results (CompressAI-schema dicts) as PNG files, with published curves as anchors.

Draws on matplotlib's Agg canvas directly (no pyplot, no display, no global backend switch), so it works on
headless machines and inside programs that use matplotlib for something else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from nctk.entropy.errors import CodecError

AXIS_LABELS = {
    "bpp": "rate (bits per pixel)",
    "kbps": "rate (kbit/s)",
    "bits_per_value": "rate (bits per value)",
    "psnr-rgb": "PSNR-RGB (dB)",
    "ms-ssim-rgb": "MS-SSIM",
    "visqol-speech": "ViSQOL v3 speech MOS-LQO (16 kHz)",
    "visqol-audio": "ViSQOL v3 audio MOS-LQO (48 kHz)",
    "pesq-wb": "PESQ wide-band MOS-LQO",
    "stoi": "STOI",
    "si-snr": "SI-SNR (dB)",
    "log-mel": "log-mel distance (lower is better)",
    "lsd-4k": "log-spectral distance < 4 kHz (dB, lower is better)",
    "max-abs-error": "max abs error (lower is better)",
    "rel-frobenius": "relative Frobenius error (lower is better)",
    "psnr-range": "PSNR over the value range (dB)",
    "encoding_time": "encoding time (s)",
    "decoding_time": "decoding time (s)",
}
# Not worth a plot of their own: rates, timings, and the ratio (a rescaled rate).
_NOT_PLOTTED = {"bpp", "kbps", "bits_per_value", "ratio", "encoding_time", "decoding_time"}
# Distortions spanning decades are drawn on a log axis.
_LOG_AXIS = {"max-abs-error", "rel-frobenius"}


def plottable(curves: Sequence[dict[str, Any]]) -> list[str]:
    """The metrics every curve has that deserve a plot (not rates, timings or ratios), in the first curve's order."""
    if not curves:
        return []
    keys = [k for k in curves[0].get("results", {}) if k not in _NOT_PLOTTED]
    return [k for k in keys if all(k in c.get("results", {}) for c in curves)]


def _points(curve: dict[str, Any], rate: str, metric: str) -> tuple[list[float], list[float]]:
    """The curve's finite (rate, metric) points sorted by rate, or CodecError naming the curve and the key it lacks."""
    name = curve.get("name", "?") if isinstance(curve, dict) else "?"
    res = curve.get("results") if isinstance(curve, dict) else None
    if not isinstance(res, dict) or rate not in res or metric not in res:
        have = sorted(res) if isinstance(res, dict) else []
        raise CodecError(f"curve {name!r} has no results[{rate!r}] and results[{metric!r}] to plot (it has {have})")
    xs, ys = res[rate], res[metric]
    if len(xs) != len(ys):
        raise CodecError(f"curve {name!r}: {len(xs)} {rate} values but {len(ys)} {metric} values")
    # inf (an exact reconstruction) has no place on the axes
    pts = sorted((float(x), float(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(x) and math.isfinite(y))
    return [p[0] for p in pts], [p[1] for p in pts]


def _palette(name: str) -> Iterator:
    """A qualitative colour map's colours, repeated without end (more curves than colours reuse them)."""
    import itertools

    from matplotlib import colormaps

    return itertools.cycle(colormaps[name].colors)


def plot(results: Sequence[dict[str, Any]], metric: str, path: str | os.PathLike,
         anchors: Sequence[dict[str, Any]] = (), *, rate: str = "bpp", title: str | None = None) -> Path:
    """Plot ``metric`` against ``rate`` for each result (solid, with markers) and anchor (dashed); save a PNG.

    Every curve must have ``results[rate]`` and ``results[metric]``; the legend shows each curve's "name" (with
    "(anchor)" after an anchor's). Non-finite points (PSNR ``inf`` of an exact reconstruction) are left out.
    Returns the path written. Used to compare a sweep with published curves at a glance.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = [(c, False) for c in results] + [(c, True) for c in anchors]
    if not curves:
        raise CodecError("plot needs at least one result or anchor curve")
    data = [(_points(c, rate, metric), c.get("name", "?"), dashed) for c, dashed in curves]

    fig = Figure(figsize=(8, 5.5), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # Measured curves take tab10's colours, anchors Dark2's: no two curves share a colour up to 10 + 8.
    solid, dashes = _palette("tab10"), _palette("Dark2")
    for (xs, ys), name, dashed in data:
        if dashed:
            ax.plot(xs, ys, linestyle="--", linewidth=1.5, marker=".", markersize=4, label=f"{name} (anchor)",
                    color=next(dashes))
        else:
            ax.plot(xs, ys, linestyle="-", linewidth=1.8, marker="o", markersize=4, label=str(name),
                    color=next(solid))
    if metric in _LOG_AXIS and all(y > 0 for (_, ys), _, _ in data for y in ys):
        ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS.get(rate, rate))
    ax.set_ylabel(AXIS_LABELS.get(metric, metric))
    ax.set_title(title if title is not None else f"{AXIS_LABELS.get(metric, metric)} vs rate")
    ax.grid(True, which="major", alpha=0.35)
    ax.minorticks_on()
    ax.grid(True, which="minor", alpha=0.12)
    ax.legend(loc="upper right" if metric in _LOG_AXIS or "lower is better" in AXIS_LABELS.get(metric, "")
              else "lower right", fontsize="small")
    out = Path(path)
    fig.savefig(out, format="png")
    return out
