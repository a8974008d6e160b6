"""One entry point for rANS coding: pick a backend by name, get the same bytes from each.

``backend="numba"`` (default) is the fast CPU twin; ``"reference"`` is the pure-Python definition;
``"cuda"`` is the GPU twin (numba-cuda, a device or ``NUMBA_ENABLE_CUDASIM=1``). All take the same
arguments, are stateless and produce the same bytes. ``encode_chunks`` / ``decode_chunks`` code symbols
with tables chosen by index; ``encode_family`` / ``decode_family`` with a per-symbol (mean, scale) of a
:class:`~entropy.tables.ParametricFamily`.
"""

from __future__ import annotations

import numpy as np

from nctk.entropy import rans_ref
from nctk.entropy.errors import NctkError
from nctk.entropy.rans_host import MEANS_ERROR, chunk_bounds, counts_bounds, int_array
from nctk.entropy.tables import ParametricFamily, Table, Tables

CODER_ID = rans_ref.CODER_ID
CODER_VERSION = rans_ref.CODER_VERSION
DEFAULT_LANES = rans_ref.DEFAULT_LANES
DEFAULT_CHUNK = 1 << 18  # symbols per independent chunk: ~0.02% of overhead, parallel, seekable
BACKENDS = ("numba", "reference")  # always available
GPU_BACKENDS = ("cuda",)  # only where numba.cuda finds a device (or runs its simulator)


def _backend(name: str):
    """The backend's module, or None for the reference (coded here, from :mod:`entropy.rans_ref`)."""
    if name == "numba":
        from nctk.entropy import rans_numba

        return rans_numba
    if name == "reference":
        return None
    if name == "cuda":
        try:
            from nctk.entropy import rans_cuda
            from nctk.entropy.cuda_common import available
        except ImportError as e:  # numba-cuda (the [gpu] extra) or its CUDA bindings are missing
            raise NctkError(f"CUDA backend unavailable: {e}") from None
        ok, why = available()
        if not ok:
            raise NctkError(f"CUDA backend unavailable: {why}")
        return rans_cuda
    raise NctkError(f"unknown coder backend {name!r}; choose one of {', '.join(BACKENDS + GPU_BACKENDS)}")


def chunk_counts(n: int, chunk_size: int = DEFAULT_CHUNK) -> list[int]:
    """Symbols in each chunk the encoders make of ``n`` symbols (one empty chunk when n is 0)."""
    return np.diff(chunk_bounds(n, chunk_size)).tolist()


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int = DEFAULT_CHUNK,
                  lanes: int = DEFAULT_LANES, backend: str = "numba") -> list[bytes]:
    """Code ``symbols[i]`` with table ``indexes[i]`` (None or a scalar: one table for all) in
    independent chunks of ``chunk_size`` symbols; returns one rANS stream per chunk."""
    impl = _backend(backend)
    if impl is not None:
        return impl.encode_chunks(symbols, indexes, tables, chunk_size=chunk_size, lanes=lanes)
    sym, idx, tables = rans_ref.check_inputs(symbols, indexes, tables, lanes)
    b = chunk_bounds(len(sym), chunk_size)
    return [rans_ref.encode(sym[b[c] : b[c + 1]], idx[b[c] : b[c + 1]], tables, lanes=lanes)
            for c in range(len(b) - 1)]


def decode_chunks(chunks, indexes, tables: Table | Tables, counts, *, lanes: int = DEFAULT_LANES,
                  backend: str = "numba") -> np.ndarray:
    """Decode ``counts[c]`` symbols from each stream ``chunks[c]``; one int32 array."""
    impl = _backend(backend)
    if impl is not None:
        return impl.decode_chunks(chunks, indexes, tables, counts, lanes=lanes)
    tables = Tables.of(tables)
    b = counts_bounds(counts, len(chunks))
    idx = rans_ref.check_indexes(indexes, int(b[-1]), tables)
    out = [rans_ref.decode(data, idx[b[c] : b[c + 1]], tables, int(b[c + 1] - b[c]), lanes=lanes)
           for c, data in enumerate(chunks)]
    return np.concatenate(out) if out else np.empty(0, np.int32)


def _family_index(family: ParametricFamily, means, scales, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``family.index(means, scales)``, after the checks the fast backends make."""
    mu = np.asarray(means, dtype=np.float64).reshape(-1)
    sigma = np.asarray(scales, dtype=np.float64).reshape(-1)
    if len(mu) != n or len(sigma) != n:
        raise NctkError(f"need one mean and one scale per symbol ({n}), got {len(mu)} and {len(sigma)}")
    if not (np.abs(mu) < 2.0**30).all():  # also catches NaN
        raise NctkError(MEANS_ERROR)
    return family.index(mu, sigma)


def encode_family(symbols, means, scales, family: ParametricFamily, *, chunk_size: int = DEFAULT_CHUNK,
                  lanes: int = DEFAULT_LANES, backend: str = "numba") -> list[bytes]:
    """Code integer ``symbols[i]`` under mean ``means[i]`` and scale ``scales[i]`` of ``family``, in
    independent chunks of ``chunk_size`` symbols: the bytes of :func:`encode_chunks` of
    ``symbols - base`` with tables ``idx``, where ``idx, base = family.index(means, scales)``
    (docs/FORMAT.md, "Parametric families"). ``symbols - base`` must fit in int32."""
    impl = _backend(backend)
    if impl is not None:
        return impl.encode_family(symbols, means, scales, family, chunk_size=chunk_size, lanes=lanes)
    rans_ref.check_lanes(lanes)
    sym = int_array(symbols, "symbols")
    idx, base = _family_index(family, means, scales, len(sym))
    return encode_chunks(sym.astype(np.int64) - base, idx, family.tables, chunk_size=chunk_size, lanes=lanes,
                         backend="reference")


def decode_family(chunks, means, scales, family: ParametricFamily, counts, *, lanes: int = DEFAULT_LANES,
                  backend: str = "numba") -> np.ndarray:
    """Inverse of :func:`encode_family`: ``counts[c]`` symbols from each stream ``chunks[c]``; int64."""
    impl = _backend(backend)
    if impl is not None:
        return impl.decode_family(chunks, means, scales, family, counts, lanes=lanes)
    rans_ref.check_lanes(lanes)
    b = counts_bounds(counts, len(chunks))
    idx, base = _family_index(family, means, scales, int(b[-1]))
    rel = decode_chunks(chunks, idx, family.tables, np.diff(b), lanes=lanes, backend="reference")
    return rel.astype(np.int64) + base
