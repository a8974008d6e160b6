"""Numba set-up shared by every compiled CPU kernel: lazy ``njit`` and a cache folder that works for any user.

**Lazy.** Importing a kernel module must not import Numba (0.2 s) or load its cached machine code (0.5 s):
most ``nctk`` calls need neither (start-up time) or run ahead-of-time builds instead (:mod:`.rans_aot`).
So :func:`njit` returns a :class:`LazyKernel`; the first call of any kernel imports Numba and turns every
lazy kernel into a real Numba dispatcher. ``prange`` placeholders in kernel modules must become
:data:`numba.prange` before anything is compiled; the kernels' own module globals are rebound to their
dispatchers too, so later Python callers skip the forwarding.

**Cache folder**, chosen once (Numba's default, beside the source, is often read-only once installed):

1. ``NUMBA_CACHE_DIR`` if the user set it (Numba's own setting, honoured as is);
2. else ``$NCTK_CACHE_DIR``, ``$XDG_CACHE_HOME/nctk/numba`` or ``~/.cache/nctk/numba``, the first one that
   can be created and written;
3. else a folder in the system's temporary directory that only this user owns and can write;
4. else no disk cache at all: kernels compile in memory on first use (slower start, same results).

The cache only holds machine code; which folder is used never changes a single output byte.
"""

from __future__ import annotations

import functools
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["LazyKernel", "cache_dir", "materialize", "njit", "prange"]


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


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
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        return None
    return folder if _writable(folder) else None


@functools.lru_cache(maxsize=1)
def cache_dir() -> str | None:
    """The folder compiled kernels are cached in (see the module docstring), or None for no disk cache."""
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


class _PrangePlaceholder:
    """Stands for :data:`numba.prange` in kernel modules until Numba is imported (see :func:`materialize`)."""

    def __call__(self, *args: int) -> range:  # plain Python calls (a kernel's py_func) iterate serially
        return range(*args)


prange: Any = _PrangePlaceholder()

_LAZY: list[LazyKernel] = []
_LOCK = threading.Lock()  # threads making their first kernel calls at once share one set of dispatchers


class LazyKernel:
    """A kernel whose Numba dispatcher is made on first use; then it forwards every call and attribute."""

    def __init__(self, fn: Callable, options: dict[str, Any]):
        self.py_func = fn
        self.options = options
        self.dispatcher: Any = None
        functools.update_wrapper(self, fn)
        _LAZY.append(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.dispatcher is None:
            materialize()
        return self.dispatcher(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name in ("dispatcher", "py_func", "options"):  # not set yet: never recurse
            raise AttributeError(name)
        if self.dispatcher is None:
            materialize()
        return getattr(self.dispatcher, name)


def materialize() -> None:
    """Import Numba and turn every lazy kernel made so far into a dispatcher, rebinding module globals."""
    import numba

    with _LOCK:
        _materialize(numba)


def _materialize(numba: Any) -> None:
    where = cache_dir()
    if where is not None:
        numba.config.CACHE_DIR = where  # read when a dispatcher enables caching, i.e. just below
    for lazy in list(_LAZY):
        if lazy.dispatcher is not None:
            continue
        options = dict(lazy.options)
        if options.get("cache") and where is None:
            options["cache"] = False
        module = sys.modules[lazy.py_func.__module__]
        if isinstance(module.__dict__.get("prange"), _PrangePlaceholder):
            module.prange = numba.prange
        lazy.dispatcher = numba.njit(**options)(lazy.py_func)
        if module.__dict__.get(lazy.py_func.__name__) is lazy:
            setattr(module, lazy.py_func.__name__, lazy.dispatcher)


def njit(*args: Any, **options: Any) -> Any:
    """``numba.njit`` made lazy: ``@njit`` or ``@njit(cache=True, parallel=True, ...)``."""
    if args and callable(args[0]) and not options:
        return LazyKernel(args[0], {})
    return lambda fn: LazyKernel(fn, options)
