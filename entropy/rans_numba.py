"""Numba twin of :mod:`entropy.rans`: the same bytes, compiled, parallel over independent chunks.

Decode finds the symbol in
O(1): a lookup of the slot's top ``lut_bits`` bits gives a first candidate, and a short forward scan
(almost always zero steps) finishes. ``tests/test_rans.py`` holds these kernels to the reference bytes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from entropy.errors import CorruptStreamError, FormatError, NctkError
from entropy.rans import (
    DEFAULT_LANES,
    ESCAPE_LENGTH_BITS,
    MAX_LANES,
    STATE_LOW,
    check_indexes,
    check_inputs,
)
from entropy.tables import ParametricFamily, Table, Tables

_NO_ERROR, _ERR_SHORT, _ERR_END, _ERR_ESCAPE = 0, 1, 2, 3
_ERRORS = {
    _ERR_SHORT: "rANS stream ended early",
    _ERR_END: "rANS stream failed its end check (corrupted or wrong tables)",
    _ERR_ESCAPE: "escape out of range",
}


# ----------------------------------------------------------------------------------------- encode
# Tables reach the kernels as ``packed[e] = cdf | (freq - 1) << 16`` (one load per symbol).

@njit(inline="always")
def _put(state, lane, start, freq, bits, buf, pos):
    """One encode step on ``lane``; words go backwards into ``buf``; returns the new position."""
    x = state[lane]
    if (x >> (63 - bits)) >= freq:  # x >= freq * 2**(63-bits), without overflowing int64
        pos -= 1
        buf[pos] = x & 0xFFFFFFFF
        x >>= 32
    q = x // freq
    state[lane] = (q << bits) + (x - q * freq) + start
    return pos


@njit(inline="always")
def _put_escape(state, lane, v, off, size, buf, pos):
    """Raw-bit pieces after an escape, pushed in reverse of their decode order."""
    if v >= off + size:
        u = 2 * (v - (off + size))
    else:
        u = 2 * (off - 1 - v) + 1
    k = 0
    while (u >> k) > 0:
        k += 1
    nbits = k - 1 if k > 0 else 0
    npieces = (nbits + 15) // 16
    for p in range(npieces - 1, -1, -1):
        b = min(16, nbits - 16 * p)
        piece = (u >> (16 * p)) & ((1 << b) - 1)
        pos = _put(state, lane, piece, 1, b, buf, pos)
    pos = _put(state, lane, k, 1, ESCAPE_LENGTH_BITS, buf, pos)
    return pos


@njit
def _encode_chunk(sym, idx, starts, offsets, sizes, packed, prec, lanes, buf, end, state):
    """Encode one chunk backwards into ``buf[..end]``; returns the first used position."""
    for j in range(lanes):
        state[j] = STATE_LOW
    pos = end
    lane = (len(sym) - 1) % lanes if len(sym) else 0
    for i in range(len(sym) - 1, -1, -1):
        t = idx[i]
        v = sym[i]
        off = offsets[t]
        size = sizes[t]
        s = v - off
        if s < 0 or s >= size:
            pos = _put_escape(state, lane, v, off, size, buf, pos)
            s = size
        pk = np.int64(packed[starts[t] + s])
        pos = _put(state, lane, pk & 0xFFFF, (pk >> 16) + 1, prec, buf, pos)
        lane = lane - 1 if lane > 0 else lanes - 1
    return pos


@njit
def _escape_count(sym, idx, offsets, sizes):
    c = 0
    for i in range(len(sym)):
        t = idx[i]
        s = sym[i] - offsets[t]
        if s < 0 or s >= sizes[t]:
            c += 1
    return c


@njit(parallel=True)
def _encode_chunks(sym, idx, bounds, starts, offsets, sizes, packed, prec, lanes):
    """All chunks into one buffer: chunk ``c`` is ``lanes`` states (2 words each) + its words."""
    nchunks = len(bounds) - 1
    esc = np.empty(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a, b = bounds[c], bounds[c + 1]
        esc[c] = _escape_count(sym[a:b], idx[a:b], offsets, sizes)
    caps = np.empty(nchunks + 1, dtype=np.int64)
    caps[0] = 0
    for c in range(nchunks):
        # Each symbol emits at most one word, each escape at most 4 more (length + 3 pieces).
        caps[c + 1] = caps[c] + 2 * lanes + (bounds[c + 1] - bounds[c]) + 4 * esc[c]
    buf = np.empty(caps[nchunks], dtype=np.uint32)
    first = np.empty(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a, b = bounds[c], bounds[c + 1]
        state = np.empty(lanes, dtype=np.int64)
        pos = _encode_chunk(sym[a:b], idx[a:b], starts, offsets, sizes, packed, prec, lanes, buf,
                            caps[c + 1], state)
        for j in range(lanes):  # the states go right before the words, low word first
            buf[pos - 2 * lanes + 2 * j] = state[j] & 0xFFFFFFFF
            buf[pos - 2 * lanes + 2 * j + 1] = state[j] >> 32
        first[c] = pos - 2 * lanes
    return buf, first, caps


def _chunk_bounds(n: int, chunk_size: int) -> np.ndarray:
    if chunk_size < 1:
        raise NctkError("chunk_size must be positive")
    b = np.arange(0, n, chunk_size, dtype=np.int64)
    return np.append(b, n) if n else np.array([0, 0], dtype=np.int64)


def _encode_bounded(sym, idx, tables: Tables, bounds, lanes: int) -> list[bytes]:
    buf, first, caps = _encode_chunks(sym, idx, bounds, tables.starts, tables.offsets, tables.sizes,
                                      tables.packed, tables.precision, lanes)
    raw = buf.astype("<u4", copy=False)
    return [raw[first[c] : caps[c + 1]].tobytes() for c in range(len(first))]


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Split into chunks of ``chunk_size`` symbols and code each as an independent stream."""
    sym, idx, tables = check_inputs(symbols, indexes, tables, lanes)
    return _encode_bounded(sym, idx, tables, _chunk_bounds(len(sym), chunk_size), lanes)


def encode(symbols, indexes, tables: Table | Tables, *, lanes: int = DEFAULT_LANES) -> bytes:
    """Same contract and bytes as :func:`entropy.rans.encode`."""
    n = len(np.reshape(np.asarray(symbols), -1))
    return encode_chunks(symbols, indexes, tables, chunk_size=max(n, 1), lanes=lanes)[0]


# ----------------------------------------------------------------------------------------- decode

@njit(inline="always")
def _get_raw(state, lane, bits, words, pos, end):
    """Pop ``bits`` raw bits from ``lane``; returns (value, pos) with pos = -1 on underflow."""
    x = state[lane]
    v = x & ((1 << bits) - 1)
    x >>= bits
    if x < STATE_LOW:
        if pos >= end:
            return v, -1
        x = (x << 32) | np.int64(words[pos])
        pos += 1
    state[lane] = x
    return v, pos


@njit
def _decode_chunk(words, pos, end, idx, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes,
                  state, out):
    """Decode ``len(out)`` symbols reading ``words[pos:end]``; returns an error code (0 = ok)."""
    mask = (1 << prec) - 1
    shift = prec - lut_bits
    lane = lanes - 1
    for i in range(len(out)):
        lane = lane + 1 if lane < lanes - 1 else 0
        t = idx[i]
        base = starts[t]
        size = sizes[t]
        x = state[lane]
        slot = x & mask
        s = np.int64(lut[(t << lut_bits) | (slot >> shift)])
        e = base + s
        while s < size and (np.int64(packed[e + 1]) & 0xFFFF) <= slot:
            s += 1
            e += 1
        pk = np.int64(packed[e])
        x = ((pk >> 16) + 1) * (x >> prec) + slot - (pk & 0xFFFF)
        if x < STATE_LOW:
            if pos >= end:
                return _ERR_SHORT
            x = (x << 32) | np.int64(words[pos])
            pos += 1
        state[lane] = x
        off = offsets[t]
        if s < size:
            out[i] = off + s
            continue
        k, pos = _get_raw(state, lane, ESCAPE_LENGTH_BITS, words, pos, end)
        if pos < 0:
            return _ERR_SHORT
        if k > 34:
            return _ERR_ESCAPE
        nbits = k - 1 if k > 0 else 0
        u = (np.int64(1) << (k - 1)) if k > 0 else np.int64(0)
        sh = 0
        while nbits > 0:
            b = min(16, nbits)
            piece, pos = _get_raw(state, lane, b, words, pos, end)
            if pos < 0:
                return _ERR_SHORT
            u |= piece << sh
            sh += b
            nbits -= b
        v = off + size + (u >> 1) if u % 2 == 0 else off - 1 - (u >> 1)
        if v < -(1 << 31) or v >= (1 << 31):
            return _ERR_ESCAPE
        out[i] = v
    if pos != end:
        return _ERR_END
    for j in range(lanes):
        if state[j] != STATE_LOW:
            return _ERR_END
    return _NO_ERROR


@njit(parallel=True)
def _decode_chunks(words, wbounds, bounds, idx, starts, offsets, sizes, packed, lut, lut_bits, prec,
                   lanes, out):
    """Chunk ``c`` occupies ``words[wbounds[c]:wbounds[c+1]]`` (u32): states, then its words."""
    nchunks = len(bounds) - 1
    errors = np.zeros(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a = wbounds[c]
        state = np.empty(lanes, dtype=np.int64)
        for j in range(lanes):
            state[j] = np.int64(words[a + 2 * j]) | (np.int64(words[a + 2 * j + 1]) << 32)
            if state[j] < 0:  # a u64 state >= 2**63 cannot come from an encoder
                errors[c] = _ERR_END
        if errors[c] == 0:
            s0, s1 = bounds[c], bounds[c + 1]
            errors[c] = _decode_chunk(words, a + 2 * lanes, wbounds[c + 1], idx[s0:s1], starts, offsets,
                                      sizes, packed, lut, lut_bits, prec, lanes, state, out[s0:s1])
    return errors


def _words_of(chunks: list[bytes | memoryview], lanes: int) -> tuple[np.ndarray, np.ndarray]:
    """All streams as one little-endian u32 array plus each stream's word bounds (zero-copy for one)."""
    lens = np.array([memoryview(c).nbytes for c in chunks], dtype=np.int64)
    for c, n in enumerate(lens):
        if n < 8 * lanes or (n - 8 * lanes) % 4:
            raise FormatError(f"rANS stream {c} of {n} bytes cannot hold {lanes} lanes")
    raw = chunks[0] if len(chunks) == 1 else b"".join(memoryview(c).cast("B") for c in chunks)
    words = np.frombuffer(raw, dtype="<u4")
    wbounds = np.concatenate(([0], np.cumsum(lens // 4))).astype(np.int64)
    return words, wbounds


def _decode_bounded(chunks, idx, tables: Tables, bounds, lanes: int) -> np.ndarray:
    if not (1 <= lanes <= MAX_LANES):
        raise NctkError(f"lanes must be in [1, {MAX_LANES}], got {lanes}")
    words, wbounds = _words_of(chunks, lanes) if len(chunks) else (np.empty(0, "<u4"), np.zeros(1, np.int64))
    lut, lut_bits = tables.lookup()
    out = np.empty(int(bounds[-1]), dtype=np.int32)
    errors = _decode_chunks(words, wbounds, bounds, idx, tables.starts, tables.offsets, tables.sizes,
                            tables.packed, lut, lut_bits, tables.precision, lanes, out)
    bad = np.flatnonzero(errors)
    if len(bad):
        raise CorruptStreamError(f"chunk {bad[0]}: {_ERRORS[int(errors[bad[0]])]}")
    return out


def _counts_bounds(counts, nchunks: int) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(counts) != nchunks or (len(counts) and counts.min() < 0):
        raise NctkError("need one non-negative count per chunk")
    return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)


def decode_chunks(chunks: list[bytes | memoryview], indexes, tables: Table | Tables,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Decode independent streams; ``counts[c]`` symbols from ``chunks[c]``; one int32 array."""
    tables = Tables.of(tables)
    bounds = _counts_bounds(counts, len(chunks))
    idx = check_indexes(indexes, int(bounds[-1]), tables)
    return _decode_bounded(chunks, idx, tables, bounds, lanes)


def decode(data: bytes | memoryview, indexes, tables: Table | Tables, count: int | None = None,
           *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Same contract as :func:`entropy.rans.decode`."""
    if count is None:
        if indexes is None or np.ndim(indexes) == 0:
            raise NctkError("count is required when indexes is a scalar")
        count = len(np.reshape(indexes, -1))
    return decode_chunks([data], indexes, tables, [count], lanes=lanes)


# ------------------------------------------------------------------ fused mean-scale (Gaussian...) path

@njit(inline="always")
def _family_index(mu, sigma, sigma_bits, n_frac, boundaries, coarse):
    """Table index and integer base for one (mean, scale): exact, same as ParametricFamily.index.

    ``sigma_bits`` is the float64 bit pattern of ``sigma``; its top 17 bits pick a coarse cell.
    """
    t = np.floor(mu * n_frac)
    base = np.floor(t / n_frac)
    frac = np.int64(t - base * n_frac)
    cell = sigma_bits >> 47
    if cell < coarse[0]:
        j = 0
    elif cell > coarse[1]:
        j = len(boundaries)
    else:
        j = np.int64(coarse[2 + cell - coarse[0]])
    while j < len(boundaries) and boundaries[j] <= sigma:
        j += 1
    return j * n_frac + frac, np.int64(base)


@njit(parallel=True)
def _family_prepare(sym, means, scales, scale_bits, bounds, n_frac, boundaries, coarse, idx, rel):
    """Table index and mean-relative symbol for each input (``sym`` may be empty for decode)."""
    for c in prange(len(bounds) - 1):
        for i in range(bounds[c], bounds[c + 1]):
            t, base = _family_index(means[i], scales[i], scale_bits[i], n_frac, boundaries, coarse)
            idx[i] = t
            rel[i] = (sym[i] - base) if len(sym) else base


def _family_arrays(family: ParametricFamily, means, scales, n: int):
    mu = np.ascontiguousarray(np.reshape(means, -1), dtype=np.float64)
    sigma = np.ascontiguousarray(np.reshape(scales, -1), dtype=np.float64)
    if len(mu) != n or len(sigma) != n:
        raise NctkError(f"need one mean and one scale per symbol ({n}), got {len(mu)} and {len(sigma)}")
    if n and (not np.isfinite(mu).all() or np.abs(mu).max() >= 2.0**30):
        raise NctkError("means must be finite and below 2**30 in magnitude")
    return mu, sigma, sigma.view(np.int64)


def encode_family(symbols, means, scales, family: ParametricFamily, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Code integer ``symbols`` under per-symbol (mean, scale); the fused form of
    ``rans.encode(symbols - base, idx, family.tables)`` with ``idx, base = family.index(...)``."""
    sym = np.ascontiguousarray(np.reshape(symbols, -1)).astype(np.int64, copy=False)
    mu, sigma, bits = _family_arrays(family, means, scales, len(sym))
    bounds = _chunk_bounds(len(sym), chunk_size)
    idx = np.empty(len(sym), dtype=np.int64)
    rel = np.empty(len(sym), dtype=np.int64)
    _family_prepare(sym, mu, sigma, bits, bounds, family.n_frac, family.boundaries, family.coarse, idx, rel)
    if len(rel) and (rel.min() < -(1 << 31) or rel.max() >= 1 << 31):
        raise NctkError("symbols minus their means must fit in int32")
    return _encode_bounded(rel, idx, family.tables, bounds, lanes)


def decode_family(chunks: list[bytes | memoryview], means, scales, family: ParametricFamily,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Inverse of :func:`encode_family`; int64 symbols."""
    bounds = _counts_bounds(counts, len(chunks))
    n = int(bounds[-1])
    mu, sigma, bits = _family_arrays(family, means, scales, n)
    idx = np.empty(n, dtype=np.int64)
    base = np.empty(n, dtype=np.int64)
    _family_prepare(np.empty(0, np.int64), mu, sigma, bits, bounds, family.n_frac, family.boundaries,
                    family.coarse, idx, base)
    return _decode_bounded(chunks, idx, family.tables, bounds, lanes).astype(np.int64) + base
