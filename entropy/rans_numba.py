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

@njit(inline="always")
def _put(state, lane, start, freq, bits, buf, pos):
    """One encode step on ``lane``; words go backwards into ``buf``; returns the new position."""
    x = state[lane]
    if (x >> (63 - bits)) >= freq:  # x >= freq * 2**(63-bits), without overflowing int64
        pos -= 1
        buf[pos] = x & 0xFFFFFFFF
        x >>= 32
    state[lane] = ((x // freq) << bits) + (x % freq) + start
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
def _encode_chunk(sym, idx, starts, offsets, sizes, cdf, freqs, prec, lanes, buf, end, state):
    """Encode one chunk backwards into ``buf[..end]``; returns the first used position."""
    for j in range(lanes):
        state[j] = STATE_LOW
    pos = end
    n = len(sym)
    for i in range(n - 1, -1, -1):
        lane = i % lanes
        t = idx[i]
        v = sym[i]
        base = starts[t]
        off = offsets[t]
        size = sizes[t]
        s = v - off
        if s < 0 or s >= size:
            pos = _put_escape(state, lane, v, off, size, buf, pos)
            s = size
        e = base + s
        pos = _put(state, lane, cdf[e], freqs[e], prec, buf, pos)
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
def _encode_chunks(sym, idx, bounds, starts, offsets, sizes, cdf, freqs, prec, lanes):
    nchunks = len(bounds) - 1
    caps = np.empty(nchunks + 1, dtype=np.int64)
    caps[0] = 0
    esc = np.empty(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a, b = bounds[c], bounds[c + 1]
        esc[c] = _escape_count(sym[a:b], idx[a:b], offsets, sizes)
    for c in range(nchunks):
        # Each symbol emits at most one word, each escape at most 4 more (length + 3 pieces).
        caps[c + 1] = caps[c] + (bounds[c + 1] - bounds[c]) + 4 * esc[c]
    buf = np.empty(caps[nchunks], dtype=np.uint32)
    first = np.empty(nchunks, dtype=np.int64)
    states = np.empty((nchunks, lanes), dtype=np.int64)
    for c in prange(nchunks):
        a, b = bounds[c], bounds[c + 1]
        first[c] = _encode_chunk(sym[a:b], idx[a:b], starts, offsets, sizes, cdf, freqs,
                                 prec, lanes, buf, caps[c + 1], states[c])
    return buf, first, caps, states


def _chunk_bounds(n: int, chunk_size: int) -> np.ndarray:
    if chunk_size < 1:
        raise NctkError("chunk_size must be positive")
    b = np.arange(0, n, chunk_size, dtype=np.int64)
    return np.append(b, n) if n else np.array([0, 0], dtype=np.int64)


def _assemble(buf, first, caps, states) -> list[bytes]:
    out = []
    for c in range(len(first)):
        head = states[c].astype("<u8").tobytes()
        out.append(head + buf[first[c] : caps[c + 1]].astype("<u4").tobytes())
    return out


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Split into chunks of ``chunk_size`` symbols and code each as an independent stream."""
    sym, idx, tables = check_inputs(symbols, indexes, tables, lanes)
    bounds = _chunk_bounds(len(sym), chunk_size)
    parts = _encode_chunks(sym, idx, bounds, tables.starts, tables.offsets, tables.sizes,
                           tables.cdf.astype(np.int64), tables.freqs.astype(np.int64),
                           tables.precision, lanes)
    return _assemble(*parts)


def encode(symbols, indexes, tables: Table | Tables, *, lanes: int = DEFAULT_LANES) -> bytes:
    """Same contract and bytes as :func:`entropy.rans.encode`."""
    n = len(np.reshape(np.asarray(symbols), -1))
    return encode_chunks(symbols, indexes, tables, chunk_size=max(n, 1), lanes=lanes)[0]


# ----------------------------------------------------------------------------------------- decode

@njit(inline="always")
def _get_raw(state, lane, bits, words, pos, nwords):
    """Pop ``bits`` raw bits from ``lane``; returns (value, pos) with pos = -1 on underflow."""
    x = state[lane]
    v = x & ((1 << bits) - 1)
    x >>= bits
    if x < STATE_LOW:
        if pos >= nwords:
            return v, -1
        x = (x << 32) | words[pos]
        pos += 1
    state[lane] = x
    return v, pos


@njit
def _decode_chunk(words, idx, starts, offsets, sizes, cdf, freqs, lut, lut_bits, prec, lanes,
                  state, out):
    """Decode ``len(out)`` symbols; returns an error code (0 = ok)."""
    nwords = len(words)
    pos = 0
    mask = (1 << prec) - 1
    shift = prec - lut_bits
    for i in range(len(out)):
        lane = i % lanes
        t = idx[i]
        base = starts[t]
        size = sizes[t]
        x = state[lane]
        slot = x & mask
        s = np.int64(lut[(t << lut_bits) | (slot >> shift)])
        while s < size and cdf[base + s + 1] <= slot:
            s += 1
        e = base + s
        x = freqs[e] * (x >> prec) + slot - cdf[e]
        if x < STATE_LOW:
            if pos >= nwords:
                return _ERR_SHORT
            x = (x << 32) | words[pos]
            pos += 1
        state[lane] = x
        off = offsets[t]
        if s < size:
            out[i] = off + s
            continue
        k, pos = _get_raw(state, lane, ESCAPE_LENGTH_BITS, words, pos, nwords)
        if pos < 0:
            return _ERR_SHORT
        if k > 34:
            return _ERR_ESCAPE
        nbits = k - 1 if k > 0 else 0
        u = (np.int64(1) << (k - 1)) if k > 0 else np.int64(0)
        sh = 0
        while nbits > 0:
            b = min(16, nbits)
            piece, pos = _get_raw(state, lane, b, words, pos, nwords)
            if pos < 0:
                return _ERR_SHORT
            u |= piece << sh
            sh += b
            nbits -= b
        v = off + size + (u >> 1) if u % 2 == 0 else off - 1 - (u >> 1)
        if v < -(1 << 31) or v >= (1 << 31):
            return _ERR_ESCAPE
        out[i] = v
    if pos != nwords:
        return _ERR_END
    for j in range(lanes):
        if state[j] != STATE_LOW:
            return _ERR_END
    return _NO_ERROR


@njit(inline="always")
def _read_le(data, p, nbytes):
    v = np.int64(0)
    for k in range(nbytes):
        v |= np.int64(data[p + k]) << (8 * k)
    return v


@njit(parallel=True)
def _decode_chunks(data, offsets_b, bounds, idx, starts, offsets, sizes, cdf, freqs, lut, lut_bits,
                   prec, lanes, out):
    nchunks = len(bounds) - 1
    errors = np.zeros(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a, b = offsets_b[c], offsets_b[c + 1]
        state = np.empty(lanes, dtype=np.int64)
        for j in range(lanes):
            state[j] = _read_le(data, a + 8 * j, 8)
        w0 = a + 8 * lanes
        nw = (b - w0) // 4
        words = np.empty(nw, dtype=np.int64)
        for k in range(nw):
            words[k] = _read_le(data, w0 + 4 * k, 4)
        s0, s1 = bounds[c], bounds[c + 1]
        errors[c] = _decode_chunk(words, idx[s0:s1], starts, offsets, sizes, cdf, freqs, lut,
                                  lut_bits, prec, lanes, state, out[s0:s1])
    return errors


def decode_chunks(chunks: list[bytes | memoryview], indexes, tables: Table | Tables,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Decode independent streams; ``counts[c]`` symbols from ``chunks[c]``; one int32 array."""
    tables = Tables.of(tables)
    if not (1 <= lanes <= MAX_LANES):
        raise NctkError(f"lanes must be in [1, {MAX_LANES}], got {lanes}")
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if len(counts) != len(chunks) or (len(counts) and counts.min() < 0):
        raise NctkError("need one non-negative count per chunk")
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    idx = check_indexes(indexes, int(bounds[-1]), tables)
    lens = np.array([len(c) for c in chunks], dtype=np.int64)
    for c, n in enumerate(lens):
        if n < 8 * lanes or (n - 8 * lanes) % 4:
            raise FormatError(f"rANS stream {c} of {n} bytes cannot hold {lanes} lanes")
    offsets_b = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    data = np.frombuffer(b"".join(bytes(c) for c in chunks), dtype=np.uint8)
    lut, lut_bits = tables.lookup()
    out = np.empty(int(bounds[-1]), dtype=np.int32)
    errors = _decode_chunks(data, offsets_b, bounds, idx, tables.starts, tables.offsets, tables.sizes,
                            tables.cdf.astype(np.int64), tables.freqs.astype(np.int64), lut, lut_bits,
                            tables.precision, lanes, out)
    bad = np.flatnonzero(errors)
    if len(bad):
        raise CorruptStreamError(f"chunk {bad[0]}: {_ERRORS[int(errors[bad[0]])]}")
    return out


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
    return _encode_prepared(rel, idx, family.tables, bounds, lanes)


def _encode_prepared(rel, idx, tables: Tables, bounds, lanes: int) -> list[bytes]:
    parts = _encode_chunks(rel, idx, bounds, tables.starts, tables.offsets, tables.sizes,
                           tables.cdf.astype(np.int64), tables.freqs.astype(np.int64),
                           tables.precision, lanes)
    return _assemble(*parts)


def decode_family(chunks: list[bytes | memoryview], means, scales, family: ParametricFamily,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Inverse of :func:`encode_family`; int64 symbols."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    n = int(counts.sum())
    mu, sigma, bits = _family_arrays(family, means, scales, n)
    bounds = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    idx = np.empty(n, dtype=np.int64)
    base = np.empty(n, dtype=np.int64)
    _family_prepare(np.empty(0, np.int64), mu, sigma, bits, bounds, family.n_frac, family.boundaries,
                    family.coarse, idx, base)
    return decode_chunks(chunks, idx, family.tables, counts, lanes=lanes).astype(np.int64) + base
