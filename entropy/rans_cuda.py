"""CUDA twin of :mod:`nctk.entropy.rans_ref` (coder ``rans64``): the same bytes, one GPU thread per chunk.

Same contract and bytes as :mod:`entropy.rans_numba` (``tests/test_cuda_sim.py`` holds the kernels to the
reference under numba-cuda's simulator; a real-GPU run of that file repeats the checks on the device).

Design (a chunk is an independent stream, so chunks are the unit of parallelism):

- **Encode**: one thread per chunk walks its symbols backwards and writes its words backwards into its
  own region of one device buffer (``symbols + 2*lanes + slack + 1`` words, as in rans_numba: ordinary
  symbols emit at most one word; escapes check the room and a chunk that runs out is redone with the
  worst case). The lane states go right below the words, then a compaction kernel (one block per chunk,
  coalesced copy) packs all streams back to back; only that packed buffer crosses to the host.
- ``x div f`` is exact integer arithmetic: ``q = mulhi64(x, m_f) >> s_f`` with the per-entry reciprocal
  ``m_f = ceil(2**(63 + l) / f)``, ``l = ceil(log2 f)``, ``s_f = l - 1``; since ``x < 2**63`` this is
  ``floor(x / f)`` exactly (the round-up reciprocal theorem: ``m_f * f - 2**(63+l) < f <= 2**l``).
  ``f = 1`` uses ``m = 2**64 - 1, s = 0`` (``q = x - 1``) and the one correction step ``r >= f`` fixes it,
  so the kernel has no special case. No float64 and no 64-bit division on the device.
- **Decode**: one thread per chunk; the slot's entry comes from ``Tables.lookup(bits)`` plus a forward
  scan over ``Tables.packed`` (``cdf | (freq-1) << 16``). When ``packed`` and a LUT fit in
  ``SHARED_TABLE_BYTES`` they are staged in dynamic shared memory once per block (the LUT bits are
  lowered until they fit; fewer bits only lengthen the scan); otherwise both are read from global memory.
- Parametric families (``encode_family`` / ``decode_family``) compute each symbol's table index and base
  inside the chunk loop (``floor(mu * n_frac)`` exact, the scale bucket from the float64 bit pattern's
  top bits plus exact comparisons: :meth:`ParametricFamily.index` as rans_numba computes it), so no
  index array is materialised.

Inputs may be host arrays (numpy, torch CPU tensors, lists) or device arrays (anything with
``__cuda_array_interface__``: numba device arrays, torch CUDA tensors, CuPy); device data is used in place.
Streams come back as ``bytes``; ``encode_chunks_device`` / ``decode_chunks_device`` keep results on the
device. Everything validates like rans_numba: a bad index or symbol raises :class:`NctkError`, a corrupted
stream :class:`CorruptStreamError`.

GPU note: one thread per chunk needs thousands of chunks to fill a GPU, so GPU-coded data wants chunks of
``2**12 .. 2**14`` symbols (the chunk size is a codec parameter recorded in the header, not a format rule).
"""

from __future__ import annotations

import functools
import math
import weakref

import numpy as np
from numba import cuda
from numba import types as nbt

from nctk.entropy.cuda_common import (
    SIMULATOR,
    any_outside,
    as_device,
    device_fn,
    grid,
    is_device_array,
    plain,
    require_device,
)
from nctk.entropy.errors import NctkError
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
    KERNEL_INTS,
    MEANS_ERROR,
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
from nctk.entropy.rans_ref import DEFAULT_LANES, ESCAPE_LENGTH_BITS, MAX_LANES, STATE_LOW, check_lanes
from nctk.entropy.tables import ParametricFamily, Table, Tables

SHARED_TABLE_BYTES = 46 << 10  # decode tables go to shared memory below this (48 KiB per block by default)
MIN_SHARED_LUT_BITS = 8
_TPB = 32 if SIMULATOR else 64  # threads (= chunks) per block of the chunk kernels
_COPY_TPB = 32 if SIMULATOR else 256

if SIMULATOR:
    def _mulhi(x, m):
        """High 64 bits of the 128-bit product of ``x`` (>= 0) and the u64 ``m`` (simulator: Python ints)."""
        return np.int64((int(x) * int(m)) >> 64)
else:
    from numba.cuda import libdevice

    @device_fn
    def _mulhi(x, m):
        return np.int64(libdevice.umul64hi(np.uint64(x), m))


# ----------------------------------------------------------------------------------------- encode

@device_fn
def _put(state, lane, start, freq, m, sh, prec, buf, pos):
    """One encode step on ``lane``; a renormalisation word goes to ``buf[pos - 1]``; returns pos."""
    x = state[lane]
    if (x >> (63 - prec)) >= freq:  # x >= freq * 2**(63-prec), without overflow
        pos -= 1
        buf[pos] = x & 0xFFFFFFFF
        x >>= 32
    q = _mulhi(x, m) >> sh  # floor(x / freq) for freq >= 2; x - 1 for freq == 1 (corrected below)
    r = x - q * freq
    if r >= freq:
        q += 1
        r -= freq
    state[lane] = (q << prec) + r + start
    return pos


@device_fn
def _put_raw(state, lane, value, bits, buf, pos):
    """Encode ``bits`` raw bits (an entry of frequency 1 at precision ``bits``)."""
    x = state[lane]
    if (x >> (63 - bits)) >= 1:
        pos -= 1
        buf[pos] = x & 0xFFFFFFFF
        x >>= 32
    state[lane] = (x << bits) + value
    return pos


@device_fn
def _put_escape(state, lane, v, off, size, buf, pos):
    """The raw-bit pieces after an escape, pushed in reverse of their decode order."""
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


@device_fn
def _family_index(mu, sigma, sbits, n_frac, frac_shift, boundaries, coarse):
    """``(table index, base)`` of one (mean, scale), exactly as rans_numba's ``_family_fill``;
    ``(-1, 0)`` for a mean that is not finite or >= 2**30 in magnitude."""
    if not abs(mu) < 2.0**30:  # also catches NaN
        return np.int64(-1), np.int64(0)
    t = np.int64(math.floor(mu * n_frac))  # exact: n_frac is a power of two, |t| < 2**38
    base = t >> frac_shift  # floor(t / n_frac)
    frac = t - (base << frac_shift)
    nb = boundaries.shape[0]
    cell = sbits >> 47
    lo_cell = np.int64(coarse[0])
    if cell < lo_cell:
        j = np.int64(0)
    elif cell > np.int64(coarse[1]):
        j = np.int64(nb)
    else:
        j = np.int64(coarse[2 + cell - lo_cell])
    while j < nb and boundaries[j] <= sigma:
        j += 1
    return j * n_frac + frac, base


@device_fn
def _encode_chunk(sym, a, n, idx, istride, family, means, scales, sbits, n_frac, frac_shift, boundaries, coarse,
                  starts, offsets, sizes, packed, rcpm, rcps, prec, lanes, buf, end, floor, state):
    """Encode symbols ``a+n-1 .. a`` backwards into ``buf[floor..end)``; returns the first used position
    (< 0: an error code). ``end - floor >= n + slack``: ordinary symbols emit at most one word each, so
    only escapes (at most 5 words) can run out of room, and they check."""
    for j in range(lanes):
        state[j] = STATE_LOW
    pos = end
    ntables = offsets.shape[0]
    lane = (n - 1) % lanes if n > 0 else 0
    t = np.int64(-1)
    off = np.int64(0)
    size = np.int64(0)
    base = np.int64(0)
    for i in range(n - 1, -1, -1):
        g = a + i
        if family:
            ti, fbase = _family_index(means[g], scales[g], sbits[g], n_frac, frac_shift, boundaries, coarse)
            if ti < 0:
                return ENC_BAD_MEAN
            v = np.int64(sym[g]) - fbase
        else:
            ti = np.int64(idx[g * istride])
            v = np.int64(sym[g])
        if ti < 0 or ti >= ntables:
            return ENC_BAD_INDEX
        if ti != t:
            t = ti
            off = np.int64(offsets[t])
            size = np.int64(sizes[t])
            base = np.int64(starts[t])
        s = v - off
        if s < 0 or s >= size:
            if v < -(1 << 31) or v >= (1 << 31):
                return ENC_BAD_SYMBOL
            if pos - ESCAPE_WORDS < floor + i:
                return ENC_OVERFLOW
            pos = _put_escape(state, lane, v, off, size, buf, pos)
            s = size
        e = base + s
        pk = np.int64(packed[e])
        pos = _put(state, lane, pk & 0xFFFF, (pk >> 16) + 1, rcpm[e], np.int64(rcps[e]), prec, buf, pos)
        lane = lane - 1 if lane > 0 else lanes - 1
    return pos


@cuda.jit
def _encode_kernel(sym, idx, istride, family, means, scales, sbits, n_frac, frac_shift, boundaries, coarse,
                   bounds, caps, starts, offsets, sizes, packed, rcpm, rcps, prec, lanes, buf, first):
    """Thread ``c`` codes chunk ``c`` into ``buf[caps[c]:caps[c+1]]``: states then words from ``first[c]``."""
    c = cuda.grid(1)
    if c >= first.shape[0]:
        return
    state = cuda.local.array(MAX_LANES, nbt.int64)
    a = bounds[c]
    n = bounds[c + 1] - a
    floor = caps[c] + 2 * lanes + 1
    pos = _encode_chunk(sym, a, n, idx, istride, family, means, scales, sbits, n_frac, frac_shift, boundaries,
                        coarse, starts, offsets, sizes, packed, rcpm, rcps, prec, lanes, buf, caps[c + 1], floor,
                        state)
    if pos >= 0:
        p = pos - 2 * lanes
        for j in range(lanes):  # the states go right before the words, low word first
            buf[p + 2 * j] = state[j] & 0xFFFFFFFF
            buf[p + 2 * j + 1] = state[j] >> 32
        pos = p
    first[c] = pos


@cuda.jit
def _compact_kernel(buf, first, caps, offs, out):
    """Block ``c`` copies chunk ``c``'s stream ``buf[first[c]:caps[c+1]]`` to ``out[offs[c]:]``."""
    c = cuda.blockIdx.x
    a = first[c]
    n = caps[c + 1] - a
    o = offs[c]
    for k in range(cuda.threadIdx.x, n, cuda.blockDim.x):
        out[o + k] = buf[a + k]


@cuda.jit
def _to_f64_kernel(src, dst):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < src.shape[0]:
        dst[i] = np.float64(src[i])
        i += stride


# ----------------------------------------------------------------------------------------- decode

@device_fn
def _get_raw(state, lane, bits, words, pos, end):
    """Pop ``bits`` raw bits from ``lane``; returns (value, pos) with pos = -1 on underflow."""
    x = state[lane]
    v = x & ((np.int64(1) << bits) - 1)
    x >>= bits
    if x < STATE_LOW:
        if pos >= end:
            return v, np.int64(-1)
        x = (x << 32) | np.int64(words[pos])
        pos += 1
    state[lane] = x
    return v, pos


@device_fn
def _get_escape(state, lane, words, pos, end, off, size):
    """The raw bits after an escape entry; returns (value, pos) or (error code, -1)."""
    k, pos = _get_raw(state, lane, ESCAPE_LENGTH_BITS, words, pos, end)
    if pos < 0:
        return np.int64(ERR_SHORT), np.int64(-1)
    if k > 34:
        return np.int64(ERR_ESCAPE), np.int64(-1)
    nbits = k - 1 if k > 0 else np.int64(0)
    u = (np.int64(1) << (k - 1)) if k > 0 else np.int64(0)
    sh = np.int64(0)
    while nbits > 0:
        b = min(np.int64(16), nbits)
        piece, pos = _get_raw(state, lane, b, words, pos, end)
        if pos < 0:
            return np.int64(ERR_SHORT), np.int64(-1)
        u |= piece << sh
        sh += b
        nbits -= b
    if u & 1:
        v = off - 1 - (u >> 1)
    else:
        v = off + size + (u >> 1)
    if v < -(1 << 31) or v >= (1 << 31):
        return np.int64(ERR_ESCAPE), np.int64(-1)
    return v, pos


@device_fn
def _decode_chunk(words, pos, end, a, n, idx, istride, family, means, scales, sbits, n_frac, frac_shift,
                  boundaries, coarse, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes, state, out):
    """Decode ``out[a:a+n]`` reading ``words[pos:end]``; returns an error code (0 = ok).

    Reading past the end in the main path only advances ``pos`` (the end check rejects it), as in
    rans_numba, so both report the same error for the same stream."""
    mask = (np.int64(1) << prec) - 1
    shift = prec - lut_bits
    ntables = offsets.shape[0]
    lane = lanes - 1
    t = np.int64(-1)
    off = np.int64(0)
    size = np.int64(0)
    base = np.int64(0)
    tl = np.int64(0)
    for i in range(n):
        g = a + i
        lane = lane + 1 if lane < lanes - 1 else 0
        if family:
            ti, fbase = _family_index(means[g], scales[g], sbits[g], n_frac, frac_shift, boundaries, coarse)
            if ti < 0:
                return ERR_MEAN
        else:
            ti = np.int64(idx[g * istride])
            fbase = np.int64(0)
        if ti < 0 or ti >= ntables:
            return ERR_INDEX
        if ti != t:
            t = ti
            off = np.int64(offsets[t])
            size = np.int64(sizes[t])
            base = np.int64(starts[t])
            tl = t << lut_bits
        x = state[lane]
        slot = x & mask
        s = np.int64(lut[tl | (slot >> shift)])
        e = base + s
        while s < size and (np.int64(packed[e + 1]) & 0xFFFF) <= slot:
            s += 1
            e += 1
        pk = np.int64(packed[e])
        x = ((pk >> 16) + 1) * (x >> prec) + slot - (pk & 0xFFFF)
        if x < STATE_LOW:
            w = np.int64(words[pos]) if pos < end else np.int64(0)
            x = (x << 32) | w
            pos += 1
        state[lane] = x
        if s < size:
            out[g] = off + s + fbase
        else:
            v, pos = _get_escape(state, lane, words, pos, end, off, size)
            if pos < 0:
                return v
            out[g] = v + fbase
    if pos > end:
        return ERR_SHORT
    if pos != end:
        return ERR_END
    for j in range(lanes):
        if state[j] != STATE_LOW:
            return ERR_END
    return NO_ERROR


@cuda.jit
def _decode_kernel(words, wbounds, bounds, idx, istride, family, means, scales, sbits, n_frac, frac_shift,
                   boundaries, coarse, starts, offsets, sizes, packed, lut, lut_bits, prec, lanes, n_shared_packed,
                   n_shared_lut, out, errors):
    """Thread ``c`` decodes chunk ``c`` (``words[wbounds[c]:wbounds[c+1]]``: states, then its words).

    With ``n_shared_packed > 0`` the block first stages ``packed`` and ``lut`` in dynamic shared memory
    (``packed`` as u32 from byte 0, the LUT as u16 right after it)."""
    sh32 = cuda.shared.array(0, nbt.uint32)
    sh16 = cuda.shared.array(0, nbt.uint16)
    if n_shared_packed > 0:
        for k in range(cuda.threadIdx.x, n_shared_packed, cuda.blockDim.x):
            sh32[k] = packed[k]
        lut0 = 2 * n_shared_packed
        for k in range(cuda.threadIdx.x, n_shared_lut, cuda.blockDim.x):
            sh16[lut0 + k] = lut[k]
        cuda.syncthreads()
    c = cuda.grid(1)
    if c >= errors.shape[0]:
        return
    state = cuda.local.array(MAX_LANES, nbt.int64)
    a = wbounds[c]
    for j in range(lanes):
        hi = np.int64(words[a + 2 * j + 1])
        if hi >= (1 << 31):  # a u64 state >= 2**63 cannot come from an encoder
            errors[c] = ERR_END
            return
        state[j] = np.int64(words[a + 2 * j]) | (hi << 32)
    s0 = bounds[c]
    n = bounds[c + 1] - s0
    if n_shared_packed > 0:
        errors[c] = _decode_chunk(words, a + 2 * lanes, wbounds[c + 1], s0, n, idx, istride, family, means, scales,
                                  sbits, n_frac, frac_shift, boundaries, coarse, starts, offsets, sizes,
                                  sh32[:n_shared_packed], sh16[2 * n_shared_packed: 2 * n_shared_packed + n_shared_lut],
                                  lut_bits, prec, lanes, state, out)
    else:
        errors[c] = _decode_chunk(words, a + 2 * lanes, wbounds[c + 1], s0, n, idx, istride, family, means, scales,
                                  sbits, n_frac, frac_shift, boundaries, coarse, starts, offsets, sizes, packed, lut,
                                  lut_bits, prec, lanes, state, out)


# ------------------------------------------------------------------------------------------ host side

@functools.lru_cache(maxsize=1)
def reciprocals() -> tuple[np.ndarray, np.ndarray]:
    """The device's ``x div f`` as ``mulhi64(x, m[f]) >> s[f]`` (plus one correction step), for every
    frequency ``f`` in ``0 .. 2**16`` (see the module docstring; index 0 unused)."""
    m = np.zeros(65537, dtype=np.uint64)
    s = np.zeros(65537, dtype=np.uint8)
    m[1] = (1 << 64) - 1
    for f in range(2, 65537):
        lg = (f - 1).bit_length()  # ceil(log2 f)
        m[f] = -(-(1 << (63 + lg)) // f)
        s[f] = lg - 1
    return m, s


class _DeviceTables:
    """A table set's kernel arrays on the device (built once per Tables object)."""

    def __init__(self, tables: Tables):
        self.ntables = len(tables)
        self.precision = tables.precision
        self.starts = cuda.to_device(np.ascontiguousarray(tables.starts))
        self.offsets = cuda.to_device(np.ascontiguousarray(tables.offsets))
        self.sizes = cuda.to_device(np.ascontiguousarray(tables.sizes))
        self.packed = cuda.to_device(np.ascontiguousarray(tables.packed))
        self.npacked = len(tables.packed)
        m, s = reciprocals()
        freqs = tables.freqs.astype(np.int64)
        self.rcpm = cuda.to_device(np.ascontiguousarray(m[freqs]))
        self.rcps = cuda.to_device(np.ascontiguousarray(s[freqs]))
        self._tables = weakref.ref(tables)
        self._luts: dict[int, tuple] = {}

    def lut(self, bits: int | None) -> tuple:
        """``(device lut, bits, entries)`` for ``Tables.lookup(bits)`` (None: its default)."""
        if bits not in self._luts:
            tables = self._tables()
            lut, b = tables.lookup(bits)
            self._luts[bits] = (cuda.to_device(np.ascontiguousarray(lut)), b, len(lut))
        return self._luts[bits]

    def decode_plan(self) -> tuple:
        """``(lut, bits, n_shared_packed, n_shared_lut, shared bytes)``: shared memory when it fits."""
        room = SHARED_TABLE_BYTES - 4 * self.npacked
        bits = self.precision
        while bits > MIN_SHARED_LUT_BITS and 2 * (self.ntables << bits) > room:
            bits -= 1
        if 2 * (self.ntables << bits) <= room:
            lut, b, nl = self.lut(bits)
            return lut, b, self.npacked, nl, 4 * self.npacked + 2 * nl
        lut, b, _ = self.lut(None)
        return lut, b, 0, 0, 0


_DEVICE_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DEVICE_FAMILIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _device_tables(tables: Tables) -> _DeviceTables:
    dt = _DEVICE_TABLES.get(tables)
    if dt is None:
        dt = _DeviceTables(tables)
        _DEVICE_TABLES[tables] = dt
    return dt


def _flat_device(a, what: str):
    d = as_device(a)
    if d.ndim != 1:
        if not d.is_c_contiguous():
            raise NctkError(f"{what}: device arrays must be contiguous")
        d = d.reshape(d.size)
    return d


def _int_input(a, what: str):
    """A 1-D integer array on the device: device inputs in place, host inputs copied once."""
    if not is_device_array(a):
        return cuda.to_device(int_array(plain(a), what))
    d = _flat_device(a, what)
    dt = np.dtype(d.dtype)
    if dt.kind == "b":
        return d.view(np.uint8)
    if dt not in KERNEL_INTS:
        raise NctkError(f"{what} must be integers of at most 32 bits or int64, got dtype {dt}")
    return d


def _index_input(indexes, count: int, tables: Tables):
    """:func:`rans_host.index_arg` on the device (a device array is never a scalar)."""
    if is_device_array(indexes):
        indexes = _flat_device(indexes, "table indexes")
    idx, stride = index_arg(indexes, count, len(tables), _int_input)
    return (idx if is_device_array(idx) else cuda.to_device(idx)), stride


_NO_FAMILY = None


def _no_family():
    """Placeholder family arguments (typed arrays of length 1, never read)."""
    global _NO_FAMILY
    if _NO_FAMILY is None:
        f = cuda.to_device(np.zeros(1, np.float64))
        i = cuda.to_device(np.zeros(1, np.int64))
        c = cuda.to_device(np.zeros(3, np.int32))
        _NO_FAMILY = (False, f, f, i, 1, 0, f, c)
    return _NO_FAMILY


def _f64_input(a, n: int, what: str):
    """A contiguous float64 device array of length ``n`` (device floats converted on the device)."""
    if is_device_array(a):
        d = _flat_device(a, what)
        if np.dtype(d.dtype).kind != "f":
            raise NctkError(f"{what} must be floating point, got dtype {d.dtype}")
        if np.dtype(d.dtype) != np.float64 or not d.is_c_contiguous():
            out = cuda.device_array(d.shape[0], dtype=np.float64)
            if d.shape[0]:
                _to_f64_kernel[grid(d.shape[0], 256), 256](d, out)
            d = out
    else:
        d = cuda.to_device(np.ascontiguousarray(np.reshape(np.asarray(plain(a)), -1), dtype=np.float64))
    if d.shape[0] != n:
        raise NctkError(f"need one mean and one scale per symbol ({n}), got {d.shape[0]} {what}")
    return d


def _family_input(family: ParametricFamily, means, scales, n: int) -> tuple:
    mu = _f64_input(means, n, "means")
    sigma = _f64_input(scales, n, "scales")
    if n and any_outside(mu, 2.0**30):  # rans_numba checks the means before coding too
        raise NctkError(MEANS_ERROR)
    consts = _DEVICE_FAMILIES.get(family)
    if consts is None:
        consts = (cuda.to_device(np.ascontiguousarray(family.boundaries, dtype=np.float64)),
                  cuda.to_device(np.ascontiguousarray(family.coarse, dtype=np.int32)))
        _DEVICE_FAMILIES[family] = consts
    if n == 0:
        mu = sigma = cuda.to_device(np.zeros(1, np.float64))
    return (True, mu, sigma, sigma.view(np.int64), family.n_frac, family.n_frac.bit_length() - 1, *consts)


def _encode_device(sym, idx, istride: int, tables: Tables, bounds: np.ndarray, lanes: int, fam: tuple):
    """Encode on the device; returns ``(packed u32 device buffer, word offsets per chunk)``."""
    dt = _device_tables(tables)
    nchunks = len(bounds) - 1
    sizes = np.diff(bounds)
    d_bounds = cuda.to_device(bounds)
    first = cuda.device_array(nchunks, dtype=np.int64)
    slack = escape_slack(sizes)
    if sym.shape[0] == 0:  # typed placeholder; no symbol is read
        sym = cuda.to_device(np.zeros(1, np.int64))
    while True:
        caps = np.zeros(nchunks + 1, dtype=np.int64)
        caps[1:] = np.cumsum(sizes + 2 * lanes + slack + 1)
        d_caps = cuda.to_device(caps)
        buf = cuda.device_array(int(caps[-1]), dtype=np.uint32)
        _encode_kernel[grid(nchunks, _TPB), _TPB](sym, idx, istride, *fam, d_bounds, d_caps, dt.starts, dt.offsets,
                                                  dt.sizes, dt.packed, dt.rcpm, dt.rcps, dt.precision, lanes, buf,
                                                  first)
        h_first = first.copy_to_host()
        slack = next_slack(h_first, sizes, slack, len(tables))
        if slack is None:
            break
    lens = caps[1:] - h_first
    offs = np.zeros(nchunks + 1, dtype=np.int64)
    offs[1:] = np.cumsum(lens)
    out = cuda.device_array(int(offs[-1]), dtype=np.uint32)
    _compact_kernel[nchunks, _COPY_TPB](buf, first, d_caps, cuda.to_device(offs), out)
    return out, offs


def streams_bytes(out, offs: np.ndarray) -> list[bytes]:
    """The streams of :func:`encode_chunks_device`'s ``(words, offsets)`` as host bytes."""
    raw = out.copy_to_host().astype("<u4", copy=False)
    return [raw[offs[c]: offs[c + 1]].tobytes() for c in range(len(offs) - 1)]


def encode_chunks_device(symbols, indexes, tables: Table | Tables, *, chunk_size: int,
                         lanes: int = DEFAULT_LANES) -> tuple:
    """Like :func:`encode_chunks`, but the streams stay on the device: ``(u32 device array, offsets)``
    where chunk ``c`` is words ``offsets[c]:offsets[c+1]`` (the same bytes, little-endian)."""
    require_device()
    tables = Tables.of(tables)
    check_lanes(lanes)
    sym = _int_input(symbols, "symbols")
    idx, istride = _index_input(indexes, sym.shape[0], tables)
    return _encode_device(sym, idx, istride, tables, chunk_bounds(sym.shape[0], chunk_size), lanes, _no_family())


def encode_chunks(symbols, indexes, tables: Table | Tables, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Split into chunks of ``chunk_size`` symbols and code each as an independent stream (same bytes as
    :func:`entropy.rans_numba.encode_chunks`)."""
    return streams_bytes(*encode_chunks_device(symbols, indexes, tables, chunk_size=chunk_size, lanes=lanes))


def encode(symbols, indexes, tables: Table | Tables, *, lanes: int = DEFAULT_LANES) -> bytes:
    """Same contract and bytes as :func:`nctk.entropy.rans_ref.encode`."""
    n = symbols.shape[0] if is_device_array(symbols) else np.size(symbols)
    return encode_chunks(symbols, indexes, tables, chunk_size=max(n, 1), lanes=lanes)[0]


def _words_input(chunks, lanes: int) -> tuple:
    """All streams as one device u32 array plus each stream's word bounds, on the device."""
    words, wbounds = stream_words(chunks, lanes)
    words = words.astype(np.uint32, copy=False)
    if len(words) == 0:
        words = np.zeros(1, np.uint32)
    return cuda.to_device(words), cuda.to_device(wbounds)


def _decode_device(chunks, idx, istride: int, tables: Tables, bounds: np.ndarray, lanes: int, fam: tuple,
                   out_dtype):
    dt = _device_tables(tables)
    nchunks = len(bounds) - 1
    total = int(bounds[-1])
    out = cuda.device_array(max(total, 1), dtype=out_dtype)
    if nchunks == 0:
        return out[:total]
    words, wbounds = _words_input(chunks, lanes)
    lut, lut_bits, nsp, nsl, shared_bytes = dt.decode_plan()
    errors = cuda.device_array(nchunks, dtype=np.int64)
    _decode_kernel[grid(nchunks, _TPB), _TPB, 0, shared_bytes](
        words, wbounds, cuda.to_device(bounds), idx, istride, *fam, dt.starts, dt.offsets, dt.sizes, dt.packed,
        lut, lut_bits, dt.precision, lanes, nsp, nsl, out, errors)
    check_decode_errors(errors.copy_to_host())
    return out[:total]


def decode_chunks_device(chunks: list[bytes | memoryview], indexes, tables: Table | Tables,
                         counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES):
    """Like :func:`decode_chunks`, but the int32 symbols stay on the device (a numba device array)."""
    require_device()
    tables = Tables.of(tables)
    check_lanes(lanes)
    bounds = counts_bounds(counts, len(chunks))
    idx, istride = _index_input(indexes, int(bounds[-1]), tables)
    return _decode_device(chunks, idx, istride, tables, bounds, lanes, _no_family(), np.int32)


def decode_chunks(chunks: list[bytes | memoryview], indexes, tables: Table | Tables,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Decode independent streams; ``counts[c]`` symbols from ``chunks[c]``; one int32 array."""
    return decode_chunks_device(chunks, indexes, tables, counts, lanes=lanes).copy_to_host()


def decode(data: bytes | memoryview, indexes, tables: Table | Tables, count: int | None = None,
           *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Same contract as :func:`nctk.entropy.rans_ref.decode`."""
    if count is None:
        if indexes is None or (not is_device_array(indexes) and np.ndim(indexes) == 0):
            raise NctkError("count is required when indexes is a scalar")
        count = indexes.shape[0] if is_device_array(indexes) else len(np.reshape(indexes, -1))
    return decode_chunks([data], indexes, tables, [count], lanes=lanes)


def encode_family(symbols, means, scales, family: ParametricFamily, *, chunk_size: int,
                  lanes: int = DEFAULT_LANES) -> list[bytes]:
    """Code integer ``symbols`` under per-symbol (mean, scale): same bytes as
    :func:`entropy.rans_numba.encode_family`."""
    require_device()
    check_lanes(lanes)
    sym = _int_input(symbols, "symbols")
    n = sym.shape[0]
    fam = _family_input(family, means, scales, n)
    idx = cuda.to_device(np.zeros(1, np.int64))
    out, offs = _encode_device(sym, idx, 0, family.tables, chunk_bounds(n, chunk_size), lanes, fam)
    return streams_bytes(out, offs)


def decode_family(chunks: list[bytes | memoryview], means, scales, family: ParametricFamily,
                  counts: list[int] | np.ndarray, *, lanes: int = DEFAULT_LANES) -> np.ndarray:
    """Inverse of :func:`encode_family`; int64 symbols (as rans_numba)."""
    require_device()
    check_lanes(lanes)
    bounds = counts_bounds(counts, len(chunks))
    fam = _family_input(family, means, scales, int(bounds[-1]))
    idx = cuda.to_device(np.zeros(1, np.int64))
    return _decode_device(chunks, idx, 0, family.tables, bounds, lanes, fam, np.int64).copy_to_host()
