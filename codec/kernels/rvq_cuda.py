"""CUDA RVQ kernels: codes and reconstructions equal to :mod:`codec.kernels.rvq_ref` bit for bit.

- **Encode** (``_encode_kernel``, fused over all stages): one thread per vector, ``V`` vectors per block.
  Per stage the block streams the stage's codebook through shared memory in tiles of ``kt`` codewords
  (coalesced cooperative loads); each thread computes the *exact* distance of its residual to every
  codeword of the tile, keeping a running argmin (strict ``<`` in increasing ``k``: ties go to the lowest
  index), then updates its residual ``r = float32(r - c)`` and goes on to the next stage. No N x K
  distance matrix is ever materialised. The exact distance is float64, left to right over ``d``, with the
  non-contracting intrinsics ``dadd_rn`` / ``dmul_rn`` (NVVM would otherwise fuse ``acc + diff*diff`` into
  an FMA); a codeword's partial sum that already reaches the best distance stops early (the sum only
  grows, and an equal one would lose the tie), which does not change any code. The residual update uses
  ``fsub_rn``.
- The residuals live in shared memory too (``[d][v]`` layout: consecutive threads hit consecutive banks;
  codeword reads are broadcasts) when ``V * D + kt * D`` floats fit in ``SHARED_BYTES``; for large ``D``
  they live in a global ``(D, N)`` scratch (coalesced), and for very large ``D`` the codewords are read
  from global memory directly.
- **Decode** (``_decode_kernel``): one thread per output element ``(n, d)`` (coalesced along ``d``), which
  gathers its stage codewords and sums them in float32 from ``0.0`` with ``fadd_rn`` (the reference's
  order, so ``0 + (-0.0)`` is ``+0.0`` as in numpy).

Inputs: numpy arrays (or anything ``np.asarray`` takes), torch tensors (CPU or CUDA) or device arrays with
``__cuda_array_interface__``; results come back as the same kind as ``x`` (encode) or ``codes`` (decode).
Under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) the intrinsics are replaced by numpy float64 /
float32 scalar operations, which are the same IEEE round-to-nearest operations.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda
from numba import types as nbt

from nctk.codec.kernels.rvq_ref import check_rvq_inputs, check_stages
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

SHARED_BYTES = 46 << 10  # dynamic shared memory per block (the default limit is 48 KiB)
MIN_TILE = 8  # codewords per shared tile worth keeping the residuals in shared memory for

if SIMULATOR:
    def _dadd(a, b):
        return np.float64(a) + np.float64(b)

    def _dmul(a, b):
        return np.float64(a) * np.float64(b)

    def _fsub(a, b):
        return np.float32(a) - np.float32(b)

    def _fadd(a, b):
        return np.float32(a) + np.float32(b)
else:
    from numba.cuda import libdevice

    _dadd = libdevice.dadd_rn
    _dmul = libdevice.dmul_rn
    _fsub = libdevice.fsub_rn
    _fadd = libdevice.fadd_rn


@device_fn
def _encode_rows(x, cb, codes, N, D, K, n_stages, kt, tile_shared, tile, r, r0, rstride, n, valid):
    """The fused stage loop for one block. This thread's residual element ``d`` is ``r[r0 + d*rstride]``;
    with ``tile_shared`` the block stages codewords in ``tile[0 : kt*D]``, else ``tile`` is ``cb``."""
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    if valid:
        for d in range(D):
            r[r0 + d * rstride] = x[n * D + d]
    for s in range(n_stages):
        best = np.inf
        bestk = 0
        for k0 in range(0, K, kt):
            kc = min(kt, K - k0)
            if tile_shared:
                t0 = 0
                cuda.syncthreads()  # everyone is done with the previous tile
                src = (s * K + k0) * D
                for j in range(tid, kc * D, nthreads):
                    tile[j] = cb[src + j]
                cuda.syncthreads()
            else:
                t0 = (s * K + k0) * D
            if valid:
                for kk in range(kc):
                    acc = np.float64(0.0)
                    c0 = t0 + kk * D
                    for d in range(D):
                        diff = _dadd(np.float64(r[r0 + d * rstride]), -np.float64(tile[c0 + d]))
                        acc = _dadd(acc, _dmul(diff, diff))
                        if acc >= best:  # can only grow; an equal distance loses the tie anyway
                            break
                    if acc < best:
                        best = acc
                        bestk = k0 + kk
        if valid:
            codes[n * n_stages + s] = bestk
            c0 = (s * K + bestk) * D
            for d in range(D):
                i = r0 + d * rstride
                r[i] = _fsub(r[i], cb[c0 + d])


@cuda.jit
def _encode_kernel(x, cb, codes, N, D, K, n_stages, kt, r_shared, tile_shared, scratch):
    """``x`` (N*D), ``cb`` (S*K*D), ``codes`` (N*n_stages), all flat; see the module docstring."""
    sh = cuda.shared.array(0, nbt.float32)
    nthreads = cuda.blockDim.x
    tid = cuda.threadIdx.x
    n = cuda.blockIdx.x * nthreads + tid
    valid = n < N
    if r_shared:
        _encode_rows(x, cb, codes, N, D, K, n_stages, kt, True, sh, sh, kt * D + tid, nthreads, n, valid)
    elif tile_shared:
        _encode_rows(x, cb, codes, N, D, K, n_stages, kt, True, sh, scratch, n, N, n, valid)
    else:
        _encode_rows(x, cb, codes, N, D, K, n_stages, kt, False, cb, scratch, n, N, n, valid)


@cuda.jit
def _decode_kernel(codes, cb, out, N, D, K, S, bad):
    """``out[n*D + d] = ((0 + cb[0, c0, d]) + cb[1, c1, d]) + ...`` in float32; ``bad[0] = 1`` for a code
    outside ``[0, K)`` (its codeword taken as 0, then the host raises)."""
    j = cuda.grid(1)
    stride = cuda.gridsize(1)
    while j < N * D:
        n = j // D
        d = j - n * D
        acc = np.float32(0.0)
        for s in range(S):
            k = np.int64(codes[n * S + s])
            if k < 0 or k >= K:
                bad[0] = 1
                k = 0
            acc = _fadd(acc, cb[(s * K + k) * D + d])
        out[j] = acc
        j += stride


def _kind(a) -> str:
    """"torch-cuda", "device" (numba / CuPy / anything with the CUDA array interface), "torch" (CPU) or
    "numpy"."""
    if type(a).__module__.startswith("torch"):
        return "torch-cuda" if a.is_cuda else "torch"
    return "device" if is_device_array(a) else "numpy"


def _host(a) -> np.ndarray:
    """A numpy array of a host input (torch CPU tensors detached from autograd)."""
    return np.asarray(plain(a))


def _device_view(a, dtype, what: str):
    """A flat contiguous numba device view (or copy) of a device array / torch CUDA tensor."""
    if type(a).__module__.startswith("torch"):
        import torch

        a = a.detach().to(torch.float32 if dtype == np.float32 else torch.int64).contiguous()
    d = as_device(a)
    if np.dtype(d.dtype) != np.dtype(dtype) and not (dtype != np.float32 and np.dtype(d.dtype).kind in "iu"):
        raise NctkError(f"{what} on the device must be {np.dtype(dtype)}, got {d.dtype}")
    if not d.is_c_contiguous():
        raise NctkError(f"{what}: device arrays must be contiguous")
    return d, tuple(d.shape)


def _f32_input(a, what: str):
    """``(float32 device array, shape)``: device inputs viewed in place, host inputs copied once."""
    if _kind(a) in ("numpy", "torch"):
        d = cuda.to_device(np.ascontiguousarray(_host(a), dtype=np.float32))
        return d, d.shape
    return _device_view(a, np.float32, what)


def _check_finite(d) -> None:
    if d.size and any_outside(d.reshape(d.size), math.inf):
        raise NctkError("RVQ inputs and codebooks must be finite")


def _inputs(x, codebooks):
    """Device views of ``x`` (N, D) and ``codebooks`` (S, K, D) float32, validated like the reference."""
    kx, kc = _kind(x), _kind(codebooks)
    if kx in ("numpy", "torch") and kc in ("numpy", "torch"):
        xh, cbh = check_rvq_inputs(_host(x), _host(codebooks))
        return cuda.to_device(xh), cuda.to_device(cbh), xh.shape, cbh.shape
    xd, xs = _f32_input(x, "x")
    cbd, cs = _f32_input(codebooks, "codebooks")
    if len(xs) != 2 or len(cs) != 3 or xs[1] != cs[2]:
        raise NctkError(f"need x (N, D) and codebooks (S, K, D); got {xs} and {cs}")
    if cs[0] < 1 or cs[1] < 1:
        raise NctkError("need at least one stage and one codeword")
    _check_finite(xd)
    _check_finite(cbd)
    return xd, cbd, xs, cs


def _result(d, like, shape):
    """Return device result ``d`` reshaped to ``shape`` as the same kind as ``like``."""
    kind = _kind(like)
    if d.size == 0:
        d = cuda.device_array(shape, dtype=d.dtype)
    else:
        d = d.reshape(shape)
    if kind == "numpy":
        return d.copy_to_host().reshape(shape)
    if kind == "torch":
        import torch

        return torch.from_numpy(d.copy_to_host().reshape(shape))
    if kind == "torch-cuda":
        import torch

        cuda.synchronize()
        return torch.as_tensor(d, device=like.device).reshape(shape)
    return d


def encode_plan(D: int, K: int) -> tuple[int, int, bool, bool]:
    """``(threads per block, codewords per tile, residuals in shared, tile in shared)`` for (D, K)."""
    floats = SHARED_BYTES // 4
    for v in (128, 64, 32):
        if v * D + min(K, MIN_TILE) * D <= floats:
            return v, max(1, min(K, (floats - v * D) // D)), True, True
    if D <= floats:
        return 128, max(1, min(K, floats // D)), False, True
    return 128, K, False, False


def encode(x, codebooks, n_stages: int | None = None):
    """RVQ codes (N, S) int32, equal to :func:`codec.kernels.rvq_ref.encode_reference`."""
    require_device()
    xd, cbd, (N, D), (S, K, _) = _inputs(x, codebooks)
    stages = check_stages(n_stages, S, minimum=0)
    codes = cuda.device_array(max(N * stages, 1), dtype=np.int32)
    if N and stages:
        v, kt, r_shared, tile_shared = encode_plan(D, K)
        shared = 4 * ((v * D if r_shared else 0) + (kt * D if tile_shared else 0))
        scratch = cuda.device_array(1 if r_shared else N * D, dtype=np.float32)
        _encode_kernel[grid(N, v), v, 0, shared](
            xd.reshape(N * D), cbd.reshape(S * K * D), codes, N, D, K, stages, kt, r_shared, tile_shared, scratch)
    return _result(codes[: N * stages], x, (N, stages))


def decode(codes, codebooks):
    """Sum of the chosen codewords in float32, stage by stage: (N, D), equal to ``decode_reference``."""
    require_device()
    if _kind(codes) in ("numpy", "torch"):
        ch = _host(codes)
        if ch.ndim != 2:
            raise NctkError(f"codes (N, S) expected, got {ch.shape}")
        if ch.dtype.kind not in "iu":
            raise NctkError(f"codes must be integers, got dtype {ch.dtype}")
        cd = cuda.to_device(np.ascontiguousarray(ch, dtype=np.int64))
        cshape = ch.shape
    else:
        cd, cshape = _device_view(codes, np.int64, "codes")
        if np.dtype(cd.dtype).kind not in "iu" or len(cshape) != 2:
            raise NctkError(f"codes (N, S) integers expected, got {cshape} {cd.dtype}")
    cbd, bshape = _f32_input(codebooks, "codebooks")
    if len(bshape) != 3 or cshape[1] > bshape[0]:
        raise NctkError(f"codes (N, S<={bshape[0] if len(bshape) == 3 else '?'}) expected, got {cshape}")
    N, S = cshape
    _, K, D = bshape
    out = cuda.device_array(max(N * D, 1), dtype=np.float32)
    bad = cuda.to_device(np.zeros(1, np.int32))
    if N * D:
        flat = cd.reshape(N * S) if N * S else cuda.to_device(np.zeros(1, np.int64))
        _decode_kernel[grid(N * D, 256, 1 << 16), 256](flat, cbd.reshape(cbd.size), out, N, D, K, S, bad)
    if bad.copy_to_host()[0]:
        raise NctkError(f"codes must be in [0, {K})")
    return _result(out[: N * D], codes, (N, D))
