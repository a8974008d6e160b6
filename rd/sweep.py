"""Rate-distortion sweeps: every codec x file x quality, averaged into CompressAI-style curves.

One measurement is :func:`run_item` (load, encode, decode, measure): a pure function of its arguments, so it can be
cached, resumed, or run on other machines. :func:`sweep` validates everything first (codec ids, that they share one
modality, qualities, that each file opens), then measures and averages the way CompressAI's
``compressai.utils.bench`` does: for each quality, the mean rate and the mean of each metric over the files.
Apart from the timings and the date a rerun gives identical numbers (every encoder setting is pinned; metrics run
on the CPU). Finished items are kept in an on-disk cache (:mod:`nctk.rd.cache`) as soon as each is measured, so an
interrupted sweep resumes where it stopped and a repeated one measures nothing again.

With ``workers`` or ``scheduler`` the items that are not cached run as tasks on Dask (a ``LocalCluster`` of
single-threaded worker processes, or an existing cluster); results are the serial run's, timings aside, because
each item is computed by the same pure function wherever it runs.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from nctk.entropy.errors import CodecError
from nctk.rd.baselines import get
from nctk.rd.cache import ItemCache, ItemKey, file_sha256, open_cache
from nctk.rd.modality import MODALITIES, Modality

PathLike = str | os.PathLike
TIMING_KEYS = ("encoding_time", "decoding_time")
# Per-file facts that are not points of a curve: kept under "per_file", never averaged.
_NOT_CURVES = {"bytes", "original_bytes", "values", "tensors", "raw_tensors", "delay_samples"}
_BOOKKEEPING = ("codec", "file", "quality")


def _modality(codecs: Sequence[Any]) -> Modality:
    kinds = sorted({c.modality for c in codecs})
    if len(kinds) > 1:
        raise CodecError("a sweep measures one kind of data; these codecs are for "
                         + ", ".join(f"{k} ({', '.join(c.id for c in codecs if c.modality == k)})" for k in kinds))
    return MODALITIES[kinds[0]]


def _metrics_option(impl: Any, metrics: Sequence[str] | None) -> tuple[str, ...] | None:
    """The metric names asked for, resolved by the modality (which may offer sets such as "speech"), or None."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise CodecError(f"metrics must be a non-empty list of metric names, got {metrics!r}")
    if not hasattr(impl, "resolve_metrics"):
        raise CodecError(f"{impl.__name__.rsplit('.', 1)[-1]} sweeps measure a fixed set of metrics: no choice")
    return impl.resolve_metrics(metrics)


def run_item(codec_id: str, path: PathLike, quality: int, metrics: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure one codec on one file at one quality: the unit of work a sweep is made of.

    Returns ``{"codec", "file", "quality", <the file's probe info>, "bytes", <rate key>, <metrics...>,
    "encoding_time", "decoding_time"}`` (seconds). ``metrics`` picks the metrics where the modality offers a
    choice (audio), None for its default set. Depends only on its arguments, the file's content and the codec's
    version, so it gives the same numbers (timings aside) in any process or machine.
    """
    codec = get(codec_id)
    _check_qualities(codec, [quality])
    impl = MODALITIES[codec.modality].impl()
    metrics = _metrics_option(impl, metrics)
    info = impl.probe(path)
    return _item(impl, codec, path, info, impl.load(path), quality, metrics)


def _item(impl: Any, codec: Any, path: PathLike, info: dict, content: Any, quality: int,
          metrics: tuple[str, ...] | None) -> dict[str, Any]:
    return {"codec": codec.id, "file": os.fspath(path), "quality": quality, **info,
            **impl.measure(codec, content, quality, metrics)}


def _check_qualities(codec: Any, qualities: Sequence[int]) -> list[int]:
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
        filled = 24 * self.done // max(self.total, 1)
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


def _lookup(store: ItemCache | None, key: ItemKey, info: dict, needed: list[str]) -> dict[str, Any] | None:
    """The cached item for ``key`` if it is for a file like this one and holds every number it needs (a
    hand-edited one may not); anything else is measured again and overwritten."""
    item = store.get(key) if store is not None else None
    if item is None or any(item.get(k) != v for k, v in info.items()):
        return None
    return item if all(_number(item.get(k)) for k in [*needed, *TIMING_KEYS]) else None


@contextmanager
def _dask(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """A ``distributed.Client``: on a new LocalCluster of ``workers`` single-threaded processes, or connected to
    the scheduler at ``scheduler``. Closed (and the local cluster shut down) on leaving."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise CodecError("parallel sweeps need dask.distributed (pip install 'dask[distributed]')") from None
    import logging

    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as e:
                raise CodecError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from e
        else:
            # Processes, one thread each: the codecs and metrics hold the GIL, and one measurement per core
            # keeps timings comparable. No dashboard: nothing listens on a port the user did not ask for.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def sweep(codec_ids: list[str], files: list[PathLike], qualities: Mapping[str, Sequence[int]] | None = None, *,
          progress: bool | None = None, cache: PathLike | bool | None = None, metrics: Sequence[str] | None = None,
          workers: int | None = None, scheduler: str | None = None) -> dict[str, dict[str, Any]]:
    """Sweep each codec over each file and quality; one CompressAI-schema result per codec id.

    The codecs (see :mod:`nctk.rd.baselines`) must share one modality: image files give "bpp", "psnr-rgb" and
    "ms-ssim-rgb"; audio files "kbps" and the audio metrics (:mod:`nctk.rd.audio`; ``metrics`` picks them);
    tensor files "bits_per_value", "ratio" and, for lossy codecs, the error measures (:mod:`nctk.rd.tensors`).
    ``qualities`` maps codec id -> qualities (sorted, duplicates dropped); codecs not in it use their default
    sweep. Each result is ``{"name", "description", "results": {key: [mean over files, per quality]},
    "per_file": {file: {key: [per quality]}}, "meta": {...}}``, with "encoding_time" and "decoding_time" in
    seconds. A metric missing from some file's items (MS-SSIM on a small image) stays in "per_file" but is left
    out of the curve. A progress bar is drawn on stderr when it is a terminal, unless ``progress`` is False.

    ``cache`` is the folder of finished items (:mod:`nctk.rd.cache`): None or True for the default one, False
    for none. Each item is looked up before it is measured and stored as soon as it is, so a sweep stopped after
    N items keeps them; reused items keep the timings measured when they were stored. ``meta["cached_items"]``
    counts the codec's items taken from the cache.

    ``workers=N`` measures the items on a Dask LocalCluster of N processes; ``scheduler="tcp://host:port"`` on an
    existing cluster, whose workers must have nctk installed and see the files at the same paths.
    Raises CodecError (before any work) for unknown or unavailable codecs, codecs of different modalities, bad
    qualities, unreadable files and a cache folder given explicitly that cannot be used.
    """
    if not codec_ids:
        raise CodecError("sweep needs at least one codec id")
    if not files:
        raise CodecError("sweep needs at least one input file")
    if len(set(codec_ids)) < len(codec_ids) or len({os.fspath(f) for f in files}) < len(files):
        raise CodecError("sweep: a codec id or a file is listed twice")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise CodecError(f"workers must be a positive integer, got {workers!r}")
    if workers is not None and scheduler is not None:
        raise CodecError("give workers (a local cluster) or scheduler (an existing one), not both")
    codecs = [get(c) for c in codec_ids]
    modality = _modality(codecs)
    impl = modality.impl()
    metrics = _metrics_option(impl, metrics)
    qualities = dict(qualities or {})
    unknown = sorted(set(qualities) - set(codec_ids))
    if unknown:
        raise CodecError(f"qualities given for codecs that are not swept: {', '.join(unknown)}")
    plan = {c.id: _check_qualities(c, list(qualities.get(c.id, c.qualities))) for c in codecs}
    infos = [impl.probe(f) for f in files]  # header only: a bad file fails now, not an hour into the sweep
    keys = _file_keys(files)
    versions = {c.id: c.version() for c in codecs}
    store = open_cache(cache)
    digests = [file_sha256(f) if store is not None else "" for f in files]
    option = ",".join(metrics) if metrics is not None else ""

    # Every item in a fixed order; those in the cache are taken from it, the rest measured (here or on Dask).
    items: dict[tuple[str, int, int], dict[str, Any]] = {}  # (codec, file index, quality) -> item
    todo: list[tuple[Any, int, int, ItemKey]] = []
    cached = dict.fromkeys(versions, 0)
    for i, (info, digest) in enumerate(zip(infos, digests, strict=True)):
        for codec in codecs:
            needed = impl.required(info, codec, metrics)
            for q in plan[codec.id]:
                ikey = ItemKey(codec.id, versions[codec.id], q, digest, metrics=option)
                item = _lookup(store, ikey, info, needed)
                if item is None:
                    todo.append((codec, i, q, ikey))
                else:
                    items[codec.id, i, q] = {**item, "file": os.fspath(files[i])}
                    cached[codec.id] += 1

    bar = _Progress(len(items) + len(todo), _progress_enabled(progress, sys.stderr), sys.stderr)
    for codec_id, i, q in list(items):
        bar.step(f"{codec_id} q={q} {keys[i]} (cached)")

    def finished(codec: Any, i: int, q: int, ikey: ItemKey, item: dict[str, Any]) -> None:
        items[codec.id, i, q] = item
        if store is not None:
            store.put(ikey, item)  # now, not at the end: an interrupted sweep keeps it
        bar.step(f"{codec.id} q={q} {keys[i]}")

    try:
        if workers is None and scheduler is None:
            content: tuple[int, Any] | None = None  # each file is loaded once, on its first uncached item
            for codec, i, q, ikey in todo:
                if content is None or content[0] != i:
                    content = (i, impl.load(files[i]))
                finished(codec, i, q, ikey, _item(impl, codec, files[i], infos[i], content[1], q, metrics))
        elif todo:
            _run_on_dask(todo, files, metrics, workers, scheduler, finished)
    finally:
        bar.close()

    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {codec.id: _result(codec, versions[codec.id], modality, plan[codec.id], keys,
                              [[items[codec.id, i, q] for q in plan[codec.id]] for i in range(len(files))],
                              {k for info in infos for k in info}, date, cached[codec.id], metrics,
                              impl.meta(keys, infos) if hasattr(impl, "meta") else {})
            for codec in codecs}


def _run_on_dask(todo: list, files: Sequence[PathLike], metrics: tuple[str, ...] | None, workers: int | None,
                 scheduler: str | None, finished: Any) -> None:
    """Submit each uncached item as one task; store each result as it arrives (any order)."""
    from distributed import as_completed

    with _dask(workers, scheduler) as client:
        futures = {}
        for codec, i, q, ikey in todo:
            # Absolute paths: a worker's working folder need not be ours. pure=False: timings differ per run.
            fut = client.submit(run_item, codec.id, os.path.abspath(files[i]), q, metrics, pure=False,
                                key=f"nctk-rd-{ikey.digest()[:16]}-{len(futures)}")
            futures[fut] = (codec, i, q, ikey)
        try:
            for fut in as_completed(futures):
                codec, i, q, ikey = futures[fut]
                item = fut.result()  # a task's CodecError is raised here, as in a serial sweep
                finished(codec, i, q, ikey, {**item, "file": os.fspath(files[i])})
        finally:
            client.cancel(list(futures))


def _result(codec: Any, version: str, modality: Modality, qualities: list[int], keys: list[str],
            rows: list[list[dict[str, Any]]], info_keys: set[str], date: str, cached: int,
            metrics: tuple[str, ...] | None, extra_meta: dict[str, Any]) -> dict:
    """One codec's CompressAI-schema result from its items (one row of items per file, one item per quality)."""
    skip = {*_BOOKKEEPING, *info_keys, *(k for row in rows for it in row for k in it if not _number(it[k]))}
    names: list[str] = []
    for row in rows:
        names += [k for k in row[0] if k not in skip and k not in names]
    per_file = {k: {m: [it[m] for it in row] for m in names if all(m in it for it in row)}
                for k, row in zip(keys, rows, strict=True)}
    rate = modality.rate_key
    curve_keys = [m for m in names if m not in _NOT_CURVES and all(m in pf for pf in per_file.values())]
    if rate not in curve_keys:
        raise CodecError(f"{codec.id}: items have no {rate!r}: cannot make a curve")
    curve_keys = [rate] + [m for m in curve_keys if m != rate]
    results = {m: [_mean([pf[m][j] for pf in per_file.values()]) for j in range(len(qualities))] for m in curve_keys}
    partial = sorted({m for pf in per_file.values() for m in pf} - set(curve_keys) - _NOT_CURVES)
    meta: dict[str, Any] = {"codec_version": version, "modality": modality.name, "files": len(keys),
                            "file_names": keys, "qualities": qualities, "date": date, "cached_items": cached,
                            "lossless": bool(getattr(codec, "lossless", False))}
    if metrics is not None:
        meta["metrics"] = list(metrics)
    meta.update(extra_meta)
    if partial:
        missing = {m: [k for k, pf in per_file.items() if m not in pf] for m in partial}
        meta["partial_metrics"] = missing
        meta["partial_note"] = "no curve for " + ", ".join(partial) + ": some files lack it (see partial_metrics)"
    return {"name": codec.id, "description": f"{codec.description}. {version}", "results": results,
            "per_file": per_file, "meta": meta}
