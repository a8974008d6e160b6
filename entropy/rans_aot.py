"""Ahead-of-time builds of the Numba rANS chunk kernels, so a short call never waits for Numba.

A process that calls a Numba kernel pays ~0.7 s before the first symbol is coded (importing Numba, its
target registries and SciPy's BLAS, loading cached machine code), 40x the coding of a 250 KB file. The same
kernels, compiled once ahead of time with ``numba.pycc`` into a plain extension module, load in under a
millisecond and need neither Numba nor LLVM at run time. They run serially (no ``prange`` threads), so
:mod:`.rans_numba` uses them for small jobs only, and never for the parametric-family path.

Same bytes, by construction: the extension is compiled from the very functions the JIT runs (their
``py_func``), and tests hold the two to identical output. A build is named by a key over the files the kernels
are compiled from (:data:`SOURCES`) and the compiler stack (Numba, llvmlite, NumPy, Python, machine), so an
edited source or upgraded Numba is never served stale machine code: without a matching build, the JIT runs.

Built by ``make`` at install time (``python -m nctk.entropy.rans_aot``), into the kernel cache folder of
:func:`nctk.entropy.jit.cache_dir`; it needs a C compiler then, never at run time.

The extension's functions do not check argument types (a wrong dtype would crash the process), so every
call goes through :func:`_call`, which converts each argument to exactly the declared type.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import platform
import stat
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from nctk.entropy.jit import cache_dir

__all__ = ["MAX_SYMBOLS", "build", "build_key", "decode_chunks", "encode_chunks", "kernels"]

NAME = "nctk_rans_aot"
# Every file whose code or constants the kernels compile in (a change to any of them needs a new build).
SOURCES = ("rans_aot.py", "rans_numba.py", "rans_host.py", "rans_ref.py", "jit.py")
MAX_SYMBOLS = 1 << 22  # jobs above this many symbols use the parallel JIT kernels (serial ~30 ms here)

# Declared argument types, by export: a numpy dtype for 1-D arrays, int/bool for scalars. Symbols come in
# the dtypes the codecs use most; any other integer dtype is widened to int64 first (values unchanged).
_F8, _I8, _I4, _U4, _U2 = (np.dtype(t) for t in ("f8", "i8", "i4", "u4", "u2"))
_FAMILY = [bool, _F8, _F8, _I8, int, _F8, _I4]  # family flag, means, scales, scale bits, n_frac, bounds, coarse
SYMBOL_DTYPES = tuple(np.dtype(t) for t in ("u1", "u2", "i4", "i8"))
_ENCODE = [None, _I8, int, _I8, *_FAMILY, _I8, _I8, _I8, _U4, _F8, int, int, _I8]
_DECODE = [_U4, _I8, _I8, _I8, int, *_FAMILY, _I8, _I8, _I8, _U4, _U2, int, int, int, _I4]


def build_key() -> str:
    """Names the sources and compiler stack a build comes from (hex SHA-256)."""
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes() + b"\0")
    for dist in ("numba", "llvmlite", "numpy"):
        h.update(f"{dist}={metadata.version(dist)}\0".encode())
    h.update(f"{sys.version}\0{platform.machine()}\0{sysconfig.get_config_var('EXT_SUFFIX')}".encode())
    return h.hexdigest()


def _path(key: str) -> Path | None:
    where = cache_dir()
    if where is None:
        return None
    return Path(where) / "aot" / f"{NAME}-{key[:24]}{sysconfig.get_config_var('EXT_SUFFIX')}"


def _trusted(path: Path) -> bool:
    """The file and its folder belong to this user and nobody else can write them: the module is machine
    code this process is about to run (the same rule as the private temporary folder in :mod:`.jit`)."""
    if not hasattr(os, "geteuid"):
        return True
    for p in (path, path.parent):
        st = p.lstat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
            return False
    return True


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def kernels() -> ModuleType | None:
    """The ahead-of-time module built from the current sources, or None: not built, disabled by
    ``NCTK_AOT=0``, not this user's, or damaged (its digest, written beside it by :func:`build`, differs)."""
    if os.environ.get("NCTK_AOT", "1") == "0":
        return None
    path = _path(build_key())
    try:
        if path is None or not _trusted(path) or path.with_suffix(".sha256").read_text() != _digest(path):
            return None
    except OSError:  # not built (or half-removed)
        return None
    try:
        spec = importlib.util.spec_from_file_location(NAME, path)
        module = importlib.util.module_from_spec(spec)  # loads the shared object
        spec.loader.exec_module(module)
    except (ImportError, OSError, AttributeError):  # a build for another platform: the JIT path serves
        return None
    return module


def _call(fn: Any, types: list, args: tuple, out: int | None = None) -> Any:
    """``fn(*args)`` with every argument converted to exactly its declared type (the extension trusts
    them blindly). ``out``: the position of an output array, which must not be a converted copy."""
    conv = []
    for t, a in zip(types, args, strict=True):
        if t is int:
            conv.append(int(a))
        elif t is bool:
            conv.append(bool(a))
        else:
            conv.append(np.ascontiguousarray(a, dtype=t).reshape(-1))
    if out is not None:
        a = args[out]
        if not (isinstance(a, np.ndarray) and a.dtype == types[out] and a.ndim == 1 and a.flags.c_contiguous
                and a.flags.writeable):
            raise TypeError("the output array must be a writable contiguous 1-D array of the declared dtype")
        conv[out] = a
    return fn(*conv)


def encode_chunks(module: ModuleType, sym: np.ndarray, *args: Any) -> Any:
    """``rans_numba._encode_chunks`` (same arguments, same results) through the ahead-of-time build."""
    dt = sym.dtype if sym.dtype in SYMBOL_DTYPES else _I8
    return _call(getattr(module, f"encode_{dt.str[1:]}"), [dt, *_ENCODE[1:]], (sym, *args))


def decode_chunks(module: ModuleType, *args: Any) -> Any:
    """``rans_numba._decode_chunks`` (non-family: int32 output) through the ahead-of-time build."""
    return _call(module.decode_i4, _DECODE, args, out=len(_DECODE) - 1)


def _numba_type(t: Any) -> Any:
    from numba import from_dtype, types

    if t is int:
        return types.int64
    if t is bool:
        return types.boolean
    return types.Array(from_dtype(t), 1, "A")


def build(force: bool = False) -> Path | None:
    """Compile the module for the current sources (seconds to a minute); returns its path, or None when
    there is no cache folder. Idempotent: an existing build for the same key is kept unless ``force``."""
    import warnings

    from numba import types
    from numba.core.errors import NumbaPendingDeprecationWarning

    with warnings.catch_warnings():  # pycc is pending deprecation; the pinned Numba has it, and tests say so
        warnings.simplefilter("ignore", NumbaPendingDeprecationWarning)
        from numba.pycc import CC

    from nctk.entropy import jit, rans_numba

    key = build_key()
    path = _path(key)
    if path is None:
        return None
    sidecar = path.with_suffix(".sha256")
    if not force and path.is_file() and sidecar.is_file() and sidecar.read_text() == _digest(path):
        return path
    jit.materialize()  # kernels' globals become real dispatchers, which pycc compiles into the module
    enc, dec = rans_numba._encode_chunks.py_func, rans_numba._decode_chunks.py_func
    out = types.Tuple([types.Array(types.uint32, 1, "C"), types.Array(types.int64, 1, "C"),
                       types.Array(types.int64, 1, "C")])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        cc = CC(NAME)
        cc.output_dir = tmp
        cc.verbose = False
        for dt in SYMBOL_DTYPES:
            sig = out(*(_numba_type(t) for t in [dt, *_ENCODE[1:]]))
            cc.export(f"encode_{dt.str[1:]}", sig)(enc)
        cc.export("decode_i4", types.Array(types.int64, 1, "C")(*(_numba_type(t) for t in _DECODE)))(dec)
        cc.compile()
        (built,) = Path(tmp).glob(f"{NAME}*")
        with open(built, "rb") as f:
            os.fsync(f.fileno())
        os.replace(built, path)  # atomic: a concurrent reader sees no build or a whole one
    sidecar.write_text(_digest(path))  # written last: a build without it is never loaded
    for old in path.parent.glob(f"{NAME}-*"):  # builds for other sources or compiler stacks
        if not old.name.startswith(path.with_suffix("").name):
            old.unlink(missing_ok=True)
    kernels.cache_clear()
    return path


def _main() -> int:
    """``python -m nctk.entropy.rans_aot``: build (or keep) the module and warm the JIT cache too."""
    try:
        path = build()
    except Exception as e:  # no C compiler, say: the JIT path serves every call, only start-up is slower
        print(f"nctk: ahead-of-time rANS kernels not built ({type(e).__name__}: {e}); the JIT path will serve",
              file=sys.stderr)
        path = None
    from nctk.entropy import rans_numba

    rans_numba.warm_up()
    print(f"nctk: rANS kernels ready ({'ahead-of-time build ' + str(path) if path else 'JIT only'})")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
