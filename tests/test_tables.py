"""Coding tables: quantization, serialisation round trips, validation of hostile bytes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nctk.entropy.errors import FormatError, TableError
from nctk.entropy.tables import ParametricFamily, Tables, factorized_prior, from_counts, quantize_pmf


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200), st.integers(8, 16))
def test_quantize_pmf_valid(pmf, precision):
    f = quantize_pmf(np.array(pmf), precision)
    assert f.min() >= 1 and int(f.sum()) == 1 << precision


def _quantize_pmf_one_round_at_a_time(p: np.ndarray, precision: int) -> np.ndarray:
    """The definition quantize_pmf's shortcuts must reproduce: rounding, then rounds of +1 (or -1) for the
    entries that gain most (lose least), each round a full stable sort (ties to the lowest index)."""
    m, n = 1 << precision, len(p)
    p = p / p.sum() if p.sum() > 0 else np.full(n, 1.0 / n)
    f = np.maximum(1, np.rint(p * m)).astype(np.int64)
    diff, idx = m - int(f.sum()), np.arange(n)
    while diff != 0:
        if diff > 0:
            take = np.lexsort((idx, -(p * np.log2((f + 1) / f))))[: min(diff, n)]
            f[take] += 1
            diff -= len(take)
        else:
            movable = f > 1
            loss = np.where(movable, p * np.log2(f / np.maximum(f - 1, 1)), np.inf)
            take = np.lexsort((idx, loss))[: min(-diff, int(movable.sum()))]
            f[take] -= 1
            diff += len(take)
    return f.astype(np.uint32)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 600), st.integers(10, 16), st.sampled_from(["uniform", "sparse", "peaked", "ties", "spike"]),
       st.integers(0, 2**32 - 1))
def test_quantize_pmf_equals_its_one_round_at_a_time_definition(n, precision, kind, seed):
    rng = np.random.default_rng(seed)
    p = {"uniform": lambda: rng.random(n), "sparse": lambda: rng.geometric(0.01, n) * (rng.random(n) < 0.1),
         "peaked": lambda: np.exp(-np.abs(np.arange(n) - n / 2) / rng.uniform(0.5, 50)),
         "ties": lambda: rng.integers(0, 3, n), "spike": lambda: np.where(np.arange(n) == n // 2, 1e6, 1.0)}[kind]()
    p = np.asarray(p, dtype=np.float64)
    assert np.array_equal(quantize_pmf(p, precision), _quantize_pmf_one_round_at_a_time(p, precision))


def test_quantize_pmf_is_optimal_on_small_alphabets():
    rng = np.random.default_rng(0)
    m = 32
    for _ in range(30):
        p = rng.dirichlet(np.ones(3) * 0.5)
        f = quantize_pmf(p, 5)
        cost = -(p * np.log2(f / m)).sum()
        best = min(-(p * np.log2(np.array(c) / m)).sum()
                   for c in itertools.product(range(1, m), repeat=3) if sum(c) == m)
        assert cost <= best + 1e-12


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 400), st.lists(st.integers(0, 99), min_size=0,
                                                                         max_size=300)),
                min_size=1, max_size=5), st.integers(12, 16))
def test_tables_serialisation_round_trip(specs, precision):
    ts = Tables([from_counts(np.array(c, dtype=float), off, precision) for off, c in specs])
    back = Tables.from_bytes(ts.to_bytes())
    assert back.to_bytes() == ts.to_bytes() and back.digest() == ts.digest()
    np.testing.assert_array_equal(back.freqs, ts.freqs)
    np.testing.assert_array_equal(back.offsets, ts.offsets)


def test_tables_from_bytes_rejects_garbage():
    ts = Tables([from_counts(np.arange(1, 40), -3, 12), from_counts(np.ones(5), 7, 12)])
    data = ts.to_bytes()
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            Tables.from_bytes(data[:cut])
    rng = np.random.default_rng(1)
    for _ in range(2000):
        bad = bytearray(data)
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(len(bad))] = rng.integers(256)
        try:
            Tables.from_bytes(bytes(bad))
        except FormatError:
            pass
    with pytest.raises(FormatError):
        Tables.from_bytes(data + b"\x00")
    with pytest.raises(FormatError):
        Tables.from_bytes(b"NTBL\x01\x10\xff\xff\xff\x7f")


def test_table_set_rejects_mixed_precision():
    with pytest.raises(TableError):
        Tables([from_counts([1, 2], 0, 12), from_counts([1, 2], 0, 14)])


def test_family_tables_cover_mass_and_digest_is_stable():
    a = ParametricFamily(n_scales=8, n_frac=2, scale_max=16.0)
    b = ParametricFamily(n_scales=8, n_frac=2, scale_max=16.0)
    assert a.digest() == b.digest()
    assert len(a.tables) == 16
    assert a.config()["kind"] == "gaussian"
    with pytest.raises(TableError):
        ParametricFamily(n_frac=3)
    with pytest.raises(TableError):
        ParametricFamily(kind="cauchy")


def test_factorized_prior_from_compressai():
    torch = pytest.importorskip("torch")
    from compressai.entropy_models import EntropyBottleneck

    torch.manual_seed(0)
    eb = EntropyBottleneck(4)
    tables, medians = factorized_prior(eb, precision=14)
    assert len(tables) == 4 and medians.shape == (4,)
    assert tables.precision == 14
    # The frozen tables reproduce compressai's own likelihoods at the integer points.
    eb.eval()
    for c, t in enumerate(tables.tables):
        r = torch.arange(t.offset, t.offset + t.size, dtype=torch.float32)
        y = torch.zeros(1, 4, len(r)) + torch.tensor(medians, dtype=torch.float32).view(1, 4, 1)
        y[0, c] += r
        _, lik = eb(y)
        p = t.freqs[:-1] / float(1 << tables.precision)
        np.testing.assert_allclose(p, lik[0, c].detach().double().numpy(), rtol=0.02, atol=3.0 / (1 << 14))
