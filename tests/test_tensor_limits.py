"""tensor-lossless at the format's limits: many tiny tensors stay cheap, an input whose file a decoder would
refuse is refused at encode time before any work, and the vectorised planner picks what the per-member
definition picks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save as st_save_numpy

import nctk
from nctk.codec.tensor import fields as F
from nctk.codec.tensor import formats, lossless
from nctk.codec.tensor.lossless import TensorLossless
from nctk.entropy import container
from nctk.entropy.errors import CodecError


def many_tensors(n: int, elems: int, seed: int = 0) -> bytes:
    """A valid .safetensors file of ``n`` float32 tensors of ``elems`` elements each (built directly: the
    safetensors library is slow at this many)."""
    header = {f"t{i}": {"dtype": "F32", "shape": [elems], "data_offsets": [4 * elems * i, 4 * elems * (i + 1)]}
              for i in range(n)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    values = np.random.default_rng(seed).normal(0, 0.02, n * elems).astype("<f4")
    return struct.pack("<Q", len(raw)) + raw + values.tobytes()


def layout_of(blob: bytes) -> list:
    return json.loads(bytes(container.loads(blob).section("layout").chunks[0]))["segments"]


# ----------------------------------------------------------------------------------------- tiny tensors


def test_200k_tiny_tensors_round_trip_as_one_raw_segment():
    data = many_tensors(200_000, 1)
    blob = nctk.compress(data, name="tiny.safetensors")
    assert nctk.decompress(blob) == data
    assert layout_of(blob) == [["raw", len(data)]]  # not 200k layout entries
    assert len(blob) < len(data) + 1024


def test_small_tensors_stay_raw_larger_ones_are_coded():
    unit = formats.MIN_TYPED_BYTES // 4
    data = st_save_numpy({"a": np.ones(unit - 1, np.float32), "b": np.ones(unit, np.float32)})
    entries = layout_of(nctk.compress(data))
    assert [e[0] for e in entries] == ["raw", "t"] and entries[1][3] == unit
    assert formats.MIN_TYPED_BYTES <= 320  # the golden safetensors file's smallest tensor stays coded


def test_many_small_coded_tensors_round_trip():
    data = many_tensors(20_000, formats.MIN_TYPED_BYTES // 4)
    blob = nctk.compress(data)
    assert sum(e[0] == "t" for e in layout_of(blob)) == 20_000
    assert nctk.decompress(blob) == data


# --------------------------------------------------------------------------------- refused before work


def _no_work(*args, **kwargs):
    raise AssertionError("the encoder split fields before checking its limits")


def test_layout_over_the_limit_is_refused_before_any_work(monkeypatch):
    data = many_tensors(2_000, 64)
    monkeypatch.setattr(lossless, "MAX_LAYOUT_BYTES", 20_000)  # the same constant the decoder checks
    monkeypatch.setattr(F, "field", _no_work)
    with pytest.raises(CodecError) as e:
        nctk.compress(data)
    msg = str(e.value)
    assert "2000 tensors" in msg and "20000-byte limit" in msg and "split it" in msg


def test_layout_bound_is_an_upper_bound_and_the_limit_is_shared(monkeypatch):
    rng = np.random.default_rng(3)
    tensors = {f"w{i}": rng.normal(0, 10.0 ** -(i % 5), 40 + 37 * i).astype(np.float64) for i in range(60)}
    tensors |= {f"c{i}": np.full(50 + i, np.inf) for i in range(20)}  # constant 11-bit exponents: widest ids
    tensors |= {f"i{i}": rng.integers(-3, 3, 100 + i).astype(np.int64) for i in range(20)}
    data = st_save_numpy(tensors)
    segs, _ = formats.parse_safetensors(data)
    actual = len(bytes(container.loads(nctk.compress(data)).section("layout").chunks[0]))
    bound = lossless._layout_bound(segs)
    assert actual <= bound < 2 * actual
    monkeypatch.setattr(lossless, "MAX_LAYOUT_BYTES", bound)
    assert nctk.decompress(nctk.compress(data)) == data
    monkeypatch.setattr(lossless, "MAX_LAYOUT_BYTES", bound - 1)
    with pytest.raises(CodecError, match="layout"):
        nctk.compress(data)


def test_other_limits_are_refused_at_encode_time(monkeypatch):
    monkeypatch.setattr(F, "field", _no_work)
    monkeypatch.setattr(lossless, "MAX_TYPED_SEGMENTS", 99)
    with pytest.raises(CodecError, match="100 tensors to code; a file holds at most 99"):
        nctk.compress(many_tensors(100, 64))
    monkeypatch.setattr(lossless, "MAX_ORIGINAL_SIZE", 1000)
    with pytest.raises(CodecError, match="at most 1000"):
        nctk.compress(np.zeros(1001, np.uint8))
    monkeypatch.setattr(lossless, "MAX_CHUNKS", 10)
    with pytest.raises(CodecError, match="chunk_size"):
        TensorLossless(chunk_size=99).encode(np.zeros(1000, np.uint8))  # 11 chunks


# ------------------------------------------------------------------- the planner against its definition


def sparse_stats(arrays: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Each member's histogram as (member, symbol, count) triples: what lossless._field_stats returns."""
    parts = [np.unique(a, return_counts=True) for a in arrays]
    return (np.concatenate([np.full(len(u), i) for i, (u, _) in enumerate(parts)]),
            np.concatenate([u for u, _ in parts]), np.concatenate([c for _, c in parts]))


def reference_plan(arrays: list[np.ndarray], bits: int, lanes: int,
                   chunk_size: int) -> tuple[list[int], list[np.ndarray], int]:
    """The per-member definition of lossless._plan_stream (one dense histogram per member), as written
    before the planner was vectorised: the choices, each table's counts and the precision."""
    m, size = len(arrays), 1 << bits
    ns = np.array([len(a) for a in arrays], dtype=np.int64)
    choice = [-1] * m
    hists = [np.bincount(a, minlength=size).astype(np.int64) for a in arrays]
    for i, h in enumerate(hists):
        nz = np.flatnonzero(h)
        if len(nz) == 1:
            choice[i], ns[i], hists[i] = -2 - int(nz[0]), 0, np.zeros(size, np.int64)
    if ns.sum() == 0:
        return choice, [], 0
    total = sum(hists)
    nz = np.flatnonzero(total)
    precision = lossless._precision(int(ns.sum()), int(nz[-1] - nz[0] + 1) + 1)

    def entropy(h):
        p = h[h > 0].astype(np.float64)
        return float((p * np.log2(h.sum() / p)).sum())

    def shared_cost(pool):
        q = np.maximum(pool / pool.sum(), 1.0 / (1 << precision))
        return np.array([float((h[h > 0] * -np.log2(q[h > 0])).sum()) / 8 if n else np.inf
                         for h, n in zip(hists, ns, strict=True)])

    def pooled(members):
        return sum((hists[i] for i in np.flatnonzero(members)), np.zeros(size, np.int64))

    raw = ns * bits / 8.0
    own = np.array([entropy(h) / 8 + lossless._table_bytes(h, precision) if n else np.inf
                    for h, n in zip(hists, ns, strict=True)])
    alone = np.minimum(raw, own)
    shared, pool = np.zeros(m, dtype=bool), total
    for _ in range(3):
        cost = shared_cost(pool)
        new = (cost < alone) & (ns > 0)
        if new.any() and cost[new].sum() + lossless._table_bytes(pooled(new), precision) >= alone[new].sum():
            new[:] = False
        if (new == shared).all():
            break
        shared = new
        if not shared.any():
            break
        pool = pooled(shared)
    use_own = (~shared) & (own < raw) & (ns > 0)
    coded = shared | use_own
    if not coded.any():
        return choice, [], 0
    est = 47 + -(-int(ns[coded].sum()) // chunk_size) * (8 * lanes + 16) + own[use_own].sum()
    if shared.any():
        est += shared_cost(pool)[shared].sum() + lossless._table_bytes(pool, precision)
    if est >= raw[coded].sum():
        return choice, [], 0
    tables = [pool] if shared.any() else []
    for i in range(m):
        if shared[i]:
            choice[i] = 0
        elif use_own[i]:
            choice[i] = len(tables)
            tables.append(hists[i])
    return choice, tables, precision


def random_members(rng: np.random.Generator, bits: int) -> list[np.ndarray]:
    arrays = []
    for _ in range(int(rng.integers(1, 30))):
        n, kind = int(rng.integers(1, 3000)), rng.integers(0, 4)
        if kind == 0:
            a = np.full(n, rng.integers(0, 1 << bits))
        elif kind == 1:
            a = rng.integers(0, 1 << bits, n)
        else:  # peaked: what tables are for
            a = np.clip(np.rint(rng.normal(rng.integers(0, 1 << bits), 10.0 ** rng.uniform(-1, 2), n)),
                        0, (1 << bits) - 1)
        arrays.append(a.astype(np.uint16 if bits > 8 else np.uint8))
    return arrays


@pytest.mark.parametrize("seed", range(15))
def test_vectorised_planner_matches_the_per_member_definition(seed):
    rng = np.random.default_rng(seed)
    bits = [3, 5, 8, 8, 11][seed % 5]
    arrays = random_members(rng, bits)
    lanes, chunk = int(rng.choice([1, 4])), int(rng.choice([997, 1 << 18]))
    choice, tables = lossless._plan_stream(sparse_stats(arrays), len(arrays), bits, lanes, chunk)
    want, hists, precision = reference_plan(arrays, bits, lanes, chunk)
    assert choice == want
    if tables is None:
        assert hists == []
    else:
        assert tables.to_bytes() == type(tables)([lossless._table(h, precision) for h in hists]).to_bytes()


def test_field_stats_gather_and_cut_members(monkeypatch):
    """Small members are split together (back-to-back ones without a copy), large ones in pieces whose
    counts add up; the triples are those of each member's own histogram."""
    monkeypatch.setattr(lossless, "BLOCK_ELEMENTS", 1000)
    rng = np.random.default_rng(9)
    arrays = [rng.integers(0, 1 << 16, int(n)).astype("<u2") for n in (5, 700, 1, 2500, 300, 300, 4000, 3)]
    data, members, pos = b"", [], 0
    for i, a in enumerate(arrays):
        gap = bytes(6 * (i % 3 == 1))  # some members lie back to back, some not
        data += gap + a.tobytes()
        pos += len(gap)
        members.append(lossless._Member(i, pos, pos + a.nbytes, "<"))
        pos += a.nbytes
    for j in (0, 1):
        want = sparse_stats([(a >> (8 * j)) & 0xFF for a in arrays])
        got = lossless._field_stats(memoryview(data), members, F.SCHEMES["x2"], j)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
