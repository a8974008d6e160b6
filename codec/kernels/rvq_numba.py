"""Numba RVQ kernels: the codes of :mod:`codec.kernels.rvq_ref`, bit for bit, at BLAS speed.

Encoding screens codewords with fast float32 arithmetic (the ``||c||^2 - 2 r.c`` form; any summation
order, vectorised, FMA allowed) and keeps every codeword whose screened score lies within a proven
error bound of the best one. When more than one survives (a near tie, rare), the exact float64
distance of the reference settles it. So the fast path is free to round differently and the codes
still equal the reference's.

Error bound: a float32 dot product of length D has absolute error at most ``gamma_D * sum|r_d c_d|``
with ``gamma_D = D u / (1 - D u)``, ``u = 2**-24`` (any order, with or without FMA), and
``sum|r_d c_d| <= |r| |c|``. Adding the roundings of ``||c||^2``, the final subtraction and the
float64 exact distance itself, every score is within ``(2 gamma_D + 16 u) (|r| + cmax)**2 + ETA`` of
``|r - c|^2 - |r|^2`` (ETA covers underflow near zero); candidates are those within twice that of the
minimum. Inputs large enough for float32 scores to overflow skip the screening (exact distances only).

Two paths. D <= 64: one kernel scores 4 residuals against tiles of 16 codewords with explicit 8-lane
vectors (:mod:`codec.kernels.simd`: 8 accumulators, every codebook load feeds 4 FMAs, the scores never
leave registers) and keeps only each tile's lane-wise minimum; see :func:`_encode_small` for why that is
enough. Larger D multiplies residual blocks by the codebook with one sgemm per block and stage (torch's
BLAS, near the machine's FLOP roofline, wider than 8 lanes where the CPU has AVX-512; the codeword norms
ride in the product) and selects codes in a light single-threaded kernel.
"""

from __future__ import annotations

import concurrent.futures

import numba
import numpy as np

from nctk.codec.kernels.rvq_ref import check_rvq_inputs, check_stages
from nctk.codec.kernels.simd import (
    fmuladd8,
    hmin8,
    hsum8,
    iadd8,
    iand8,
    iota8,
    isplat8,
    le_mask8,
    load8,
    min8,
    splat8,
    store8,
)
from nctk.entropy.errors import NctkError
from nctk.entropy.jit import njit, prange

U32 = 2.0**-24
# Absolute slack for underflow: each float32 operation near zero may lose up to 2**-126 (even with
# flush-to-zero), so a dot product of length D+1 and the final subtraction stay within (D+4) * 2**-124.
# Scores that small make every codeword a candidate, and the exact distance decides: slow, still exact.
ETA = 2.0**-100
# Beyond this score magnitude float32 screening could overflow; such inputs take the exact path.
MAX_SCALE2 = 2.0**120
# Up to here the tile kernel is used. Measured on the 2-core AVX2 CI machine (K = 1024, 8 stages): it beats
# the sgemm path 3.5x at D = 8, 1.4x at 32, 1.2x at 64, and is within 4-8% at 96-256, where BLAS with
# wider vectors (AVX-512) would win: the sgemm path keeps those.
SMALL_D = 64
BLAS_BLOCK = 2048  # vectors per sgemm block on the large-D path


def _gamma(d: int) -> float:
    return d * U32 / (1.0 - d * U32)


@njit(cache=True)
def _exact(r, c):
    """The reference's exact distance: float64, left to right, no fused operations."""
    acc = 0.0
    for d in range(r.shape[0]):
        diff = np.float64(r[d]) - np.float64(c[d])
        sq = diff * diff
        acc = acc + sq
    return acc


@njit(cache=True)
def _settle(r, cb, scores, thresh):
    """Among codewords whose score is <= thresh, the exact argmin (lowest index on ties)."""
    k_best = -1
    d_best = 0.0
    for k in range(scores.shape[0]):
        if scores[k] <= thresh:
            dk = _exact(r, cb[k])
            if k_best < 0 or dk < d_best:
                k_best = k
                d_best = dk
    return k_best


@njit(cache=True)
def _screen(scores, ib):
    """Index of a near-minimal score: an int32 min over ``coarse_key << ib | k`` (LLVM vectorises an
    integer min 8-wide; a float min reduction would not vectorise without fast-math).

    ``coarse_key`` is the score's order-preserving int32 key with its low ``ib`` bits dropped, so the
    winner's score is at most a few ulps-times-2**ib above the true minimum; :func:`_pick` only needs a
    candidate no smaller than the minimum (see there)."""
    bits = scores.view(np.int32)
    best = np.int32(0x7FFFFFFF)
    low = np.int32((1 << ib) - 1)
    for k in range(bits.shape[0]):
        # every intermediate cast back to int32: Numba would widen to int64, which AVX2 cannot min
        v = bits[k]
        key = np.int32(v ^ np.int32((v >> 31) & np.int32(0x7FFFFFFF)))
        best = min(best, np.int32((key & ~low) | np.int32(k)))
    return np.int64(best & low)


@njit(cache=True)
def _count_upto(scores, t):
    """How many scores are <= t (vectorised)."""
    c = 0
    for k in range(scores.shape[0]):
        c += scores[k] <= t
    return c


@njit(cache=True)
def _pick(r, cb, scores, cmax, coef, ib):
    """The reference code for residual ``r`` given its screened ``scores``.

    ``first`` has a score ``m' >= min``. Every codeword whose score is within the bound of the minimum
    is within the bound of ``m'`` too, so if ``first`` is alone below ``m' + 2 bound`` it is the exact
    argmin; otherwise the exact distance decides among those below it.
    """
    first = _screen(scores, ib)
    rn = 0.0
    for d in range(r.shape[0]):
        rn += np.float64(r[d]) * np.float64(r[d])
    rn = np.sqrt(rn)
    bound = coef * (rn + cmax) * (rn + cmax) + ETA
    thresh = np.float64(scores[first]) + 2.0 * bound
    t32 = np.float32(thresh)
    if np.float64(t32) < thresh:  # round the float32 threshold up
        t32 = np.nextafter(t32, np.float32(np.inf))
    if _count_upto(scores, t32) == 1:
        return first
    return _settle(r, cb, scores, t32)


@njit(cache=True)
def _subtract(r, c):
    for d in range(r.shape[0]):
        r[d] = np.float32(r[d] - c[d])


TILE = 16  # codewords per tile on the small-D path: two 8-lane vectors
MAX_TILE_LANES = 1 << 16  # tile-lane positions must fit the low 16 bits of the packed count (K <= 2**17)


@njit(cache=True, inline="always")
def _up32(m, bound2):
    """float32 at or above ``m + bound2`` (float64 sum), branch-free: adding ``|th| 2**-22`` survives
    the float32 rounding (at most ``|th| 2**-24``); ``2**-140`` covers subnormal results."""
    th = np.float64(m) + bound2
    return np.float32(th + abs(th) * 2.0**-22 + 2.0**-140)


@njit(cache=True)
def _settle_tiles(r, g, cb, s, tm, kt, t32):
    """Near ties (rare): the exact argmin over both codewords behind every tile-min lane <= t32. Some lane
    always qualifies (the minimum's, t32 >= m), so the result is a real codeword, never -1."""
    k = cb.shape[1]
    best = -1
    dbest = 0.0
    for p in range(kt):
        if tm[g * kt + p] <= t32:
            j = (p >> 3) * TILE + (p & 7)
            for _ in range(2):
                if j < k:
                    dj = _exact(r[g], cb[s, j])
                    if best < 0 or dj < dbest or (dj == dbest and j < best):  # ties: lowest index
                        best = j
                        dbest = dj
                j += 8
    return best


@njit(cache=True, inline="always")
def _pick_tile(r, g, cb, s, tm, kt, t32, tot):
    """The reference code of residual row ``g`` from its packed tile-lane count ``tot`` (see _encode_small)."""
    if tot >> 16 != 1:
        return _settle_tiles(r, g, cb, s, tm, kt, t32)
    p = tot & 0xFFFF
    j0 = (p >> 3) * TILE + (p & 7)
    j1 = j0 + 8  # may be padding (>= K): then j0 is the one
    k = cb.shape[1]
    d0 = _exact(r[g], cb[s, j0])
    d1 = _exact(r[g], cb[s, min(j1, k - 1)])
    return j0 + 8 * (np.int64(j1 < k) * np.int64(d1 < d0))  # branch-free; a tie keeps j0


# Numba's on-disk cache keys on this file's timestamp and size only, but _encode_small compiles simd.py's
# intrinsics into itself: a change to simd.py alone would keep serving the old machine code. So this names
# simd.py's exact bytes; tests/test_simd.py fails until it is updated after an edit there, and updating it
# changes this file, which invalidates the cache.
SIMD_SHA256 = "d7a2de18bff46383d935778acd1c16d3f0b38cd34d616f51aef30c6c83669f73"


@njit(parallel=True, cache=True)
def _encode_small(x, cb, cbb, cn, cmax, coef, n_stages, codes):
    """Small-D encoder: every stage of blocks of 256 vectors, 4 residuals at a time.

    ``cbb`` is the codebook in tiles (S, Kp/8, D, 8): 8 codewords' d-th coordinates side by side; ``cn``
    the norms (S, Kp); Kp = K rounded up to a tile, padding with zero codewords of norm +inf (never
    chosen). Per stage, each tile's 16 scores ``||c||^2 - 2 r.c`` (float32, any rounding within the
    bound) stay in registers; only their lane-wise minimum ``tm[p]`` (p = tile * 8 + lane, covering
    codewords ``tile*16 + lane`` and ``tile*16 + 8 + lane``) is stored, and the running minimum ``m``.
    With ``t = m + 2 bound`` rounded up, the exact argmin's score is <= t, so its lane entry is. One
    vectorised pass counts lane entries <= t, packing ``1 << 16 | p`` per hit so the sum is
    ``count << 16 | p`` when count is 1 (count >= 2 reads as >= 2 whatever the low bits do; p < 2**16).
    Count 1: every other codeword scores above t, so the answer is one of that lane's two codewords and
    their exact distances decide. Otherwise (near ties, ~0.1% of vectors on trained codebooks):
    :func:`_settle_tiles`. No distance row is ever written to memory. Returns how many (vector, stage)
    pairs needed that slow path (for tests: a regression there costs only speed).
    """
    n, dim = x.shape
    kp = cn.shape[1]
    kt = kp // 2
    inf = np.float32(np.inf)
    settled = 0
    for b in prange((n + 255) // 256):
        r = np.empty((4, dim), dtype=np.float32)
        m2r = np.empty((4, dim), dtype=np.float32)  # -2 r, exact in float32
        bnd = np.empty(4)
        tm = np.empty(4 * kt, dtype=np.float32)
        for i0 in range(b * 256, min(n, b * 256 + 256), 4):
            for g in range(4):
                i = min(i0 + g, n - 1)  # a short last group repeats its last vector
                for d in range(dim):
                    r[g, d] = x[i, d]
            for s in range(n_stages):
                for g in range(4):  # the bound depends on |r| only: computed before the scores are
                    rn = 0.0
                    for d in range(dim):
                        m2r[g, d] = np.float32(-2.0) * r[g, d]
                        rn += np.float64(r[g, d]) * np.float64(r[g, d])
                    rn = np.sqrt(rn)
                    bnd[g] = 2.0 * (coef * (rn + cmax[s]) * (rn + cmax[s]) + ETA)
                mn0 = splat8(inf)
                mn1 = mn0
                mn2 = mn0
                mn3 = mn0
                for j in range(0, kp, TILE):
                    base = (s * kp + j) * dim  # flat offset of this tile in cbb
                    a00 = load8(cn, s * kp + j)
                    a01 = load8(cn, s * kp + j + 8)
                    a10, a11, a20, a21, a30, a31 = a00, a01, a00, a01, a00, a01
                    for d in range(dim):
                        c0 = load8(cbb, base + d * 8)
                        c1 = load8(cbb, base + (dim + d) * 8)
                        q = splat8(m2r[0, d])
                        a00 = fmuladd8(q, c0, a00)
                        a01 = fmuladd8(q, c1, a01)
                        q = splat8(m2r[1, d])
                        a10 = fmuladd8(q, c0, a10)
                        a11 = fmuladd8(q, c1, a11)
                        q = splat8(m2r[2, d])
                        a20 = fmuladd8(q, c0, a20)
                        a21 = fmuladd8(q, c1, a21)
                        q = splat8(m2r[3, d])
                        a30 = fmuladd8(q, c0, a30)
                        a31 = fmuladd8(q, c1, a31)
                    h = j // 2
                    m = min8(a00, a01)
                    store8(tm, h, m)
                    mn0 = min8(mn0, m)
                    m = min8(a10, a11)
                    store8(tm, kt + h, m)
                    mn1 = min8(mn1, m)
                    m = min8(a20, a21)
                    store8(tm, 2 * kt + h, m)
                    mn2 = min8(mn2, m)
                    m = min8(a30, a31)
                    store8(tm, 3 * kt + h, m)
                    mn3 = min8(mn3, m)
                tt = (_up32(hmin8(mn0), bnd[0]), _up32(hmin8(mn1), bnd[1]),
                      _up32(hmin8(mn2), bnd[2]), _up32(hmin8(mn3), bnd[3]))
                tv0 = splat8(tt[0])
                tv1 = splat8(tt[1])
                tv2 = splat8(tt[2])
                tv3 = splat8(tt[3])
                c0 = isplat8(0)
                c1, c2, c3 = c0, c0, c0
                pos = iadd8(iota8(), isplat8(1 << 16))
                step = isplat8(8)
                for h in range(0, kt, 8):  # the four counts in one loop: four independent chains
                    c0 = iadd8(c0, iand8(le_mask8(load8(tm, h), tv0), pos))
                    c1 = iadd8(c1, iand8(le_mask8(load8(tm, kt + h), tv1), pos))
                    c2 = iadd8(c2, iand8(le_mask8(load8(tm, 2 * kt + h), tv2), pos))
                    c3 = iadd8(c3, iand8(le_mask8(load8(tm, 3 * kt + h), tv3), pos))
                    pos = iadd8(pos, step)
                tot = (hsum8(c0), hsum8(c1), hsum8(c2), hsum8(c3))
                for g in range(min(4, n - i0)):
                    code = _pick_tile(r, g, cb, s, tm, kt, tt[g], tot[g])
                    settled += tot[g] >> 16 != 1
                    codes[i0 + g, s] = code
                    for d in range(dim):
                        r[g, d] = np.float32(r[g, d] - cb[s, code, d])
    return settled


def _small_tables(cb: np.ndarray, cn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The small-D kernel's tiled codebook (S, Kp/8, D, 8) and padded norms (S, Kp); see _encode_small."""
    s, k, dim = cb.shape
    kp = -(-k // TILE) * TILE
    cnp = np.full((s, kp), np.inf, dtype=np.float32)
    cnp[:, :k] = cn
    padded = np.zeros((s, kp, dim), dtype=np.float32)
    padded[:, :k] = cb
    return np.ascontiguousarray(padded.reshape(s, kp // 8, 8, dim).transpose(0, 1, 3, 2)), cnp


@njit(cache=True, nogil=True)
def _select_rows(res, g, cb, cmax, coef, ib, codes, s):
    """Large-D path, after the sgemm: ``g`` already holds the scores ``||c||^2 - 2 r.c`` (the norms
    ride in the product, see :func:`_encode_large`); pick each row's exact code and update the
    residual (the first D columns of ``res``). Releases the GIL: one worker thread per core runs it."""
    dim = cb.shape[1]
    for i in range(res.shape[0]):
        r = res[i, :dim]
        code = _pick(r, cb, g[i], cmax, coef, ib)
        codes[i, s] = code
        _subtract(r, cb[code])


def _encode_large(x: np.ndarray, cb: np.ndarray, cn: np.ndarray, cmax: np.ndarray, stages: int, coef: float,
                  ib: int, codes: np.ndarray) -> None:
    """Large-D path: per block of BLAS_BLOCK vectors and stage, one sgemm ``[r, 1] @ [-2 C^T; ||c||^2]``
    gives the screening scores directly (-2 C is exact in float32; the extra term is within the error
    bound), then :func:`_select_rows`. Blocks go to one worker thread per core, each running single-
    threaded sgemms: the select pass then overlaps the other core's sgemm instead of idling a core."""
    import torch

    n, dim = x.shape
    aug = [torch.from_numpy(np.ascontiguousarray(np.concatenate([-2.0 * cb[s].T, cn[s][None, :]], axis=0)))
           for s in range(stages)]
    workers = max(1, min(numba.get_num_threads(), -(-n // BLAS_BLOCK)))

    def run(w: int) -> None:
        g = torch.empty((min(BLAS_BLOCK, n), cb.shape[1]), dtype=torch.float32)
        res = np.empty((min(BLAS_BLOCK, n), dim + 1), dtype=np.float32)
        tres = torch.from_numpy(res)
        for a in range(w * BLAS_BLOCK, n, workers * BLAS_BLOCK):
            m = min(BLAS_BLOCK, n - a)
            rb, gb, tb = res[:m], g[:m], tres[:m]
            rb[:, :dim] = x[a : a + m]
            rb[:, dim] = 1.0
            out = codes[a : a + m]
            for s in range(stages):
                torch.matmul(tb, aug[s], out=gb)  # the FLOPs live here
                _select_rows(rb, gb.numpy(), cb[s], cmax[s], coef, ib, out, s)

    # torch's intra-op thread count is process-wide: it is 1 while this runs (each worker owns a core),
    # then restored. Other torch work running concurrently in the same process would feel it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(run, w) for w in range(workers)]:
                f.result()
    finally:
        torch.set_num_threads(threads)


@njit(parallel=True, cache=True)
def _encode_exact(x, cb, n_stages, codes):
    """Every distance exact (the reference, compiled): for inputs whose scale float32 cannot screen."""
    for i in prange(x.shape[0]):
        r = x[i].copy()
        for s in range(n_stages):
            best = -1
            dbest = 0.0
            for k in range(cb.shape[1]):
                dk = _exact(r, cb[s, k])
                if best < 0 or dk < dbest:
                    best = k
                    dbest = dk
            codes[i, s] = best
            _subtract(r, cb[s, best])


def _stage_tables(cb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stage ||c_k||^2 (float32 of the float64 sum) and max ||c_k|| (float64)."""
    c64 = cb.astype(np.float64)
    norms2 = (c64 * c64).sum(axis=2)
    with np.errstate(over="ignore"):  # huge codebooks overflow float32 here; encode() then goes exact
        return norms2.astype(np.float32), np.sqrt(norms2.max(axis=1))


def encode(x, codebooks, n_stages: int | None = None) -> np.ndarray:
    """RVQ codes (N, S) int32, identical to :func:`codec.kernels.rvq_ref.encode_reference`."""
    x, cb = check_rvq_inputs(x, codebooks)
    stages = check_stages(n_stages, cb.shape[0])
    n, dim = x.shape
    cn, cmax = _stage_tables(cb)
    coef = 2.0 * _gamma(dim + 3) + 16.0 * U32  # dot products of length D (+1 for the norm column)
    ib = max(1, int(cb.shape[1] - 1).bit_length())  # index bits in the packed screening key
    if ib > 24:
        raise NctkError("codebooks of more than 2**24 entries are not supported")
    codes = np.empty((n, stages), dtype=np.int32)
    if n == 0:
        return codes
    # Every residual norm is at most |x| + sum of the stages' max |c|; scores are within (that + max|c|)^2.
    # |x| <= max|x_d| * sqrt(D): one cheap pass, no float64 copy.
    xn = max(abs(float(x.max())), abs(float(x.min()))) * float(np.sqrt(dim))
    scale = xn + 2.0 * float(cmax[:stages].sum())
    if not np.isfinite(scale) or (dim + 4) * scale * scale > MAX_SCALE2:
        _encode_exact(x, cb, stages, codes)
        return codes
    if dim <= SMALL_D and cb.shape[1] <= 2 * MAX_TILE_LANES:
        cbb, cnp = _small_tables(cb[:stages], cn[:stages])
        _encode_small(x, cb, cbb, cnp, cmax, coef, stages, codes)
        return codes
    _encode_large(x, cb, cn, cmax, stages, coef, ib, codes)
    return codes


@njit(parallel=True, cache=True)
def _decode(codes, cb, out):
    n, stages = codes.shape
    for i in prange(n):
        for d in range(out.shape[1]):
            out[i, d] = 0.0
        for s in range(stages):
            c = cb[s, codes[i, s]]
            for d in range(out.shape[1]):
                out[i, d] = np.float32(out[i, d] + c[d])


def decode(codes, codebooks) -> np.ndarray:
    """Gather-and-sum decode, identical to :func:`codec.kernels.rvq_ref.decode_reference`."""
    cb = np.ascontiguousarray(codebooks, dtype=np.float32)
    codes = np.ascontiguousarray(codes)
    if cb.ndim != 3 or codes.ndim != 2 or codes.shape[1] > cb.shape[0]:
        raise NctkError(f"codes (N, S<={cb.shape[0] if cb.ndim == 3 else '?'}) and codebooks (S, K, D) expected")
    if codes.size and (codes.min() < 0 or codes.max() >= cb.shape[1]):
        raise NctkError(f"codes must be in [0, {cb.shape[1]})")
    out = np.empty((codes.shape[0], cb.shape[2]), dtype=np.float32)
    _decode(codes.astype(np.int64, copy=False), cb, out)
    return out
