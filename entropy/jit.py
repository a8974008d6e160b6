"""Numba set-up shared by every compiled CPU kernel: one ``njit`` whose on-disk cache works for any user.

Numba caches compiled kernels beside their source file by default; an installed copy is often read-only
for the user running it, and a home directory can be too. This module chooses the cache folder once, at
import, before any kernel is decorated:

1. ``NUMBA_CACHE_DIR`` if the user set it (Numba's own setting, honoured as is);
2. else ``$NCTK_CACHE_DIR``, ``$XDG_CACHE_HOME/nctk/numba`` or ``~/.cache/nctk/numba``, the first one that
   can be created and written;
3. else a per-user folder in the system's temporary directory;
4. else no disk cache at all: kernels compile in memory on first use (slower start, same results).

The cache only holds machine code; which folder is used never changes a single output byte.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba

__all__ = ["CACHE_DIR", "njit", "prange"]

prange = numba.prange


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def _choose_cache_dir() -> str | None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    candidates = []
    if os.environ.get("NCTK_CACHE_DIR"):
        candidates.append(Path(os.environ["NCTK_CACHE_DIR"]))
    if os.environ.get("XDG_CACHE_HOME"):
        candidates.append(Path(os.environ["XDG_CACHE_HOME"]) / "nctk" / "numba")
    try:
        candidates.append(Path.home() / ".cache" / "nctk" / "numba")
    except (RuntimeError, KeyError):  # no home directory for this user
        pass
    for folder in candidates:
        if _writable(folder):
            return str(folder)
    private = _private_temp_dir()
    return str(private) if private is not None else None


def _private_temp_dir() -> Path | None:
    """A folder in the shared temporary directory that only this user can write, or None.

    Cached kernels are machine code: a folder another user could have created or can write is refused.
    """
    if not hasattr(os, "getuid"):
        return None
    folder = Path(tempfile.gettempdir()) / f"nctk-numba-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError:
        return None
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return folder if _writable(folder) else None


CACHE_DIR = _choose_cache_dir()
if CACHE_DIR is not None:
    numba.config.CACHE_DIR = CACHE_DIR  # read when a kernel is decorated, so set before any is


def njit(*args: Any, **kwargs: Any) -> Callable:
    """:func:`numba.njit`, with ``cache=True`` honoured only when a writable cache folder exists."""
    if kwargs.get("cache") and CACHE_DIR is None:
        kwargs["cache"] = False
    return numba.njit(*args, **kwargs)
