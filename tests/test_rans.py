"""rANS coders: exact round trips, reference == Numba bytes, golden streams, corruption handling.

Every test runs twice: with the Numba JIT kernels and with their ahead-of-time build (``kernel_path``)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nctk.entropy import coder, rans_numba, rans_ref
from nctk.entropy.errors import CorruptStreamError, FormatError, NctkError
from nctk.entropy.tables import ParametricFamily, Table, Tables, from_counts, quantize_pmf

pytestmark = pytest.mark.usefixtures("kernel_path")


def uniform(size: int, offset: int = 0, precision: int = 16) -> Table:
    """A near-uniform table."""
    return from_counts(np.ones(size), offset, precision)


@st.composite
def table_sets(draw):
    precision = draw(st.integers(12, 16))
    n_tables = draw(st.integers(1, 4))
    tables = []
    for _ in range(n_tables):
        size = draw(st.integers(0, min(300, (1 << precision) - 1)))
        counts = draw(st.lists(st.integers(0, 10_000), min_size=size, max_size=size))
        offset = draw(st.integers(-(1 << 31), (1 << 31) - 1 - size))
        esc = draw(st.sampled_from([0.0, 1.0, 1000.0]))
        tables.append(from_counts(np.array(counts, dtype=np.float64), offset, precision, esc))
    return Tables(tables)


@st.composite
def coding_cases(draw):
    tables = draw(table_sets())
    n = draw(st.integers(0, 400))
    idx = np.array(draw(st.lists(st.integers(0, len(tables) - 1), min_size=n, max_size=n)), dtype=np.int64)
    sym = np.empty(n, dtype=np.int64)
    for i, t in enumerate(idx):
        off, size = int(tables.offsets[t]), int(tables.sizes[t])
        kind = draw(st.sampled_from(["in", "in", "in", "near", "far"]))
        if kind == "in" and size > 0:
            sym[i] = off + draw(st.integers(0, size - 1))
        elif kind == "near":
            sym[i] = max(-(1 << 31), min((1 << 31) - 1, off + draw(st.integers(-3, size + 3))))
        else:
            sym[i] = draw(st.integers(-(1 << 31), (1 << 31) - 1))
    lanes = draw(st.sampled_from([1, 2, 3, 4, 4, 8, 13, 32]))
    return sym, idx, tables, lanes


@settings(max_examples=150, deadline=None)
@given(coding_cases())
def test_reference_round_trip_and_numba_bytes_identical(case):
    sym, idx, tables, lanes = case
    ref = rans_ref.encode(sym, idx, tables, lanes=lanes)
    assert rans_numba.encode(sym, idx, tables, lanes=lanes) == ref
    np.testing.assert_array_equal(rans_ref.decode(ref, idx, tables, lanes=lanes), sym)
    np.testing.assert_array_equal(rans_numba.decode(ref, idx, tables, lanes=lanes), sym)


@settings(max_examples=40, deadline=None)
@given(coding_cases(), st.integers(1, 50))
def test_chunked_backends_agree(case, chunk_size):
    sym, idx, tables, lanes = case
    ref = coder.encode_chunks(sym, idx, tables, chunk_size=chunk_size, lanes=lanes, backend="reference")
    fast = coder.encode_chunks(sym, idx, tables, chunk_size=chunk_size, lanes=lanes)
    assert ref == fast
    counts = coder.chunk_counts(len(sym), chunk_size)
    for backend in coder.BACKENDS:
        out = coder.decode_chunks(fast, idx, tables, counts, lanes=lanes, backend=backend)
        np.testing.assert_array_equal(out, sym)


def _golden_case():
    tables = Tables([from_counts(np.array([5, 1, 3, 7, 2]), offset=-2, precision=12),
                     uniform(3, offset=10, precision=12)])
    sym = np.array([-2, 0, 2, 10, 11, 12, 1, 100, -1, -70000, 2, 12, 9, 13, 0, 2**31 - 1, -(2**31)])
    idx = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1])
    return sym, idx, tables


GOLDEN_HEX = (
    "e3e2139c1106000048d6b62c0dee1f01409fc234710200002031364002120000"
    "887059cdfe1f0000c1ff8713f8ffff7f00000000"
)


def test_golden_stream_bytes():
    """The exact bytes of a small stream with escapes: any format change must update this on purpose."""
    sym, idx, tables = _golden_case()
    data = rans_ref.encode(sym, idx, tables, lanes=4)
    assert data.hex() == GOLDEN_HEX
    assert rans_numba.encode(sym, idx, tables, lanes=4).hex() == GOLDEN_HEX
    np.testing.assert_array_equal(rans_ref.decode(bytes.fromhex(GOLDEN_HEX), idx, tables, lanes=4), sym)


def test_golden_large_stream_digest():
    rng = np.random.default_rng(1234)
    p = 1.0 / np.arange(1, 257) ** 1.2
    table = from_counts(np.round(p / p.sum() * 1e6), precision=16)
    sym = rng.choice(256, 20_000, p=p / p.sum())
    data = rans_numba.encode(sym, 0, table, lanes=8)
    assert hashlib.sha256(data).hexdigest() == (
        "68d5706843d883ca0d997f47fdc49397d67a030d9079bb8a3c49745e10225add"
    )
    assert rans_ref.encode(sym, 0, table, lanes=8) == data


def test_size_close_to_cross_entropy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(64) * 0.3)
    table = from_counts(p * 1e9, precision=16)
    sym = rng.choice(64, 200_000, p=p)
    data = rans_numba.encode(sym, 0, table, lanes=8)
    q = table.freqs[:-1] / 65536.0
    ideal = -np.log2(q[sym]).sum() / 8
    assert len(data) <= ideal * 1.001 + 8 * 8 + 8


def test_truncated_or_corrupted_streams_raise_clean_errors():
    rng = np.random.default_rng(5)
    table = from_counts(rng.integers(1, 50, 40), precision=14)
    sym = rng.integers(-5, 45, 3000)
    data = rans_ref.encode(sym, 0, table, lanes=4)
    for cut in (0, 7, 8 * 4, len(data) - 4, len(data) - 1):
        with pytest.raises(FormatError):
            rans_numba.decode(data[:cut], 0, table, len(sym), lanes=4)
    flips = 0
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 1 << (i % 8)
        try:
            out = rans_numba.decode(bytes(bad), 0, table, len(sym), lanes=4)
        except CorruptStreamError:
            flips += 1
            continue
        assert not np.array_equal(out, sym)  # undetected flips at least change the output
    assert flips > 0
    with pytest.raises(CorruptStreamError):
        rans_ref.decode(data[:-4], 0, table, len(sym), lanes=4)


def test_argument_errors():
    t = uniform(4)
    with pytest.raises(NctkError):
        rans_ref.encode([1.5], 0, t)
    with pytest.raises(NctkError):
        rans_numba.encode([1, 2], [0, 1], t)
    with pytest.raises(NctkError):
        rans_ref.encode([1], 0, t, lanes=0)
    with pytest.raises(NctkError):
        rans_numba.decode(b"", 0, t)
    with pytest.raises(NctkError):
        coder.encode_chunks([1], 0, t, backend="gpu-magic")


def test_empty_input():
    t = uniform(4)
    data = rans_ref.encode([], 0, t, lanes=3)
    assert data == rans_numba.encode(np.empty(0, np.int64), 0, t, lanes=3)
    assert len(rans_numba.decode(data, 0, t, 0, lanes=3)) == 0


# ------------------------------------------------------------------------------ parametric families

@pytest.fixture(scope="module")
def family():
    return ParametricFamily(n_scales=24, n_frac=8, scale_max=64.0)


def test_family_index_exact_at_boundaries(family):
    b = family.boundaries
    scales = np.concatenate([b, np.nextafter(b, 0), np.nextafter(b, np.inf), [1e-30, 0.0, -1.0, 1e30, np.inf],
                             np.geomspace(1e-3, 1e3, 500)])
    means = np.linspace(-3, 3, len(scales))
    means[:8] = [0.0, -0.0, 0.125, -0.125, 0.9999999, -1e-12, 2.5, -2.5]
    ref_idx, ref_base = family.index(means, scales)
    idx = np.empty(len(scales), np.int64)
    base = np.empty(len(scales), np.int64)
    assert rans_numba._family_fill(np.empty(0, np.int64), means, scales, scales.view(np.int64), family.n_frac,
                                   family.boundaries, family.coarse, idx, base)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(base, ref_base)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 300), st.sampled_from(["gaussian", "laplace", "logistic"]))
def test_family_fused_matches_reference(seed, n, kind):
    fam = ParametricFamily(kind=kind, n_scales=12, n_frac=4, scale_max=32.0, precision=14)
    rng = np.random.default_rng(seed)
    mu = rng.uniform(-50, 50, n)
    sigma = np.exp(rng.uniform(-4, 5, n))
    sym = np.round(rng.normal(mu, sigma * 3)).astype(np.int64)
    chunks = rans_numba.encode_family(sym, mu, sigma, fam, chunk_size=64, lanes=3)
    idx, base = fam.index(mu, sigma)
    ref = coder.encode_chunks(sym - base, idx, fam.tables, chunk_size=64, lanes=3, backend="reference")
    assert chunks == ref
    np.testing.assert_array_equal(rans_numba.decode_family(chunks, mu, sigma, fam, coder.chunk_counts(n, 64), lanes=3),
                                  sym)


@pytest.mark.parametrize("n,chunk,lanes", [(0, 8, 4), (1, 8, 1), (300, 64, 3), (257, 300, 4)])
def test_family_backends_agree(family, n, chunk, lanes):
    """coder.encode_family / decode_family: every backend gives the definition's bytes and inverts them."""
    rng = np.random.default_rng(n)
    mu, sigma = rng.uniform(-40, 40, n), np.exp(rng.uniform(-3, 4, n))
    k = np.round(rng.normal(mu, sigma * 2)).astype(np.int64)
    k[::17] = rng.integers(-(2**20), 2**20, len(k[::17]))  # escapes
    idx, base = family.index(mu, sigma)
    want = coder.encode_chunks(k - base, idx, family.tables, chunk_size=chunk, lanes=lanes, backend="reference")
    counts = coder.chunk_counts(n, chunk)
    for backend in coder.BACKENDS:
        got = coder.encode_family(k.astype(np.int32), mu, sigma, family, chunk_size=chunk, lanes=lanes,
                                  backend=backend)
        assert got == want, backend
        out = coder.decode_family(want, mu, sigma, family, counts, lanes=lanes, backend=backend)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, k)
        for bad in (np.nan, 2.0**30):
            with pytest.raises(NctkError, match="means"):
                coder.encode_family([1], [bad], [1.0], family, backend=backend)
            with pytest.raises(NctkError, match="means"):
                coder.decode_family(coder.encode_family([1], [0.0], [1.0], family), [bad], [1.0], family, [1],
                                    backend=backend)
        with pytest.raises(NctkError, match="one mean and one scale"):
            coder.encode_family([1, 2], [0.0], [1.0, 1.0], family, backend=backend)


def test_family_rejects_bad_means(family):
    for bad in (np.nan, np.inf, -2.0**31):
        with pytest.raises(NctkError, match="means"):
            rans_numba.encode_family([1, 2], [0.0, bad], [1.0, 1.0], family, chunk_size=10)
    chunks = rans_numba.encode_family([1, 2], [0.0, 0.0], [1.0, 1.0], family, chunk_size=10)
    with pytest.raises(NctkError, match="means"):
        rans_numba.decode_family(chunks, [0.0, np.nan], [1.0, 1.0], family, [2])


def test_table_validation():
    with pytest.raises(NctkError):
        Table(16, 0, np.array([1, 2, 3]))
    with pytest.raises(NctkError):
        Table(20, 0, quantize_pmf(np.ones(4), 16))
    f = quantize_pmf(np.array([0.0, 0.5, 0.5, 0.0]), 10)
    assert f.min() >= 1 and f.sum() == 1024


def test_format_doc_example():
    """The worked example in docs/FORMAT.md ("rANS streams")."""
    tables = Tables([from_counts(np.array([3, 1]), offset=0, precision=12)])
    assert tables.to_bytes().hex() == "4e54424c010c010000000000000002000000ff17800801"
    data = rans_ref.encode([0, 1, 0, 5], 0, tables, lanes=2)
    assert data.hex() == "d026b4e300000000" + "feff200000002000"
    states = np.frombuffer(data, "<u8")
    # Lane 1 (symbols 1 and 3) in encode order: 5 escapes (u = 6, k = 3): raw 2 bits = 2, raw 6 bits = 3,
    # the escape entry (c = 4095, f = 1), then symbol 1 (c = 3071, f = 1024).
    x = 2**31
    x = (x << 2) + 2
    x = (x << 6) + 3
    x = (x << 12) + 4095
    x = ((x // 1024) << 12) + x % 1024 + 3071
    assert states[1] == x


@pytest.mark.parametrize("lanes", [4, 5])
def test_single_table_many_escapes_and_tails(lanes):
    """The 4-lane register loop with escapes in some groups, every tail length, and slack overflow."""
    rng = np.random.default_rng(lanes)
    table = from_counts(rng.integers(1, 100, 30), offset=-10, precision=13)
    for n in (0, 1, 2, 3, 4, 5, 7, 8, 9, 63, 64, 65, 1001):
        sym = rng.integers(-12, 22, n)
        sym[rng.random(n) < 0.3] = rng.integers(-(2**31), 2**31 - 1)
        ref = rans_ref.encode(sym, 0, table, lanes=lanes)
        assert rans_numba.encode(sym, 0, table, lanes=lanes) == ref
        chunks = rans_numba.encode_chunks(sym, None, table, chunk_size=50, lanes=lanes)
        counts = coder.chunk_counts(n, 50)
        np.testing.assert_array_equal(rans_numba.decode_chunks(chunks, None, table, counts, lanes=lanes), sym)


def test_review_regressions():
    """Empty chunks, uint64 wrap, negative-NaN scales, states >= 2**63 (found in review)."""
    t = Tables([uniform(10, precision=12), uniform(5, precision=12)])
    big = np.array([0, 1, 0, 1, 0, 10**9])
    idx, sym = big[:5], np.array([1, 2, 3, 4, 0])
    s0 = rans_ref.encode(sym, idx, t, lanes=2)
    s1 = rans_ref.encode(sym[:0], idx[:0], t, lanes=2)
    for backend in coder.BACKENDS:
        np.testing.assert_array_equal(coder.decode_chunks([s0, s1], idx, t, [5, 0], lanes=2, backend=backend), sym)
    fam = ParametricFamily(n_scales=8, n_frac=2, scale_max=16.0)
    e = np.zeros(0)
    chunks = rans_numba.encode_family(np.zeros(0, np.int64), e, e, fam, chunk_size=16)
    assert len(rans_numba.decode_family(chunks, e, e, fam, [0])) == 0
    u = np.array([2**64 - 1, 3], np.uint64)
    for enc in (rans_ref.encode, rans_numba.encode):
        with pytest.raises(NctkError):
            enc(u, None, uniform(10, precision=12), lanes=1)
    with pytest.raises(NctkError):
        rans_ref.encode([1, 2], np.array([0.0, 0.0]), t)
    neg_nan = (np.array([np.nan]).view(np.int64) | np.int64(-(2**63))).view(np.float64)
    mu, k = np.zeros(1), np.zeros(1, np.int64)
    ix, base = fam.index(mu, neg_nan)
    assert rans_ref.encode(k - base, ix, fam.tables) == rans_numba.encode_family(k, mu, neg_nan, fam, chunk_size=8)[0]
    tab = from_counts(np.array([1.0, 1.0]), precision=12)  # 2048 / 2048
    bad = (2**63).to_bytes(8, "little")
    for dec in (rans_ref.decode, rans_numba.decode):
        with pytest.raises(CorruptStreamError):
            dec(bad, 0, tab, 1, lanes=1)


@pytest.mark.parametrize("n,chunk", [(0, 4), (1, 4), (8, 4), (9, 4), (1000, 256)])
def test_chunk_counts_match_encode_chunks(n: int, chunk: int) -> None:
    sym = np.arange(n, dtype=np.int32) % 7
    table = uniform(7)
    chunks = coder.encode_chunks(sym, None, table, chunk_size=chunk)
    assert len(chunks) == len(coder.chunk_counts(n, chunk))
    assert np.array_equal(coder.decode_chunks(chunks, None, table, coder.chunk_counts(n, chunk)), sym)
