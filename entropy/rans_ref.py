"""Reference interleaved rANS coder: plain Python, obviously correct, and the definition of the bytes.

Coder id ``rans64`` version 1 (docs/FORMAT.md, "rANS streams"):

- ``lanes`` independent states, symbol ``i`` belongs to lane ``i % lanes``; states live in
  ``[2**31, 2**63)``; renormalisation moves one 32-bit word at a time; all lanes share one word stream.
  The state's lower bound is 2**15 times the largest table size, so rANS's rounding loss is negligible
  (a 32-bit state with 16-bit tables loses ~0.13%).
- A stream is ``lanes`` little-endian u64 final encoder states followed by u32 words in the order the
  decoder reads them. Encoders start every lane at ``2**31``; decoders check they end there with every
  word consumed, which catches nearly all corruption.
- A symbol outside its table's alphabet is coded as the escape entry, then 6 raw bits giving the bit
  length ``k`` of ``u`` (a zigzag distance from the alphabet), then the low ``k - 1`` bits of ``u`` in
  pieces of at most 16 bits, least significant first. Raw bits ride in the same lane with frequency 1.

The Numba twin (:mod:`entropy.rans_numba`) must produce exactly these bytes; tests hold them to it.
"""

from __future__ import annotations

import numpy as np

from nctk.entropy.errors import CorruptStreamError, FormatError, NctkError
from nctk.entropy.tables import Table, Tables

CODER_ID = "rans64"
CODER_VERSION = 1
STATE_LOW = 1 << 31  # lower bound L of the state interval [L, 2**63)
WORD_BITS = 32
PIECE_BITS = 16  # raw escape bits travel in pieces of at most this many bits
ESCAPE_LENGTH_BITS = 6
MAX_LANES = 256  # the one definition: codec headers are validated against it too
DEFAULT_LANES = 4


def check_lanes(lanes: int) -> None:
    """Raise unless ``1 <= lanes <= MAX_LANES``."""
    if not (1 <= lanes <= MAX_LANES):
        raise NctkError(f"lanes must be in [1, {MAX_LANES}], got {lanes}")


def check_inputs(symbols, indexes, tables, lanes: int) -> tuple[np.ndarray, np.ndarray, Tables]:
    """Normalise encode inputs: int64 symbols in int32 range, one int64 table index per symbol."""
    tables = Tables.of(tables)
    check_lanes(lanes)
    sym = np.asarray(symbols)
    if sym.ndim != 1:
        sym = sym.reshape(-1)
    if sym.size == 0:
        sym = sym.astype(np.int64)
    if sym.dtype.kind not in "iub":
        raise NctkError(f"symbols must be integers, got dtype {sym.dtype}")
    if sym.dtype.kind == "u" and sym.dtype.itemsize == 8 and len(sym) and sym.max() >= 1 << 31:
        raise NctkError("symbols must fit in int32")  # before the cast below wraps them
    sym = sym.astype(np.int64, copy=False)
    if len(sym) and (sym.min() < -(1 << 31) or sym.max() >= 1 << 31):
        raise NctkError("symbols must fit in int32")
    idx = check_indexes(indexes, len(sym), tables)
    return sym, idx, tables


def check_indexes(indexes, count: int, tables: Tables) -> np.ndarray:
    """One table index per symbol (a scalar or None broadcasts), each < len(tables)."""
    if indexes is None:
        indexes = 0
    idx = np.asarray(indexes)
    if idx.size and idx.dtype.kind not in "iu":
        raise NctkError(f"table indexes must be integers, got dtype {idx.dtype}")
    if idx.ndim == 0:
        idx = np.full(count, int(idx), dtype=np.int64)
    idx = idx.reshape(-1).astype(np.int64, copy=False)
    if len(idx) != count:
        raise NctkError(f"{len(idx)} table indexes for {count} symbols")
    if count and (idx.min() < 0 or idx.max() >= len(tables)):
        raise NctkError(f"table index out of range [0, {len(tables)})")
    return idx


def escape_pieces(value: int, offset: int, size: int) -> list[tuple[int, int]]:
    """Raw-bit pieces ``(bits, value)`` that follow the escape entry, in decode order."""
    if value >= offset + size:
        u = 2 * (value - (offset + size))
    else:
        u = 2 * (offset - 1 - value) + 1
    k = u.bit_length()
    pieces = [(ESCAPE_LENGTH_BITS, k)]
    rest, nbits = u & ((1 << max(k - 1, 0)) - 1), max(k - 1, 0)
    while nbits > 0:
        b = min(nbits, PIECE_BITS)
        pieces.append((b, rest & ((1 << b) - 1)))
        rest >>= b
        nbits -= b
    return pieces


def escape_value(u: int, offset: int, size: int) -> int:
    """Inverse of the zigzag distance in :func:`escape_pieces`."""
    return offset + size + (u >> 1) if u % 2 == 0 else offset - 1 - (u >> 1)


def encode(symbols, indexes, tables: Table | Tables, *, lanes: int = DEFAULT_LANES) -> bytes:
    """Code ``symbols[i]`` with table ``indexes[i]`` into one stream (escapes for out-of-range)."""
    sym, idx, tables = check_inputs(symbols, indexes, tables, lanes)
    prec = tables.precision
    state = [STATE_LOW] * lanes
    words: list[int] = []  # emitted in encode order; the stream is their reverse

    def put(lane: int, start: int, freq: int, bits: int) -> None:
        x = state[lane]
        if x >= freq << (63 - bits):  # renormalise: one word keeps the state below 2**63
            words.append(x & 0xFFFFFFFF)
            x >>= WORD_BITS
        state[lane] = ((x // freq) << bits) + (x % freq) + start

    for i in range(len(sym) - 1, -1, -1):
        lane, t, v = i % lanes, int(idx[i]), int(sym[i])
        base, off, size = int(tables.starts[t]), int(tables.offsets[t]), int(tables.sizes[t])
        s = v - off
        if not 0 <= s < size:
            for bits, piece in reversed(escape_pieces(v, off, size)):
                put(lane, piece, 1, bits)
            s = size
        put(lane, int(tables.cdf[base + s]), int(tables.freqs[base + s]), prec)

    head = np.array(state, dtype="<u8").tobytes()
    return head + np.array(words[::-1], dtype="<u4").tobytes()


def decode(data: bytes | memoryview, indexes, tables: Table | Tables, count: int | None = None,
           *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Decode ``count`` symbols (default: one per index) from one stream; int32 array."""
    tables = Tables.of(tables)
    if count is None:
        if indexes is None or np.ndim(indexes) == 0:
            raise NctkError("count is required when indexes is a scalar")
        count = len(np.reshape(indexes, -1))
    idx = check_indexes(indexes, count, tables)
    check_lanes(lanes)
    data = bytes(data)
    if len(data) < 8 * lanes or (len(data) - 8 * lanes) % 4:
        raise FormatError(f"rANS stream of {len(data)} bytes cannot hold {lanes} lanes")
    state = [int(v) for v in np.frombuffer(data, dtype="<u8", count=lanes)]
    if any(x >= 1 << 63 for x in state):
        raise CorruptStreamError("rANS stream: a lane state is outside [2**31, 2**63)")
    words = np.frombuffer(data, dtype="<u4", offset=8 * lanes).tolist()
    pos = 0
    prec = tables.precision
    out = np.empty(count, dtype=np.int32)

    def get(lane: int, bits: int, starts: list[int] | None, freqs: list[int] | None) -> int:
        """Pop one entry: the slot's entry index (table) or the raw value (starts is None)."""
        nonlocal pos
        x = state[lane]
        slot = x & ((1 << bits) - 1)
        if starts is None:
            s, start, freq = slot, slot, 1
        else:
            s = 0
            while starts[s + 1] <= slot:  # linear scan: the reference favours clarity
                s += 1
            start, freq = starts[s], freqs[s]
        x = freq * (x >> bits) + slot - start
        if x < STATE_LOW:
            if pos >= len(words):
                raise CorruptStreamError("rANS stream ended early")
            x = (x << WORD_BITS) | words[pos]
            pos += 1
        state[lane] = x
        return s

    cache: dict[int, tuple[list[int], list[int]]] = {}
    for i in range(count):
        lane, t = i % lanes, int(idx[i])
        if t not in cache:
            b, n = int(tables.starts[t]), int(tables.sizes[t]) + 1
            cache[t] = (tables.cdf[b : b + n].tolist() + [1 << prec], tables.freqs[b : b + n].tolist())
        starts, freqs = cache[t]
        off, size = int(tables.offsets[t]), int(tables.sizes[t])
        s = get(lane, prec, starts, freqs)
        if s < size:
            out[i] = off + s
            continue
        k = get(lane, ESCAPE_LENGTH_BITS, None, None)
        if k > 34:
            raise CorruptStreamError("escape length out of range")
        u, shift, nbits = (1 << (k - 1)) if k else 0, 0, max(k - 1, 0)
        while nbits > 0:
            b = min(nbits, PIECE_BITS)
            u |= get(lane, b, None, None) << shift
            shift += b
            nbits -= b
        v = escape_value(u, off, size)
        if not -(1 << 31) <= v < 1 << 31:
            raise CorruptStreamError("escaped symbol outside int32")
        out[i] = v
    if pos != len(words) or any(x != STATE_LOW for x in state):
        raise CorruptStreamError("rANS stream failed its end check (corrupted or wrong tables)")
    return out
