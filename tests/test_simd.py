"""The 8-lane vector intrinsics (codec/kernels/simd.py) against numpy, lane by lane."""

from __future__ import annotations

import numpy as np
from numba import njit

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


@njit
def _float_ops(a, b, c, out):
    va, vb, vc = load8(a, 0), load8(b, 0), load8(c, 0)
    store8(out, 0, fmuladd8(va, vb, vc))
    store8(out, 8, min8(va, vb))
    store8(out, 16, splat8(c[3]))
    store8(out, 24, load8(a, 3))  # unaligned, flat index
    return hmin8(va), hmin8(vb)


@njit
def _int_ops(a, b, k):
    m = le_mask8(load8(a, 0), load8(b, 0))  # -1 where a <= b
    hits = hsum8(m)
    lanes = hsum8(iand8(m, iota8()))
    big = hsum8(iadd8(isplat8(k), isplat8(k)))  # lanes wrap in int32, the sum is int64
    return hits, lanes, big


@njit
def _store_2d(out, row):
    store8(out, row * out.shape[1] + 2, splat8(np.float32(7.0)))


def test_float_ops_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b, c = (rng.normal(size=16).astype(np.float32) * 10.0 ** rng.integers(-5, 5) for _ in range(3))
        out = np.zeros(32, np.float32)
        ha, hb = _float_ops(a, b, c, out)
        exact = a[:8].astype(np.float64) * b[:8] + c[:8]
        unfused = (a[:8] * b[:8] + c[:8]).astype(np.float64)
        fused = exact.astype(np.float32).astype(np.float64)
        # fmuladd may fuse or not: either rounding, never anything else
        assert np.all((out[:8] == unfused) | (out[:8] == fused))
        np.testing.assert_array_equal(out[8:16], np.minimum(a[:8], b[:8]))
        np.testing.assert_array_equal(out[16:24], np.full(8, c[3]))
        np.testing.assert_array_equal(out[24:32], a[3:11])
        assert ha == a[:8].min() and hb == b[:8].min()


def test_int_ops_match_numpy():
    a = np.array([1, 5, 2, 2, 9, -1, 0, 3, 99], np.float32)
    b = np.array([1, 4, 3, 2, 8, -2, 0, 4, 0], np.float32)
    hits, lanes, big = _int_ops(a, b, 2**30)
    le = a[:8] <= b[:8]
    assert hits == -int(le.sum())
    assert lanes == int(np.arange(8)[le].sum())
    assert big == 8 * int(np.int32(np.int64(2**31) - 2**32))  # 2**30 + 2**30 wraps to -2**31 in each lane


def test_store_into_a_row_of_a_2d_array():
    out = np.zeros((3, 12), np.float32)
    _store_2d(out, 1)
    expect = np.zeros((3, 12), np.float32)
    expect[1, 2:10] = 7.0
    np.testing.assert_array_equal(out, expect)


def test_rvq_kernel_cache_names_this_simd_source():
    """rvq_numba._encode_small is cached on disk keyed on rvq_numba.py alone; rvq_numba.SIMD_SHA256 ties it to simd.py's
    bytes. After editing simd.py, put the new sha256 there (that edit also invalidates the cache)."""
    import hashlib
    from pathlib import Path

    from nctk.codec.kernels import rvq_numba, simd

    assert hashlib.sha256(Path(simd.__file__).read_bytes()).hexdigest() == rvq_numba.SIMD_SHA256
