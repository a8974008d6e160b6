"""RVQ kernels: Numba codes and reconstructions equal the reference bit for bit, ties included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nctk.codec.kernels import rvq_numba, rvq_ref
from nctk.entropy.errors import NctkError


@pytest.fixture(autouse=True, params=["tiles", "sgemm"])
def path(request, monkeypatch):
    """Every test runs on both encoder paths: the tile kernel (D <= SMALL_D) and the sgemm one."""
    monkeypatch.setattr(rvq_numba, "SMALL_D", 10**6 if request.param == "tiles" else 0)
    return request.param


def _check(x, cb, n_stages=None):
    ref = rvq_ref.encode_reference(x, cb, n_stages)
    fast = rvq_numba.encode(x, cb, n_stages)
    np.testing.assert_array_equal(fast, ref)
    assert np.array_equal(rvq_numba.decode(fast, cb), rvq_ref.decode_reference(ref, cb))
    return ref


@pytest.mark.parametrize("dim", [1, 3, 8, 33, 64])
def test_random_codebooks_match_reference(dim):
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(500, dim)).astype(np.float32)
    cb = (rng.normal(size=(4, 64, dim)) * np.array([1.0, 0.4, 0.2, 0.1])[:, None, None]).astype(np.float32)
    _check(x, cb)
    _check(x, cb, n_stages=2)


@pytest.mark.parametrize("dim", [4, 40])
def test_exact_and_near_ties(dim):
    rng = np.random.default_rng(7)
    base = rng.normal(size=(1, 16, dim)).astype(np.float32)
    cb = np.concatenate([base, base], axis=1)  # every codeword twice: exact ties -> lowest index
    cb[0, 20] = np.nextafter(cb[0, 4], np.float32(np.inf))  # one-ulp neighbours: only the exact distance can tell
    cb[0, 21] = np.nextafter(cb[0, 5], np.float32(-np.inf))
    x = np.concatenate([cb[0, :16] + rng.normal(scale=1e-3, size=(16, dim)).astype(np.float32),
                        ((cb[0, 4] + cb[0, 20]) / 2)[None], cb[0, 5][None], cb[0, 20][None],
                        rng.normal(size=(64, dim))]).astype(np.float32)
    codes = _check(x, cb)
    # Exact duplicates (16..31 repeat 0..15) never win: ties go to the lowest index.
    assert set(codes[:, 0]) <= set(range(16)) | {20, 21}
    assert codes[16 + 2, 0] == 20  # the one-ulp neighbour itself: exact distance 0 beats codeword 4


def test_points_equidistant_between_codewords():
    # Residuals exactly halfway between two codewords (in exact arithmetic) for many directions.
    rng = np.random.default_rng(3)
    dim = 48
    a = rng.integers(-8, 8, size=(32, dim)).astype(np.float32)
    b = a + 2 * rng.integers(-2, 3, size=(32, dim)).astype(np.float32)
    cb = np.stack([np.concatenate([a, b])])
    x = ((a + b) / 2).astype(np.float32)
    _check(x, cb)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 40), st.sampled_from([1, 2, 5, 8, 33, 48]), st.integers(1, 40), st.integers(1, 4),
       st.integers(0, 2**32 - 1),
       st.sampled_from([1e-3, 1.0, 1e3]))
def test_property_codes_equal_reference(n, dim, k, stages, seed, scale):
    rng = np.random.default_rng(seed)
    cb = (rng.normal(size=(stages, k, dim)) * scale).astype(np.float32)
    # Inputs built from codewords (and their midpoints) make ties and near-ties common.
    picks = cb[0][rng.integers(0, k, n)] + cb[0][rng.integers(0, k, n)]
    x = np.where(rng.random((n, 1)) < 0.5, picks / 2, rng.normal(size=(n, dim)) * scale).astype(np.float32)
    _check(x, cb)


def test_errors():
    with pytest.raises(NctkError):
        rvq_numba.encode(np.zeros((3, 4)), np.zeros((2, 5, 3)))
    with pytest.raises(NctkError):
        rvq_numba.encode(np.full((3, 4), np.nan), np.zeros((2, 5, 4)))
    with pytest.raises(NctkError):
        rvq_numba.encode(np.zeros((3, 4)), np.zeros((2, 5, 4)), n_stages=3)
    with pytest.raises(NctkError):
        rvq_numba.decode(np.full((3, 2), 5), np.zeros((2, 5, 4)))
    assert rvq_numba.encode(np.zeros((0, 4)), np.ones((2, 5, 4))).shape == (0, 2)


def test_extreme_magnitudes_and_subnormals():
    """Found in review: float32 overflow and subnormal scores must not change codes."""
    x = np.full((1, 4), 1e19, np.float32)
    cb = np.full((1, 1, 4), 1e19, np.float32)
    _check(x, cb)
    cb2 = np.zeros((1, 2, 32), np.float32)
    cb2[0, 0, 0], cb2[0, 1, 0] = 2e38, 1.0
    _check(np.zeros((3, 32), np.float32), cb2)
    rng = np.random.default_rng(11)
    _check((rng.normal(size=(50, 128)) * 2e18).astype(np.float32),
           (rng.normal(size=(2, 16, 128)) * 2e18).astype(np.float32))
    x = np.array([[3.1380606606298315e-22, -1.874327452353372e-22, -1.2155124761685786e-22]], np.float32)
    cb = np.array([[[-1.1472173166156126e-22, -1.816210870397164e-22, -1.5287764622610428e-23],
                    [6.731945220917792e-23, 5.968648457735735e-23, 1.4863564452703054e-22]]], np.float32)
    _check(x, cb)
    for scale in (3e-21, 1e-22):
        _check((rng.normal(size=(40, 3)) * scale).astype(np.float32),
               (rng.normal(size=(2, 8, 3)) * scale).astype(np.float32))
        _check((rng.normal(size=(40, 64)) * scale).astype(np.float32),
               (rng.normal(size=(2, 8, 64)) * scale).astype(np.float32))
    with pytest.raises(NctkError):
        rvq_numba.encode(np.zeros((3, 0), np.float32), np.zeros((1, 2, 0), np.float32))


def test_ties_inside_and_across_tiles():
    """The tile kernel keeps one minimum per lane of 16 codewords (j and j + 8): a tie inside a lane pair,
    across tiles, and a codebook of identical codewords (every lane a candidate) all go to the lowest index."""
    rng = np.random.default_rng(5)
    dim = 6
    cb = rng.normal(size=(2, 40, dim)).astype(np.float32)
    cb[0, 8] = cb[0, 0]  # same lane, same tile
    cb[0, 17] = cb[0, 1]  # same lane, next tile
    cb[0, 39] = cb[0, 3]  # last (padded) tile
    x = np.concatenate([cb[0, [0, 1, 3, 8, 17, 39]], cb[0, [0, 1, 3]] + np.float32(1e-4),
                        rng.normal(size=(20, dim))]).astype(np.float32)
    codes = _check(x, cb)
    assert list(codes[:6, 0]) == [0, 1, 3, 0, 1, 3]
    same = np.repeat(rng.normal(size=(1, 1, dim)), 37, axis=1).astype(np.float32)
    assert (_check(x, same)[:, 0] == 0).all()


def test_codebook_sizes_around_the_tile(path):
    rng = np.random.default_rng(9)
    for k in (1, 7, 8, 9, 15, 16, 17, 31, 33, 1000):
        cb = (rng.normal(size=(3, k, 5)) * np.array([1.0, 0.3, 0.1])[:, None, None]).astype(np.float32)
        _check(rng.normal(size=(23, 5)).astype(np.float32), cb)


def test_huge_codebooks_take_the_sgemm_path(monkeypatch):
    """Tile-lane positions are packed into 16 bits: codebooks over 2**17 entries go to the sgemm path."""
    calls = []
    monkeypatch.setattr(rvq_numba, "_encode_small", lambda *a: calls.append(a))
    rng = np.random.default_rng(2)
    cb = rng.normal(size=(1, 2**17 + 16, 2)).astype(np.float32)
    _check(rng.normal(size=(5, 2)).astype(np.float32), cb)
    assert not calls


def test_settle_tie_rule_when_the_higher_index_is_visited_first():
    """Found in review: the slow path visits codewords lane by lane (0, 8, 1, 9, ...), so an exact tie
    between 9 and 2 reaches 9 first; the lowest index must still win."""
    rng = np.random.default_rng(0)
    cb = rng.normal(size=(1, 16, 3)).astype(np.float32)
    cb[0, 9] = cb[0, 2]
    assert _check(cb[0, [2]], cb)[0, 0] == 2


def test_tile_kernel_rarely_takes_the_slow_path():
    """Found in review: a change sending every vector to the exact fallback would keep codes right and
    only lose speed. On trained-like random data the fallback is rare; on separated codewords never."""
    rng = np.random.default_rng(4)
    n, dim, k, stages = 4096, 8, 256, 4
    x = rng.normal(size=(n, dim)).astype(np.float32)
    cb = (rng.normal(size=(stages, k, dim)) * 0.5 ** np.arange(stages)[:, None, None]).astype(np.float32)
    coef = 2.0 * rvq_numba._gamma(dim + 3) + 16.0 * rvq_numba.U32

    def slow_path_count(x, cb):
        cn, cmax = rvq_numba._stage_tables(cb)
        cbb, cnp = rvq_numba._small_tables(cb, cn)
        codes = np.empty((len(x), len(cb)), np.int32)
        settled = rvq_numba._encode_small(x, cb, cbb, cnp, cmax, coef, len(cb), codes)
        np.testing.assert_array_equal(codes, rvq_ref.encode_reference(x, cb))
        return settled

    assert slow_path_count(x, cb) < 0.01 * n * stages
    grid = (np.arange(64)[:, None] * np.eye(dim, dtype=np.float32)[0])[None].astype(np.float32)  # i * e_0
    near = (grid[0, rng.integers(0, 64, n)] + 0.25).astype(np.float32)
    assert slow_path_count(near, grid) == 0
