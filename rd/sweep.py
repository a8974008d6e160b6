"""Rate-distortion sweeps of image baselines: every codec x file x quality, averaged into CompressAI-style curves.

One measurement is :func:`run_item` (load, encode, decode, measure): a pure function of its arguments, so it can be
cached, resumed or run on other workers later. :func:`sweep` validates everything first (codec ids, qualities,
that each file opens), then measures and averages the way CompressAI's ``compressai.utils.bench`` does: for each
quality, the mean bpp and the mean of each metric over the files. Apart from the timings and the date, a rerun gives
identical numbers (every encoder setting is pinned; MS-SSIM runs on the CPU). Finished items are kept in an
on-disk cache (:mod:`nctk.rd.cache`) as soon as each is measured, so an interrupted sweep resumes where it stopped
and a repeated one measures nothing again.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from nctk.entropy.errors import CodecError
from nctk.rd.baselines.images import ImageCodec, get
from nctk.rd.cache import ItemCache, ItemKey, file_sha256, open_cache
from nctk.rd.metrics import MS_SSIM_MIN_SIDE, ms_ssim_rgb, ms_ssim_supported, psnr_rgb

if TYPE_CHECKING:
    import numpy as np

PathLike = str | os.PathLike
METRIC_KEYS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
TIMING_KEYS = ("encoding_time", "decoding_time")

# Pillow modes that convert to 8-bit RGB without losing range; 16-bit and float images would be clipped.
_RGB8_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


def _open_image(path: PathLike) -> Any:
    """The opened (not yet decoded) Pillow image, or CodecError naming the file and why it cannot be used."""
    from PIL import Image

    try:
        im = Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CodecError(f"cannot read image {os.fspath(path)!r}: {e}") from e
    if im.mode not in _RGB8_MODES:
        im.close()
        raise CodecError(f"cannot use image {os.fspath(path)!r}: mode {im.mode} is not 8-bit "
                         "(sweeps measure 8-bit RGB)")
    return im


def load_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 array (alpha is dropped); CodecError naming the file if it cannot."""
    import numpy as np

    with _open_image(path) as im:
        try:
            return np.array(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt pixel data shows up only here
            raise CodecError(f"cannot read image {os.fspath(path)!r}: {e}") from e


def _measure(codec: ImageCodec, img: np.ndarray, quality: int) -> dict[str, Any]:
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    data = codec.encode(img, quality)
    t1 = time.perf_counter()
    rec = codec.decode(data)
    t2 = time.perf_counter()
    if rec.shape != img.shape:
        raise CodecError(f"{codec.id} decoded a {rec.shape} image from a {img.shape} one")
    out: dict[str, Any] = {"bytes": len(data), "bpp": 8.0 * len(data) / (h * w), "psnr-rgb": psnr_rgb(img, rec)}
    if ms_ssim_supported(h, w):
        out["ms-ssim-rgb"] = ms_ssim_rgb(img, rec)
    out["encoding_time"], out["decoding_time"] = t1 - t0, t2 - t1
    return out


def _item(codec: ImageCodec, path: PathLike, img: np.ndarray, quality: int) -> dict[str, Any]:
    return {"codec": codec.id, "file": os.fspath(path), "quality": quality, "height": img.shape[0],
            "width": img.shape[1], **_measure(codec, img, quality)}


def run_item(codec_id: str, path: PathLike, quality: int) -> dict[str, Any]:
    """Measure one codec on one image file at one quality: the unit of work a sweep is made of.

    Returns ``{"codec", "file", "quality", "height", "width", "bytes", "bpp", "psnr-rgb", ["ms-ssim-rgb"],
    "encoding_time", "decoding_time"}`` (seconds; "ms-ssim-rgb" only for images with a short side of at least
    ``MS_SSIM_MIN_SIDE``). Depends only on its arguments, the file's content and the codec's version.
    """
    codec = get(codec_id)
    _check_qualities(codec, [quality])
    return _item(codec, path, load_rgb(path), quality)


def _check_qualities(codec: ImageCodec, qualities: Sequence[int]) -> list[int]:
    lo, hi = codec.quality_range
    bad = [q for q in qualities if isinstance(q, bool) or not isinstance(q, int) or not lo <= q <= hi]
    if bad or not qualities:
        raise CodecError(f"{codec.id}: qualities must be a non-empty list of integers in [{lo}, {hi}], "
                         f"got {list(qualities)!r}")
    return sorted(set(qualities))


class _Progress:
    """A one-line bar on stderr, redrawn per item; silent unless enabled (a terminal, not switched off)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total, self.done, self.enabled, self.stream = total, 0, enabled, stream

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        width = shutil.get_terminal_size((80, 24)).columns - 1
        filled = 24 * self.done // self.total
        line = f"[{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total} {label}"[:width]
        self.stream.write("\r" + line.ljust(width))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()


def _progress_enabled(progress: bool | None, stream: TextIO | None) -> bool:
    if progress is False or stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _file_keys(files: Sequence[PathLike]) -> list[str]:
    """Per-file keys: base names, or the paths as given when two files share a base name."""
    names = [Path(f).name for f in files]
    return names if len(set(names)) == len(names) else [os.fspath(f) for f in files]


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _lookup(store: ItemCache | None, key: ItemKey, size: tuple[int, int]) -> dict[str, Any] | None:
    """The cached item for ``key`` if it holds every number this file's entry needs (a hand-edited one may not);
    anything else is measured again and overwritten."""
    item = store.get(key) if store is not None else None
    if item is None or (item.get("height"), item.get("width")) != size:
        return None
    with_ms_ssim = ms_ssim_supported(*size)
    if ("ms-ssim-rgb" in item) != with_ms_ssim:
        return None
    needed = ["bytes", "bpp", "psnr-rgb", *TIMING_KEYS] + ["ms-ssim-rgb"] * with_ms_ssim
    return item if all(_number(item.get(k)) for k in needed) else None


def sweep(codec_ids: list[str], files: list[PathLike], qualities: Mapping[str, Sequence[int]] | None = None, *,
          progress: bool | None = None, cache: PathLike | bool | None = None) -> dict[str, dict[str, Any]]:
    """Sweep each codec over each file and quality; one CompressAI-schema result per codec id.

    ``qualities`` maps codec id -> qualities (sorted, duplicates dropped); codecs not in it use their default
    sweep. Each result is ``{"name", "description", "results": {key: [mean over files, per quality]},
    "per_file": {file: {key: [per quality]}}, "meta": {...}}`` with keys "bpp", "psnr-rgb", "ms-ssim-rgb",
    "encoding_time", "decoding_time" (seconds). "ms-ssim-rgb" is left out of a file's entry when the image is
    under ``MS_SSIM_MIN_SIDE`` pixels on its short side, and out of the curve unless every file has it;
    ``meta["ms_ssim_omitted"]`` names those files. PSNR is ``inf`` for a file a codec reproduces exactly.
    A progress bar is drawn on stderr when it is a terminal, unless ``progress`` is False.

    ``cache`` is the folder of finished items (:mod:`nctk.rd.cache`): None or True for the default one, False
    for none. Each item is looked up before it is measured and stored as soon as it is, so a sweep stopped after
    N items keeps them; the results equal an uncached sweep's except that reused items keep the timings measured
    when they were stored. ``meta["cached_items"]`` counts the codec's items taken from the cache.
    Raises CodecError (before any work) for unknown or unavailable codecs, bad qualities, unreadable files and
    a cache folder given explicitly that cannot be used.
    """
    if not codec_ids:
        raise CodecError("sweep needs at least one codec id")
    if not files:
        raise CodecError("sweep needs at least one image file")
    if len(set(codec_ids)) < len(codec_ids) or len({os.fspath(f) for f in files}) < len(files):
        raise CodecError("sweep: a codec id or a file is listed twice")
    codecs = [get(c) for c in codec_ids]
    qualities = dict(qualities or {})
    unknown = sorted(set(qualities) - set(codec_ids))
    if unknown:
        raise CodecError(f"qualities given for codecs that are not swept: {', '.join(unknown)}")
    plan = {c.id: _check_qualities(c, list(qualities.get(c.id, c.qualities))) for c in codecs}
    sizes = []
    for f in files:  # header only: a bad file fails now, not an hour into the sweep
        with _open_image(f) as im:
            sizes.append((im.height, im.width))
    keys = _file_keys(files)
    versions = {c.id: c.version() for c in codecs}
    store = open_cache(cache)
    digests = [file_sha256(f) if store is not None else "" for f in files]

    bar = _Progress(len(files) * sum(len(q) for q in plan.values()), _progress_enabled(progress, sys.stderr),
                    sys.stderr)
    items: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (codec, file key) -> one dict per quality
    cached = dict.fromkeys(versions, 0)
    try:
        for key, f, size, digest in zip(keys, files, sizes, digests, strict=True):
            img = None  # decoded on the first item not in the cache, once per file (a PNG costs more than a JPEG)
            for codec in codecs:
                row = items[codec.id, key] = []
                for q in plan[codec.id]:
                    ikey = ItemKey(codec.id, versions[codec.id], q, digest)
                    item = _lookup(store, ikey, size)
                    hit = item is not None
                    if item is None:
                        if img is None:
                            img = load_rgb(f)
                        item = _item(codec, f, img, q)
                        if store is not None:
                            store.put(ikey, item)  # now, not at the end: an interrupted sweep keeps it
                    cached[codec.id] += hit
                    row.append(item)
                    bar.step(f"{codec.id} q={q} {key}" + " (cached)" * hit)
    finally:
        bar.close()

    omitted = [k for k, (h, w) in zip(keys, sizes, strict=True) if not ms_ssim_supported(h, w)]
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = {}
    for codec in codecs:
        per_file = {k: {m: [it[m] for it in items[codec.id, k]] for m in METRIC_KEYS if m in items[codec.id, k][0]}
                    for k in keys}
        curve_keys = [m for m in METRIC_KEYS if all(m in pf for pf in per_file.values())]
        results = {m: [_mean([pf[m][i] for pf in per_file.values()]) for i in range(len(plan[codec.id]))]
                   for m in curve_keys}
        version = versions[codec.id]
        meta: dict[str, Any] = {"codec_version": version, "files": len(files), "file_names": keys,
                                "qualities": plan[codec.id], "date": date, "ms_ssim_min_side": MS_SSIM_MIN_SIDE,
                                "ms_ssim_omitted": omitted, "cached_items": cached[codec.id]}
        if omitted:
            meta["ms_ssim_note"] = (f"no ms-ssim-rgb curve: {len(omitted)} of {len(files)} files are smaller than "
                                    f"{MS_SSIM_MIN_SIDE} px on the short side (see ms_ssim_omitted)")
        out[codec.id] = {"name": codec.id, "description": f"{codec.description}. {version}", "results": results,
                         "per_file": per_file, "meta": meta}
    return out

