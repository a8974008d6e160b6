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

Two paths: small D (<= 20) runs one fused kernel per block of vectors (all stages, residuals kept in
L1, the distance rows never leave L1; generated per D so the dot products unroll); larger D multiplies
residual blocks by the codebook with one sgemm per block and stage (numpy's BLAS, near the machine's
FLOP roofline; the codeword norms ride in the product) and selects codes in a light single-threaded
kernel.
"""

from __future__ import annotations

import concurrent.futures

import numba
import numpy as np
from numba import njit, prange

from codec.kernels.rvq_ref import check_rvq_inputs
from entropy.errors import NctkError

U32 = 2.0**-24
# Absolute slack for underflow: each float32 operation near zero may lose up to 2**-126 (even with
# flush-to-zero), so a dot product of length D+1 and the final subtraction stay within (D+4) * 2**-124.
# Scores that small make every codeword a candidate, and the exact distance decides: slow, still exact.
ETA = 2.0**-100
# Beyond this score magnitude float32 screening could overflow; such inputs take the exact path.
MAX_SCALE2 = 2.0**120
SMALL_D = 20  # measured crossover: the generated kernel spills registers beyond ~20 dimensions
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


@njit(fastmath=True, cache=True)
def _scores_small(r, cbt, cn, scores):
    """scores[k] = ||c_k||^2 - 2 r.c_k in float32 for a D x K (transposed) codebook."""
    for k in range(scores.shape[0]):
        scores[k] = cn[k]
    for d in range(r.shape[0]):
        rd = np.float32(2.0) * r[d]
        for k in range(scores.shape[0]):
            scores[k] -= rd * cbt[d, k]


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


GROUP = 4  # vectors scored together on the small-D path: each codebook load feeds 4 dot products

_SMALL_SOURCE = """
def encode_small(x, cb, cbt, cn, cmax, coef, ib, n_stages, codes):
    n = x.shape[0]
    k = cb.shape[1]
    low = np.int32((1 << ib) - 1)
    nblocks = (n + 255) // 256
    for b in prange(nblocks):
        r = np.empty(({group}, {dim}), dtype=np.float32)
        scores = np.empty(({group}, k), dtype=np.float32)
        for i0 in range(b * 256, min(n, b * 256 + 256), {group}):
            for g in range({group}):
                i = min(i0 + g, n - 1)  # a short last group repeats its last vector
                for d in range({dim}):
                    r[g, d] = x[i, d]
            for s in range(n_stages):
                cbt_s = cbt[s]
                cn_s = cn[s]
                cb_s = cb[s]
                {twice_r}
                for j in range(k):
{dots}
                for g in range(min({group}, n - i0)):
                    # screen: int32 min over coarse keys (see _screen), written inline
                    bits = scores[g].view(np.int32)
                    best = np.int32(0x7FFFFFFF)
                    for j in range(k):
                        v = bits[j]
                        key = np.int32(v ^ np.int32((v >> 31) & np.int32(0x7FFFFFFF)))
                        best = min(best, np.int32((key & ~low) | np.int32(j)))
                    first = np.int64(best & low)
                    rn = 0.0
                    for d in range({dim}):
                        rn += np.float64(r[g, d]) * np.float64(r[g, d])
                    rn = np.sqrt(rn)
                    bound = coef * (rn + cmax[s]) * (rn + cmax[s]) + ETA
                    thresh = np.float64(scores[g, first]) + 2.0 * bound
                    t32 = np.float32(thresh)
                    if np.float64(t32) < thresh:
                        t32 = np.nextafter(t32, np.float32(np.inf))
                    count = np.int32(0)
                    for j in range(k):
                        count += np.int32(scores[g, j] <= t32)
                    code = first if count == 1 else _settle(r[g], cb_s, scores[g], t32)
                    codes[i0 + g, s] = code
                    for d in range({dim}):
                        r[g, d] = np.float32(r[g, d] - cb_s[code, d])
"""
_SMALL_KERNELS: dict[int, object] = {}


def _tree(terms: list[str]) -> str:
    """A balanced sum: dependency depth log2(D) instead of D (the screening bound allows any order)."""
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    return f"({_tree(terms[:mid])} + {_tree(terms[mid:])})"


def _small_kernel(dim: int):
    """The fused small-D encoder, generated for this D so the dot products unroll and the codeword loop
    vectorises with the scores in registers (a generic D loop re-reads them D times), scoring GROUP
    vectors per codebook pass (a K=1024, D=8 codebook alone fills L1), with :func:`_pick`'s steps
    written inline (calls with array views cost more than the work): every stage of a block of 256
    vectors in one pass, the residuals in L1."""
    if dim not in _SMALL_KERNELS:
        twice_r = "; ".join(f"r{g}_{d} = np.float32(2.0) * r[{g}, {d}]" for g in range(GROUP) for d in range(dim))
        loads = "".join(f"                    c{d} = cbt_s[{d}, j]\n" for d in range(dim))
        dots = loads + "".join(
            f"                    scores[{g}, j] = cn_s[j] - " + _tree([f"r{g}_{d} * c{d}" for d in range(dim)]) + "\n"
            for g in range(GROUP))
        src = _SMALL_SOURCE.format(dim=dim, group=GROUP, twice_r=twice_r, dots=dots.rstrip("\n"))
        scope = {"np": np, "prange": prange, "_settle": _settle, "ETA": ETA}
        exec(compile(src, f"<nctk rvq small-D kernel, D={dim}>", "exec"), scope)
        # fastmath only lets LLVM reassociate the screening dot products (the bound allows any order);
        # the exact distances live in _settle, compiled without it.
        _SMALL_KERNELS[dim] = njit(parallel=True, fastmath=True)(scope["encode_small"])
    return _SMALL_KERNELS[dim]


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
    stages = cb.shape[0] if n_stages is None else int(n_stages)
    if not 1 <= stages <= cb.shape[0]:
        raise NctkError(f"n_stages must be in [1, {cb.shape[0]}]")
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
    if dim <= SMALL_D:
        cbt = np.ascontiguousarray(cb.transpose(0, 2, 1))
        _small_kernel(dim)(x, cb, cbt, cn, cmax, coef, ib, stages, codes)
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
