"""Host-side code shared by the rANS backends: chunking, kernel arguments, the kernels' error codes.

:mod:`entropy.coder` (reference path), :mod:`entropy.rans_numba` and :mod:`entropy.rans_cuda` all cut
symbols into chunks, validate arguments and report kernel errors through these, so every backend splits
the same way and raises the same errors for the same input.

The error codes and :data:`ESCAPE_WORDS` are compiled into the kernels as constants. Numba's disk cache
keys on the kernel's own file, so after changing one of them here, touch ``rans_numba.py`` too.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nctk.entropy.errors import CorruptStreamError, FormatError, NctkError

# Decode kernels report one of these per chunk (0 = ok).
NO_ERROR, ERR_SHORT, ERR_END, ERR_ESCAPE, ERR_INDEX, ERR_MEAN = 0, 1, 2, 3, 4, 5
MEANS_ERROR = "means must be finite and below 2**30 in magnitude"
DECODE_ERRORS = {
    ERR_SHORT: "rANS stream ended early",
    ERR_END: "rANS stream failed its end check (corrupted or wrong tables)",
    ERR_ESCAPE: "escape out of range",
    ERR_INDEX: "table index out of range",
    ERR_MEAN: MEANS_ERROR,
}
# Encode kernels return each chunk's first used buffer position, or one of these (negative).
ENC_OVERFLOW, ENC_BAD_INDEX, ENC_BAD_SYMBOL, ENC_BAD_MEAN = -1, -2, -3, -4
ENCODE_ERRORS = {ENC_BAD_INDEX: "table index out of range", ENC_BAD_SYMBOL: "symbols must fit in int32",
                 ENC_BAD_MEAN: MEANS_ERROR}
ESCAPE_WORDS = 5  # most words one symbol emits: up to 4 raw-bit words after an escape, then its entry's word

# Integer dtypes the kernels take as they are; others (uint64, non-native byte order) become int64.
KERNEL_INTS = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32))


def chunk_bounds(n: int, chunk_size: int) -> np.ndarray:
    """int64 ``[0, chunk_size, 2*chunk_size, ..., n]``: chunk ``c`` is symbols ``bounds[c]:bounds[c+1]``.

    ``n = 0`` gives one empty chunk (``[0, 0]``): an empty input still has a stream to store."""
    if chunk_size < 1:
        raise NctkError("chunk_size must be positive")
    if n < 0:
        raise NctkError(f"symbol count must be >= 0, got {n}")
    b = np.arange(0, n, chunk_size, dtype=np.int64)
    return np.append(b, n) if n else np.array([0, 0], dtype=np.int64)


def counts_bounds(counts, nchunks: int) -> np.ndarray:
    """Chunk bounds from per-chunk symbol counts (one non-negative count per chunk)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(counts) != nchunks or (len(counts) and counts.min() < 0):
        raise NctkError("need one non-negative count per chunk")
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def int_array(a, what: str) -> np.ndarray:
    """A contiguous 1-D integer array the kernels take as is (no copy for the common dtypes)."""
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    a = a.reshape(-1)
    if a.dtype.kind == "b":
        a = a.view(np.uint8)
    if a.dtype.kind not in "iu":
        raise NctkError(f"{what} must be integers, got dtype {a.dtype}")
    if a.dtype not in KERNEL_INTS:
        if a.dtype.kind == "u" and a.max() >= 1 << 63:
            raise NctkError(f"{what} must fit in int32")
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def index_arg(indexes, count: int, ntables: int, to_ints: Callable = int_array) -> tuple:
    """``(indexes, stride)`` for the kernels: one table index per symbol (stride 1), or one index for
    every symbol (stride 0) when ``indexes`` is a scalar or None (checked here: kernels read it once).

    ``to_ints`` turns a non-scalar into a 1-D integer array (host or device); the one-element arrays of the
    stride-0 case are host arrays."""
    if indexes is None or np.ndim(indexes) == 0:
        t = 0 if indexes is None else int(indexes)
        if not 0 <= t < ntables:
            raise NctkError(f"table index out of range [0, {ntables})")
        return np.array([t], dtype=np.int64), 0
    idx = to_ints(indexes, "table indexes")
    if idx.shape[0] != count:
        raise NctkError(f"{idx.shape[0]} table indexes for {count} symbols")
    return (idx, 1) if count else (np.zeros(1, np.int64), 0)


def stream_words(chunks: list[bytes | memoryview], lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """All streams as one little-endian u32 array plus each stream's word bounds (zero-copy for one)."""
    lens = np.array([memoryview(c).nbytes for c in chunks], dtype=np.int64)
    for c, n in enumerate(lens):
        if n < 8 * lanes or (n - 8 * lanes) % 4:
            raise FormatError(f"rANS stream {c} of {n} bytes cannot hold {lanes} lanes")
    raw = chunks[0] if len(chunks) == 1 else b"".join(memoryview(c).cast("B") for c in chunks)
    words = np.frombuffer(raw, dtype="<u4")
    wbounds = np.concatenate(([0], np.cumsum(lens // 4))).astype(np.int64)
    return words, wbounds


def escape_slack(sizes: np.ndarray) -> np.ndarray:
    """Words each chunk's encode buffer reserves for escapes on the first pass (beyond one word per
    symbol, all an ordinary symbol can emit); a chunk that needs more is redone (:func:`next_slack`)."""
    return sizes // 64 + 16


def next_slack(first: np.ndarray, sizes: np.ndarray, slack: np.ndarray, ntables: int) -> np.ndarray | None:
    """After an encode pass returned ``first`` per chunk: None when every chunk fit, else the slack for
    redoing the chunks that overflowed (their worst case). Raises for a bad table index, symbol or mean."""
    bad = first[first < 0]
    if not len(bad):
        return None
    if bad.min() < ENC_OVERFLOW:
        raise NctkError(f"{ENCODE_ERRORS[int(bad.min())]} (table set of {ntables} tables)")
    return np.where(first == ENC_OVERFLOW, ESCAPE_WORDS * sizes + 16, slack)


def check_decode_errors(errors: np.ndarray) -> None:
    """Raise for the first chunk whose decode kernel reported an error (bad means: :class:`NctkError`,
    anything else: :class:`CorruptStreamError`)."""
    bad = np.flatnonzero(errors)
    if len(bad):
        err = int(errors[bad[0]])
        if err == ERR_MEAN:
            raise NctkError(MEANS_ERROR)
        raise CorruptStreamError(f"chunk {bad[0]}: {DECODE_ERRORS[err]}")
