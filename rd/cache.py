"""An on-disk cache of finished sweep items, so an interrupted or repeated sweep never measures an item twice.

One JSON file per item, ``<folder>/<key>.json``, where ``key`` is the sha256 of an :class:`ItemKey`: the codec
id, the codec's version (for baselines ``codec.version()``, the libraries that make the bytes; a learned codec
gives its artifact digest), the quality, the sha256 of the input file's bytes, the metrics asked for and
:data:`HARNESS_VERSION`. The
file holds ``{"key": {...the key's fields...}, "item": {...}}``, the item exactly as
:func:`nctk.rd.sweep.run_item` returns it, timings included.

Writes go to a temporary file in the same folder and are renamed into place, so an interrupted run leaves whole
items or none. Anything unreadable (a truncated or hand-edited file, another key's entry) is a miss: the item
is measured again and the entry rewritten. The cache is an optimisation: failing to write it never fails a sweep.

Default folder: ``$NCTK_CACHE_DIR/rd``, else ``$XDG_CACHE_HOME/nctk/rd``, else ``~/.cache/nctk/rd`` (the roots
:func:`nctk.entropy.jit.cache_dir` looks at, without its Numba-specific choices). Entries are never expired:
delete the folder to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nctk.entropy.errors import CodecError

__all__ = ["HARNESS_VERSION", "ItemCache", "ItemKey", "default_dir", "file_sha256", "open_cache"]

# What a sweep item measures and how (the modalities' measure functions, nctk.rd.metrics, the baselines' pinned
# encoder settings). Bump it whenever one of them changes a number, so older entries stop matching.
HARNESS_VERSION = 2


@dataclass(frozen=True)
class ItemKey:
    """Everything a measurement depends on; two items with equal keys have equal results (timings aside)."""

    codec: str
    codec_version: str
    quality: int | float
    input_sha256: str
    metrics: str = ""  # the metric names asked for, comma-separated; "" for the modality's default set
    harness: int = HARNESS_VERSION

    def digest(self) -> str:
        """The sha256 (hex) of the fields in a fixed JSON form: the entry's file name."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 (hex) of a file's bytes, read in chunks: the input's part of an item key."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise CodecError(f"cannot read {os.fspath(path)!r}: {e.strerror or e}") from e


def default_dir() -> Path | None:
    """The default cache folder (see the module docstring); None if this user has no home folder to put it in."""
    if os.environ.get("NCTK_CACHE_DIR"):
        return Path(os.environ["NCTK_CACHE_DIR"]) / "rd"
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "nctk" / "rd"
    try:
        return Path.home() / ".cache" / "nctk" / "rd"
    except (RuntimeError, KeyError):  # no home directory for this user
        return None


class ItemCache:
    """The finished items in one folder: :meth:`get` before measuring an item, :meth:`put` right after."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, key: ItemKey) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.folder / f"{key.digest()}.json"

    def get(self, key: ItemKey) -> dict[str, Any] | None:
        """The stored item for ``key``, or None if there is none or it cannot be read back whole."""
        try:
            entry = json.loads(self.path(key).read_bytes())
        except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON
            return None
        if not isinstance(entry, dict) or entry.get("key") != asdict(key) or not isinstance(entry.get("item"), dict):
            return None
        return entry["item"]

    def put(self, key: ItemKey, item: dict[str, Any]) -> bool:
        """Store ``item`` under ``key``, atomically; False (and nothing left behind) if it cannot be written."""
        text = json.dumps({"key": asdict(key), "item": item}, sort_keys=True, indent=1)
        tmp = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            # No fsync: an entry emptied by a power cut reads as a miss and is measured again.
            os.replace(tmp, self.path(key))
            return True
        except BaseException as e:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(e, OSError):
                return False
            raise


def open_cache(cache: str | os.PathLike | bool | None) -> ItemCache | None:
    """The cache a sweep's ``cache`` argument asks for: None or True for the default folder, False for none, or
    a folder. A folder given explicitly must be usable (CodecError now, not after the sweep); when the default
    one cannot be created the sweep simply runs uncached."""
    if cache is False:
        return None
    explicit = not (cache is None or cache is True)
    folder = default_dir() if cache is None or cache is True else Path(cache)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        if explicit:
            raise CodecError(f"cannot use cache folder {os.fspath(folder)!r}: {e.strerror or e}") from e
        return None
    return ItemCache(folder)
