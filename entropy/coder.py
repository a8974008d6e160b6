"""One entry point for rANS coding: pick a backend by name, get the same bytes from each.

``backend="numba"`` (default) is the fast CPU twin; ``"reference"`` is the pure-Python definition;
``"cuda"`` is the GPU twin (numba-cuda, a device or ``NUMBA_ENABLE_CUDASIM=1``). All take the same
arguments, are stateless and produce the same bytes.
"""

from __future__ import annotations

import numpy as np

from nctk.entropy import rans_ref
from nctk.entropy.errors import NctkError
from nctk.entropy.tables import Table, Tables

CODER_ID = rans_ref.CODER_ID
CODER_VERSION = rans_ref.CODER_VERSION
DEFAULT_LANES = rans_ref.DEFAULT_LANES
DEFAULT_CHUNK = 1 << 18  # symbols per independent chunk: ~0.02% of overhead, parallel, seekable
BACKENDS = ("numba", "reference")  # always available
GPU_BACKENDS = ("cuda",)  # only where numba.cuda finds a device (or runs its simulator)


def _backend(name: str):
    if name == "numba":
        from nctk.entropy import rans_numba

        return rans_numba
    if name == "reference":
        return None
    if name == "cuda":
        try:
            from nctk.entropy import rans_cuda
        except ImportError as e:  # numba-cuda (the [gpu] extra) or its CUDA bindings are missing
            raise NctkError(f"CUDA backend unavailable: {e}") from None
        ok, why = rans_cuda.available()
        if not ok:
            raise NctkError(f"CUDA backend unavailable: {why}")
        return rans_cuda
    raise NctkError(f"unknown coder backend {name!r}; choose one of {', '.join(BACKENDS + GPU_BACKENDS)}")


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int = DEFAULT_CHUNK,
                  lanes: int = DEFAULT_LANES, backend: str = "numba") -> list[bytes]:
    """Code ``symbols[i]`` with table ``indexes[i]`` (None or a scalar: one table for all) in
    independent chunks of ``chunk_size`` symbols; returns one rANS stream per chunk."""
    impl = _backend(backend)
    if impl is not None:
        return impl.encode_chunks(symbols, indexes, tables, chunk_size=chunk_size, lanes=lanes)
    sym, idx, tables = rans_ref.check_inputs(symbols, indexes, tables, lanes)
    if chunk_size < 1:
        raise NctkError("chunk_size must be positive")
    starts = range(0, max(len(sym), 1), chunk_size)
    return [rans_ref.encode(sym[a : a + chunk_size], idx[a : a + chunk_size], tables, lanes=lanes)
            for a in starts]


def chunk_counts(n: int, chunk_size: int = DEFAULT_CHUNK) -> list[int]:
    """Symbols in each chunk :func:`encode_chunks` makes of ``n`` symbols (one empty chunk when n is 0)."""
    if n < 0 or chunk_size < 1:
        raise NctkError("need n >= 0 and chunk_size >= 1")
    return [min(chunk_size, n - a) for a in range(0, n, chunk_size)] or [0]


def decode_chunks(chunks, indexes, tables: Table | Tables, counts, *, lanes: int = DEFAULT_LANES,
                  backend: str = "numba") -> np.ndarray:
    """Decode ``counts[c]`` symbols from each stream ``chunks[c]``; one int32 array."""
    impl = _backend(backend)
    if impl is not None:
        return impl.decode_chunks(chunks, indexes, tables, counts, lanes=lanes)
    tables = Tables.of(tables)
    counts = [int(c) for c in counts]
    if len(counts) != len(chunks) or any(c < 0 for c in counts):
        raise NctkError("need one non-negative count per chunk")
    idx = rans_ref.check_indexes(indexes, sum(counts), tables)
    out, a = [], 0
    for data, n in zip(chunks, counts, strict=True):
        out.append(rans_ref.decode(data, idx[a : a + n], tables, n, lanes=lanes))
        a += n
    return np.concatenate(out) if out else np.empty(0, np.int32)
