"""Reference residual vector quantization: the definition every RVQ kernel must reproduce exactly.

Codes (nctk RVQ, version 1):

- Inputs are float32 vectors ``x`` (N x D) and ``S`` float32 codebooks (S x K x D).
- Stage ``s`` starts from the residual ``r`` (``r = x`` at stage 0) and picks the code
  ``argmin_k dist(r, C[s, k])``, ties to the lowest ``k``, where ``dist`` is the **exact distance**:
  ``sum_d (r_d - c_d)**2`` evaluated in float64, left to right over ``d = 0 .. D-1``, each subtraction,
  square and addition rounded to nearest separately (never fused into an FMA). float32 inputs convert
  to float64 exactly, so every IEEE implementation computes the same number.
- The residual then becomes ``r = float32(r - C[s, code])``, element by element.
- Decoding sums the chosen codewords in float32, stage by stage from zero:
  ``xhat = (((0 + C[0, c0]) + C[1, c1]) + ...)``, each addition rounded to float32.

Fast kernels may screen candidates with any float32 matrix product, but must settle near-ties with the
exact distance, so their codes equal these bit for bit (tests/test_rvq_kernels.py).
"""

from __future__ import annotations

import numpy as np

from nctk.entropy.errors import NctkError


def check_rvq_inputs(x, codebooks) -> tuple[np.ndarray, np.ndarray]:
    """float32 C-contiguous ``x`` (N, D) and ``codebooks`` (S, K, D), with matching D."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    cb = np.ascontiguousarray(codebooks, dtype=np.float32)
    if x.ndim != 2 or cb.ndim != 3 or x.shape[1] != cb.shape[2]:
        raise NctkError(f"need x (N, D) and codebooks (S, K, D); got {x.shape} and {cb.shape}")
    if cb.shape[0] < 1 or cb.shape[1] < 1 or cb.shape[2] < 1:
        raise NctkError("need at least one stage, one codeword and one dimension")
    if not (np.isfinite(x).all() and np.isfinite(cb).all()):
        raise NctkError("RVQ inputs and codebooks must be finite")
    return x, cb


def check_stages(n_stages: int | None, total: int, minimum: int = 1) -> int:
    """How many of the ``total`` stages to code: all of them for None, else ``n_stages`` within
    ``[minimum, total]``."""
    stages = total if n_stages is None else int(n_stages)
    if not minimum <= stages <= total:
        raise NctkError(f"n_stages must be in [{minimum}, {total}], got {n_stages}")
    return stages


def exact_distances(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The exact distance of each row of ``r`` (N, D) to each row of ``c`` (K, D): (N, K) float64."""
    r64 = r.astype(np.float64)
    c64 = c.astype(np.float64)
    acc = np.zeros((r.shape[0], c.shape[0]), dtype=np.float64)
    for d in range(r.shape[1]):  # left to right: the summation order is part of the definition
        diff = r64[:, d, None] - c64[None, :, d]
        acc = acc + diff * diff
    return acc


def encode_reference(x, codebooks, n_stages: int | None = None) -> np.ndarray:
    """RVQ codes (N, S) int32 by the definition above (first ``n_stages`` stages if given)."""
    x, cb = check_rvq_inputs(x, codebooks)
    stages = check_stages(n_stages, cb.shape[0])
    r = x.copy()
    codes = np.empty((x.shape[0], stages), dtype=np.int32)
    for s in range(stages):
        dist = exact_distances(r, cb[s])
        k = np.argmin(dist, axis=1)  # numpy's argmin returns the first minimum: ties -> lowest index
        codes[:, s] = k
        r = (r - cb[s][k]).astype(np.float32)
    return codes


def decode_reference(codes, codebooks) -> np.ndarray:
    """Sum of the chosen codewords, stage by stage in float32: (N, D)."""
    cb = np.ascontiguousarray(codebooks, dtype=np.float32)
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] > cb.shape[0]:
        raise NctkError(f"codes (N, S<={cb.shape[0]}) expected, got {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= cb.shape[1]):
        raise NctkError(f"codes must be in [0, {cb.shape[1]})")
    out = np.zeros((codes.shape[0], cb.shape[2]), dtype=np.float32)
    for s in range(codes.shape[1]):
        out = out + cb[s][codes[:, s]]
    return out
