"""Numba twin of :mod:`nctk.entropy.rans_ref`: the same bytes, compiled, parallel over independent chunks.

Decode finds the symbol in
O(1): a lookup of the slot's top ``lut_bits`` bits gives a first candidate, and a short forward scan
(almost always zero steps) finishes. ``tests/test_rans.py`` holds these kernels to the reference bytes.

Small jobs (up to :data:`~nctk.entropy.rans_aot.MAX_SYMBOLS` symbols, table indexes given directly) run the
ahead-of-time build of the same two chunk kernels when one exists (:mod:`.rans_aot`): no Numba start-up.
"""

from __future__ import annotations

import numpy as np

from nctk.entropy import rans_aot
from nctk.entropy.errors import NctkError
from nctk.entropy.jit import LazyKernel, njit, prange
from nctk.entropy.rans_host import (
    ENC_BAD_INDEX,
    ENC_BAD_MEAN,
    ENC_BAD_SYMBOL,
    ENC_OVERFLOW,
    ERR_END,
    ERR_ESCAPE,
    ERR_INDEX,
    ERR_MEAN,
    ERR_SHORT,
    ESCAPE_WORDS,
    NO_ERROR,
    check_decode_errors,
    chunk_bounds,
    counts_bounds,
    escape_slack,
    index_arg,
    int_array,
    next_slack,
    stream_words,
)
from nctk.entropy.rans_ref import DEFAULT_LANES, ESCAPE_LENGTH_BITS, STATE_LOW, check_lanes
from nctk.entropy.tables import ParametricFamily, Table, Tables

# ----------------------------------------------------------------------------------------- encode
# Tables reach the kernels as ``packed[e] = cdf | (freq - 1) << 16`` (one load per symbol) and
# ``rcp[e] = 1.0 / freq``. Indexes come as an array and a stride (0: one table for every symbol).

@njit(inline="always")
def _put(state, lane, start, freq, rcp, bits, buf, pos):
    """One encode step on ``lane``; words go backwards into ``buf``; returns the new position.

    Renormalisation is branchless (the word is always stored at ``pos - 1``, which each chunk's
    buffer region keeps one spare word for; only ``pos`` depends on the test). ``x // freq`` without
    a division: after renormalisation ``x < freq * 2**(63-bits)``, so the quotient is below
    ``2**(63-bits)`` and ``x * rcp`` is within ``3 * 2**(10-bits) < 1`` of it for ``bits >= 12``
    (three float64 roundings); one correction step makes it exact.
    """
    x = state[lane]
    flag = np.int64((x >> (63 - bits)) >= freq)  # x >= freq * 2**(63-bits), without overflow
    buf[pos - 1] = x & 0xFFFFFFFF
    pos -= flag
    x >>= flag << 5
    q = np.int64(x * rcp)
    r = x - q * freq
    if r < 0:
        q -= 1
        r += freq
    elif r >= freq:
        q += 1
        r -= freq
    state[lane] = (q << bits) + r + start
    return pos


@njit(inline="always")
def _put_raw(state, lane, value, bits, buf, pos):
    """Encode ``bits`` raw bits (an entry of frequency 1 at precision ``bits``)."""
    x = state[lane]
    if (x >> (63 - bits)) >= 1:
        pos -= 1
        buf[pos] = x & 0xFFFFFFFF
        x >>= 32
    state[lane] = (x << bits) + value
    return pos


@njit(cache=True)
def _put_escape(state, lane, v, off, size, buf, pos):
    """Raw-bit pieces after an escape, pushed in reverse of their decode order (kept out of line)."""
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
        pos = _put_raw(state, lane, (u >> (16 * p)) & ((1 << b) - 1), b, buf, pos)
    return _put_raw(state, lane, k, ESCAPE_LENGTH_BITS, buf, pos)


_NONE_F = np.zeros(0, dtype=np.float64)
_NONE_I = np.zeros(0, dtype=np.int64)
_NONE_I32 = np.zeros(0, dtype=np.int32)
_NO_FAMILY = (False, _NONE_F, _NONE_F, _NONE_I, 1, _NONE_F, _NONE_I32)  # the kernels' family arguments, unused


@njit(cache=True)
def _escape(state, lane, v, off, size, buf, pos, floor):
    """Out-of-line escape: checks the symbol and the buffer room, then pushes the raw pieces.

    ``floor``: the lowest position this escape, its symbol's entry and every symbol still to come
    (one word each) may reach. Returns the new position, or a negative error code."""
    if v < -(1 << 31) or v >= (1 << 31):
        return ENC_BAD_SYMBOL
    if pos - ESCAPE_WORDS < floor:
        return ENC_OVERFLOW
    return _put_escape(state, lane, v, off, size, buf, pos)


@njit(inline="always")
def _step(x, e, packed, rcp, prec, buf, pos):
    """``_put`` for a state held in a register (the 4-lane loop); returns ``(x, pos)``."""
    pk = np.int64(packed[e])
    freq = (pk >> 16) + 1
    flag = np.int64((x >> (63 - prec)) >= freq)
    buf[pos - 1] = x & 0xFFFFFFFF
    pos -= flag
    x >>= flag << 5
    q = np.int64(x * rcp[e])
    r = x - q * freq
    if r < 0:
        q -= 1
        r += freq
    elif r >= freq:
        q += 1
        r -= freq
    return (q << prec) + r + (pk & 0xFFFF), pos


@njit(cache=True)
def _encode_single4(sym, off, size, base, packed, rcp, prec, buf, pos, floor, state, groups):
    """The first ``4 * groups`` symbols with 4 lanes and one table, states in registers (~30% faster
    than the general loop). A group of 4 holding an escape goes through ``_encode_span`` instead
    (a call inside the register loop would make Numba compile it several times slower). ``state``
    holds the lanes on entry and on return; returns ``pos`` (< 0: error code)."""
    x0, x1, x2, x3 = state[0], state[1], state[2], state[3]
    for g in range(groups - 1, -1, -1):
        i = 4 * g
        s0 = np.int64(sym[i]) - off
        s1 = np.int64(sym[i + 1]) - off
        s2 = np.int64(sym[i + 2]) - off
        s3 = np.int64(sym[i + 3]) - off
        if (s0 | s1 | s2 | s3) >= 0 and max(max(s0, s1), max(s2, s3)) < size:
            x3, pos = _step(x3, base + s3, packed, rcp, prec, buf, pos)
            x2, pos = _step(x2, base + s2, packed, rcp, prec, buf, pos)
            x1, pos = _step(x1, base + s1, packed, rcp, prec, buf, pos)
            x0, pos = _step(x0, base + s0, packed, rcp, prec, buf, pos)
        else:
            state[0], state[1], state[2], state[3] = x0, x1, x2, x3
            pos = _encode_span(sym, i, i + 4, off, size, base, packed, rcp, prec, buf, pos, floor, state)
            if pos < 0:
                return pos
            x0, x1, x2, x3 = state[0], state[1], state[2], state[3]
    state[0], state[1], state[2], state[3] = x0, x1, x2, x3
    return pos


@njit(cache=True)
def _encode_span(sym, a, b, off, size, base, packed, rcp, prec, buf, pos, floor, state):
    """Symbols ``b-1 .. a`` with one table and ``len(state)`` lanes (lane ``i % lanes``)."""
    lanes = len(state)
    lane = (b - 1) % lanes if b > a else 0
    for i in range(b - 1, a - 1, -1):
        v = np.int64(sym[i])
        s = v - off
        if s < 0 or s >= size:
            pos = _escape(state, lane, v, off, size, buf, pos, floor + i)
            if pos < 0:
                return pos
            s = size
        e = base + s
        pk = np.int64(packed[e])
        pos = _put(state, lane, pk & 0xFFFF, (pk >> 16) + 1, rcp[e], prec, buf, pos)
        lane = lane - 1 if lane > 0 else lanes - 1
    return pos


@njit(cache=True)
def _encode_chunk(sym, idx, istride, starts, offsets, sizes, packed, rcp, prec, lanes, buf, end, state,
                  floor):
    """Encode one chunk backwards into ``buf[floor..end]``; returns the first used position (< 0: error).

    Ordinary symbols emit at most one word each and ``end - floor >= len(sym)``, so only escapes (at
    most 5 words) can run out of room, and they check. One table for all symbols: its parameters are
    hoisted (``_encode_span``; with 4 lanes ``_encode_single4`` keeps the states in registers). One
    table per symbol: the loop below. (Sharing the body through an inlined helper that calls another
    jitted function made Numba's code ~5x slower, hence the explicit loops.)
    """
    for j in range(lanes):
        state[j] = STATE_LOW
    pos = end
    n = len(sym)
    if n == 0:  # an empty chunk is just the initial states (and idx may be empty: don't read it)
        return pos
    lane = (n - 1) % lanes
    ntables = len(offsets)
    t = np.int64(idx[0])
    if t < 0 or t >= ntables:
        return ENC_BAD_INDEX
    off, size, base = offsets[t], sizes[t], starts[t]
    if istride == 0:  # one table: its parameters hoisted; with 4 lanes the bulk runs in registers
        groups = n // 4 if lanes == 4 else 0
        pos = _encode_span(sym, 4 * groups, n, off, size, base, packed, rcp, prec, buf, pos, floor, state)
        if groups and pos >= 0:
            pos = _encode_single4(sym, off, size, base, packed, rcp, prec, buf, pos, floor, state, groups)
    else:
        for i in range(n - 1, -1, -1):
            t = np.int64(idx[i])
            if t < 0 or t >= ntables:
                return ENC_BAD_INDEX
            off, size = offsets[t], sizes[t]
            v = np.int64(sym[i])
            s = v - off
            if s < 0 or s >= size:
                pos = _escape(state, lane, v, off, size, buf, pos, floor + i)
                if pos < 0:
                    return pos
                s = size
            e = starts[t] + s
            pk = np.int64(packed[e])
            pos = _put(state, lane, pk & 0xFFFF, (pk >> 16) + 1, rcp[e], prec, buf, pos)
            lane = lane - 1 if lane > 0 else lanes - 1
    return pos


@njit(parallel=True, cache=True)
def _encode_chunks(sym, idx, istride, bounds, family, fam_means, fam_scales, fam_bits, n_frac, boundaries, coarse,
                   starts, offsets, sizes, packed, rcp, prec, lanes, slack):
    """All chunks into one buffer; chunk ``c`` is ``lanes`` states (2 words each) then its words.

    Chunk ``c``'s region is ``caps[c] .. caps[c+1]``: its symbols, the states, ``slack[c]`` words for
    escapes, and one spare word below for the branchless store in ``_put``. ``first[c] < 0`` is an
    error code for that chunk (overflow: retry with more slack). With ``fam_means`` non-empty the table
    indexes come from a parametric family instead of ``idx`` (computed per chunk, in cache).
    """
    nchunks = len(bounds) - 1
    caps = np.empty(nchunks + 1, dtype=np.int64)
    caps[0] = 0
    for c in range(nchunks):
        caps[c + 1] = caps[c] + (bounds[c + 1] - bounds[c]) + 2 * lanes + slack[c] + 1
    buf = np.empty(caps[nchunks], dtype=np.uint32)
    first = np.empty(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a, b = bounds[c], bounds[c + 1]
        state = np.empty(lanes, dtype=np.int64)
        floor = caps[c] + 2 * lanes + 1
        if family:
            fidx = np.empty(b - a, dtype=np.int64)
            rel = np.empty(b - a, dtype=np.int64)
            if not _family_fill(sym[a:b], fam_means[a:b], fam_scales[a:b], fam_bits[a:b], n_frac, boundaries,
                                coarse, fidx, rel):
                first[c] = ENC_BAD_MEAN
                continue
            pos = _encode_chunk(rel, fidx, 1, starts, offsets, sizes, packed, rcp, prec, lanes, buf,
                                caps[c + 1], state, floor)
        else:
            pos = _encode_chunk(sym[a:b], idx[a * istride : b * istride + 1], istride, starts, offsets, sizes,
                                packed, rcp, prec, lanes, buf, caps[c + 1], state, floor)
        if pos >= 0:
            for j in range(lanes):  # the states go right before the words, low word first
                buf[pos - 2 * lanes + 2 * j] = state[j] & 0xFFFFFFFF
                buf[pos - 2 * lanes + 2 * j + 1] = state[j] >> 32
            pos -= 2 * lanes
        first[c] = pos
    return buf, first, caps


def _encode_bounded(sym, idx, istride: int, tables: Tables, bounds, lanes: int,
                    family: tuple | None = None, jit_only: bool = False) -> list[bytes]:
    """Run the chunk kernel, retrying chunks that had more escapes than their slack allowed."""
    fam = (True, *family) if family else _NO_FAMILY
    sizes = np.diff(bounds)
    slack = escape_slack(sizes)
    module = None if family or jit_only else _aot_module(int(bounds[-1]))
    while True:
        args = (sym, idx, istride, bounds, *fam, tables.starts, tables.offsets, tables.sizes, tables.packed,
                tables.rcp, tables.precision, lanes, slack)
        buf, first, caps = rans_aot.encode_chunks(module, *args) if module else _encode_chunks(*args)
        slack = next_slack(first, sizes, slack, len(tables))
        if slack is None:
            break
    raw = buf.astype("<u4", copy=False)
    return [raw[first[c] : caps[c + 1]].tobytes() for c in range(len(first))]


# Symbols a process codes with the serial ahead-of-time kernels before it switches to the parallel JIT
# ones for good: like renting skis until the rent would have bought them, a short job never pays Numba's
# start-up (~0.7 s), and a long one pays it once, early (32M symbols take ~0.3 s serially here).
AOT_BUDGET = 1 << 25
_aot_spent = 0


def _jit_loaded() -> bool:
    """True once the JIT chunk kernels hold machine code in this process (other kernels may have made
    them dispatchers without compiling them)."""
    return any(not isinstance(k, LazyKernel) and k.signatures for k in (_encode_chunks, _decode_chunks))


def _aot_module(n: int):
    """The ahead-of-time kernels for a job of ``n`` symbols, or None for the (parallel) JIT kernels: once
    this process has loaded the JIT rANS kernels, for jobs over ``rans_aot.MAX_SYMBOLS``, and after
    :data:`AOT_BUDGET`."""
    global _aot_spent
    if _jit_loaded() or n > rans_aot.MAX_SYMBOLS or _aot_spent + n > AOT_BUDGET:
        return None
    module = rans_aot.kernels()
    if module is not None:
        _aot_spent += n
    return module


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Split into chunks of ``chunk_size`` symbols and code each as an independent stream."""
    tables = Tables.of(tables)
    check_lanes(lanes)
    sym = int_array(symbols, "symbols")
    idx, istride = index_arg(indexes, len(sym), len(tables))
    return _encode_bounded(sym, idx, istride, tables, chunk_bounds(len(sym), chunk_size), lanes)


def encode(symbols, indexes, tables: Table | Tables, *, lanes: int = DEFAULT_LANES) -> bytes:
    """Same contract and bytes as :func:`nctk.entropy.rans_ref.encode`."""
    n = np.size(symbols)
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


@njit(cache=True)
def _get_escape(state, lane, words, pos, end, off, size):
    """Out-of-line: the raw bits after an escape entry; returns (value, pos) or (error code, -1)."""
    k, pos = _get_raw(state, lane, ESCAPE_LENGTH_BITS, words, pos, end)
    if pos < 0:
        return ERR_SHORT, -1
    if k > 34:
        return ERR_ESCAPE, -1
    nbits = k - 1 if k > 0 else 0
    u = (np.int64(1) << (k - 1)) if k > 0 else np.int64(0)
    sh = 0
    while nbits > 0:
        b = min(16, nbits)
        piece, pos = _get_raw(state, lane, b, words, pos, end)
        if pos < 0:
            return ERR_SHORT, -1
        u |= piece << sh
        sh += b
        nbits -= b
    v = off + size + (u >> 1) if u % 2 == 0 else off - 1 - (u >> 1)
    if v < -(1 << 31) or v >= (1 << 31):
        return ERR_ESCAPE, -1
    return v, pos


@njit(cache=True)
def _decode_chunk(words, pos, end, idx, istride, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes,
                  state, out):
    """Decode ``len(out)`` symbols reading ``words[pos:end]``; returns an error code (0 = ok).

    Two copies of the loop (one table hoisted / one table per symbol), written out as in
    ``_encode_chunk`` (an inlined helper returning a tuple compiled ~2.5x slower). Renormalisation is
    branchless: the next word is loaded whenever one exists and used when the state fell below ``L``;
    reading past the end only advances ``pos``, which the end check then rejects."""
    mask = (1 << prec) - 1
    shift = prec - lut_bits
    lane = lanes - 1
    ntables = len(offsets)
    t = np.int64(idx[0]) if len(out) else np.int64(0)  # an empty chunk: only the end check below
    if t < 0 or t >= ntables:
        return ERR_INDEX
    base, size, off = starts[t], sizes[t], offsets[t]
    if len(out) == 0:
        pass
    elif istride == 0:
        tl = t << lut_bits
        for i in range(len(out)):
            lane = lane + 1 if lane < lanes - 1 else 0
            x = state[lane]
            slot = x & mask
            s = np.int64(lut[tl | (slot >> shift)])
            e = base + s
            while s < size and (np.int64(packed[e + 1]) & 0xFFFF) <= slot:
                s += 1
                e += 1
            pk = np.int64(packed[e])
            x = ((pk >> 16) + 1) * (x >> prec) + slot - (pk & 0xFFFF)
            w = np.int64(words[pos]) if pos < end else np.int64(0)
            flag = np.int64(x < STATE_LOW)
            state[lane] = (x << (flag << 5)) | (w & -flag)
            pos += flag
            if s < size:
                out[i] = off + s
            else:
                v, pos = _get_escape(state, lane, words, pos, end, off, size)
                if pos < 0:
                    return v
                out[i] = v
    else:
        for i in range(len(out)):
            lane = lane + 1 if lane < lanes - 1 else 0
            t = np.int64(idx[i])
            if t < 0 or t >= ntables:
                return ERR_INDEX
            base, size = starts[t], sizes[t]
            x = state[lane]
            slot = x & mask
            s = np.int64(lut[(t << lut_bits) | (slot >> shift)])
            e = base + s
            while s < size and (np.int64(packed[e + 1]) & 0xFFFF) <= slot:
                s += 1
                e += 1
            pk = np.int64(packed[e])
            x = ((pk >> 16) + 1) * (x >> prec) + slot - (pk & 0xFFFF)
            w = np.int64(words[pos]) if pos < end else np.int64(0)
            flag = np.int64(x < STATE_LOW)
            state[lane] = (x << (flag << 5)) | (w & -flag)
            pos += flag
            if s < size:
                out[i] = offsets[t] + s
            else:
                v, pos = _get_escape(state, lane, words, pos, end, offsets[t], size)
                if pos < 0:
                    return v
                out[i] = v
    if pos > end:
        return ERR_SHORT
    if pos != end:
        return ERR_END
    for j in range(lanes):
        if state[j] != STATE_LOW:
            return ERR_END
    return NO_ERROR


@njit(parallel=True, cache=True)
def _decode_chunks(words, wbounds, bounds, idx, istride, family, fam_means, fam_scales, fam_bits, n_frac,
                   boundaries, coarse, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes, out):
    """Chunk ``c`` occupies ``words[wbounds[c]:wbounds[c+1]]`` (u32): states, then its words.

    Family mode (``fam_means`` non-empty): table indexes and bases are computed per chunk and the bases
    added to the decoded symbols."""
    nchunks = len(bounds) - 1
    errors = np.zeros(nchunks, dtype=np.int64)
    for c in prange(nchunks):
        a = wbounds[c]
        state = np.empty(lanes, dtype=np.int64)
        for j in range(lanes):
            state[j] = np.int64(words[a + 2 * j]) | (np.int64(words[a + 2 * j + 1]) << 32)
            if state[j] < 0:  # a u64 state >= 2**63 cannot come from an encoder
                errors[c] = ERR_END
        if errors[c] != 0:
            continue
        s0, s1 = bounds[c], bounds[c + 1]
        if family:
            fidx = np.empty(s1 - s0, dtype=np.int64)
            base = np.empty(s1 - s0, dtype=np.int64)
            if not _family_fill(_NONE_I, fam_means[s0:s1], fam_scales[s0:s1], fam_bits[s0:s1], n_frac,
                                boundaries, coarse, fidx, base):
                errors[c] = ERR_MEAN
                continue
            errors[c] = _decode_chunk(words, a + 2 * lanes, wbounds[c + 1], fidx, 1, starts, offsets, sizes,
                                      packed, lut, lut_bits, prec, lanes, state, out[s0:s1])
            for i in range(s1 - s0):
                out[s0 + i] += base[i]
        else:
            errors[c] = _decode_chunk(words, a + 2 * lanes, wbounds[c + 1], idx[s0 * istride : s1 * istride + 1],
                                      istride, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes, state,
                                      out[s0:s1])
    return errors


def _decode_bounded(chunks, idx, istride: int, tables: Tables, bounds, lanes: int,
                    family: tuple | None = None, jit_only: bool = False) -> np.ndarray:
    check_lanes(lanes)
    words, wbounds = stream_words(chunks, lanes) if len(chunks) else (np.empty(0, "<u4"), np.zeros(1, np.int64))
    lut, lut_bits = tables.lookup()
    fam = (True, *family) if family else _NO_FAMILY
    out = np.empty(int(bounds[-1]), dtype=np.int64 if family else np.int32)
    args = (words, wbounds, bounds, idx, istride, *fam, tables.starts, tables.offsets, tables.sizes, tables.packed,
            lut, lut_bits, tables.precision, lanes, out)
    module = None if family or jit_only else _aot_module(len(out))
    errors = rans_aot.decode_chunks(module, *args) if module else _decode_chunks(*args)
    check_decode_errors(errors)
    return out


def decode_chunks(chunks: list[bytes | memoryview], indexes, tables: Table | Tables,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Decode independent streams; ``counts[c]`` symbols from ``chunks[c]``; one int32 array."""
    tables = Tables.of(tables)
    bounds = counts_bounds(counts, len(chunks))
    idx, istride = index_arg(indexes, int(bounds[-1]), len(tables))
    return _decode_bounded(chunks, idx, istride, tables, bounds, lanes)


def decode(data: bytes | memoryview, indexes, tables: Table | Tables, count: int | None = None,
           *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Same contract as :func:`nctk.entropy.rans_ref.decode`."""
    if count is None:
        if indexes is None or np.ndim(indexes) == 0:
            raise NctkError("count is required when indexes is a scalar")
        count = len(np.reshape(indexes, -1))
    return decode_chunks([data], indexes, tables, [count], lanes=lanes)


# ------------------------------------------------------------------ fused mean-scale (Gaussian...) path

@njit(cache=True)
def _family_fill(sym, means, scales, scale_bits, n_frac, boundaries, coarse, idx, rel):
    """Table index and mean-relative symbol (or, with ``sym`` empty, the base) of each input.

    Exactly :meth:`ParametricFamily.index`: ``t = floor(mu * n_frac)``, base ``floor(t / n_frac)``,
    the scale bucket from the top 17 bits of ``sigma``'s float64 pattern (a coarse cell) plus exact
    comparisons with the boundaries. Returns False for a mean that is not finite or >= 2**30.
    """
    nb = len(boundaries)
    lo_cell, hi_cell = coarse[0], coarse[1]
    for i in range(len(means)):
        mu = means[i]
        if not abs(mu) < 2.0**30:  # also catches NaN
            return False
        sigma = scales[i]
        t = np.floor(mu * n_frac)
        base = np.floor(t / n_frac)
        frac = np.int64(t - base * n_frac)
        cell = scale_bits[i] >> 47
        if sigma != sigma:  # any NaN (either sign) sorts last, as np.searchsorted puts it
            j = nb
        elif cell < lo_cell:
            j = 0
        elif cell > hi_cell:
            j = nb
        else:
            j = np.int64(coarse[2 + cell - lo_cell])
        while j < nb and boundaries[j] <= sigma:
            j += 1
        idx[i] = j * n_frac + frac
        rel[i] = (np.int64(sym[i]) - np.int64(base)) if len(sym) else np.int64(base)
    return True


def _family_args(family: ParametricFamily, means, scales, n: int) -> tuple:
    mu = np.ascontiguousarray(np.reshape(means, -1), dtype=np.float64)
    sigma = np.ascontiguousarray(np.reshape(scales, -1), dtype=np.float64)
    if len(mu) != n or len(sigma) != n:
        raise NctkError(f"need one mean and one scale per symbol ({n}), got {len(mu)} and {len(sigma)}")
    return mu, sigma, sigma.view(np.int64), family.n_frac, family.boundaries, family.coarse


def encode_family(symbols, means, scales, family: ParametricFamily, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Code integer ``symbols`` under per-symbol (mean, scale): the fused form of
    ``rans_ref.encode(symbols - base, idx, family.tables)`` with ``idx, base = family.index(means, scales)``
    (symbols minus their base must fit in int32)."""
    check_lanes(lanes)
    sym = int_array(symbols, "symbols")
    fam = _family_args(family, means, scales, len(sym))
    return _encode_bounded(sym, _NONE_I, 1, family.tables, chunk_bounds(len(sym), chunk_size), lanes, fam)


def decode_family(chunks: list[bytes | memoryview], means, scales, family: ParametricFamily,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Inverse of :func:`encode_family`; int64 symbols."""
    bounds = counts_bounds(counts, len(chunks))
    fam = _family_args(family, means, scales, int(bounds[-1]))
    return _decode_bounded(chunks, _NONE_I, 1, family.tables, bounds, lanes, fam)


def warm_up() -> None:
    """Compile (or load from the cache) the JIT kernels for the argument types nctk's codecs use, so that
    the first large job after installing does not pay for compilation."""
    from nctk.entropy.tables import from_counts

    tables = Tables([from_counts(np.array([5, 3, 1, 1])), from_counts(np.array([1, 1, 2, 9]))])
    sym = np.array([0, 1, 2, 3, 0, 3], dtype=np.int64)
    for dt in (np.uint8, np.uint16, np.int32, np.int64):
        for idx in (None, np.array([0, 1, 0, 1, 1, 0], dtype=np.int32), np.zeros(6, dtype=np.int64)):
            bounds = chunk_bounds(len(sym), 4)
            i, stride = index_arg(idx, len(sym), len(tables))
            chunks = _encode_bounded(sym.astype(dt), i, stride, tables, bounds, DEFAULT_LANES, jit_only=True)
            _decode_bounded(chunks, i, stride, tables, bounds, DEFAULT_LANES, jit_only=True)
    fam = ParametricFamily("gaussian")
    means, scales = np.zeros(6), np.ones(6)
    decode_family(encode_family(sym, means, scales, fam, chunk_size=4), means, scales, fam, [4, 2])
