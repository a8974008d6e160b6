"""The ahead-of-time rANS kernels: same bytes and errors as the JIT ones, never stale, no Numba at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from nctk.entropy import rans_aot, rans_numba, rans_ref
from nctk.entropy.errors import CorruptStreamError
from nctk.entropy.tables import Tables, from_counts


def both_paths(monkeypatch, aot_module, fn):
    """``fn()`` with the JIT kernels, then with the ahead-of-time ones."""
    out = []
    for module in (None, aot_module):
        monkeypatch.setattr(rans_numba, "_aot_module", lambda n, m=module: m)
        out.append(fn())
    return out


def test_policy_rents_then_buys(monkeypatch, aot_module):
    """Serial ahead-of-time kernels for small jobs until the budget is spent, then the parallel JIT ones;
    never again once the JIT kernels are loaded."""
    monkeypatch.setattr(rans_aot, "kernels", lambda: aot_module)
    monkeypatch.setattr(rans_numba, "_aot_spent", 0)
    monkeypatch.setattr(rans_numba, "_jit_loaded", lambda: False)  # as in a process that never ran them
    assert rans_numba._aot_module(1000) is aot_module
    assert rans_numba._aot_module(rans_aot.MAX_SYMBOLS + 1) is None
    monkeypatch.setattr(rans_numba, "_aot_spent", rans_numba.AOT_BUDGET - 10)
    assert rans_numba._aot_module(11) is None and rans_numba._aot_module(10) is aot_module
    monkeypatch.setattr(rans_numba, "_aot_spent", 0)
    monkeypatch.setattr(rans_numba, "_jit_loaded", lambda: True)  # the JIT kernels hold machine code now
    assert rans_numba._aot_module(1000) is None


# The exported symbol dtypes with every index kind; other integer dtypes are widened to int64 first.
CASES = [(d, i) for d in ("u1", "u2", "i4", "i8") for i in ("none", "scalar", "i4", "i8")]


@pytest.mark.parametrize("dtype, indexes", [*CASES, ("i1", "i8"), ("i2", "scalar"), ("u4", "i4")])
def test_every_symbol_and_index_dtype_gives_the_same_bytes(monkeypatch, aot_module, dtype, indexes):
    rng = np.random.default_rng(7)
    tables = Tables([from_counts(rng.integers(1, 100, 60), offset=3), from_counts(rng.integers(1, 9, 20))])
    sym = rng.integers(0, 80, 5000).astype(dtype)  # symbols past a table's range are escapes
    idx = {"none": None, "scalar": 1, "i4": rng.integers(0, 2, 5000).astype(np.int32),
           "i8": rng.integers(0, 2, 5000)}[indexes]
    jit, aot = both_paths(monkeypatch, aot_module,
                          lambda: rans_numba.encode_chunks(sym, idx, tables, chunk_size=1500, lanes=4))
    assert jit == aot
    ref = rans_ref.encode(sym[:1500], idx if np.ndim(idx) == 0 else idx[:1500], tables, lanes=4)
    assert aot[0] == ref
    counts = [1500, 1500, 1500, 500]
    back_jit, back_aot = both_paths(monkeypatch, aot_module,
                                    lambda: rans_numba.decode_chunks(aot, idx, tables, counts, lanes=4))
    np.testing.assert_array_equal(back_aot, sym.astype(np.int64))
    np.testing.assert_array_equal(back_jit, back_aot)


def test_corrupt_streams_fail_the_same_way(monkeypatch, aot_module):
    table = from_counts(np.array([40, 30, 20, 10]), precision=14)
    sym = np.random.default_rng(3).integers(0, 4, 3000)
    data = rans_ref.encode(sym, 0, table, lanes=4)
    for i in range(0, len(data), 11):
        bad = bytearray(data)
        bad[i] ^= 1 << (i % 8)

        def decode(b=bytes(bad)):
            try:
                return rans_numba.decode(b, 0, table, len(sym), lanes=4)
            except CorruptStreamError as e:
                return str(e)

        jit, aot = both_paths(monkeypatch, aot_module, decode)
        assert np.array_equal(jit, aot) if isinstance(jit, np.ndarray) else jit == aot


def test_a_build_for_other_sources_is_never_used(monkeypatch, aot_module):
    rans_aot.kernels.cache_clear()
    try:
        monkeypatch.setattr(rans_aot, "build_key", lambda: "0" * 64)
        assert rans_aot.kernels() is None  # no build for these "sources": the JIT path runs
        monkeypatch.undo()
        monkeypatch.setenv("NCTK_AOT", "0")
        rans_aot.kernels.cache_clear()
        assert rans_aot.kernels() is None
    finally:
        monkeypatch.undo()
        rans_aot.kernels.cache_clear()


def test_a_small_round_trip_never_imports_numba(aot_module, tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.random.default_rng(0).normal(0, 0.02, (256, 250)).astype(np.float16))  # 128 KB
    code = (f"import sys, nctk\nname, raw = nctk.decompress_file(nctk.compress({str(path)!r}))\n"
            f"assert raw == open({str(path)!r}, 'rb').read()\nprint('numba' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "False"


@pytest.fixture
def build_copy(aot_module, tmp_path, monkeypatch):
    """A private copy of the current build (and its digest), which a test may damage."""
    real = rans_aot._path(rans_aot.build_key())
    folder = tmp_path / "aot"
    folder.mkdir(mode=0o755)
    copy = folder / real.name
    shutil.copy(real, copy)
    shutil.copy(real.with_suffix(".sha256"), copy.with_suffix(".sha256"))
    monkeypatch.setattr(rans_aot, "_path", lambda key: copy)
    rans_aot.kernels.cache_clear()
    yield copy
    rans_aot.kernels.cache_clear()


def test_the_copy_loads(build_copy):
    assert rans_aot.kernels() is not None


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "no digest"])
def test_a_damaged_build_is_never_loaded(build_copy, damage):
    data = build_copy.read_bytes()
    if damage == "no digest":
        build_copy.with_suffix(".sha256").unlink()
    else:
        build_copy.write_bytes({"empty": b"", "truncated": data[:4096], "garbage": b"\x7fELF" + b"x" * 999}[damage])
    assert rans_aot.kernels() is None  # the JIT path serves instead; a dlopen of it could crash the process


def test_a_build_others_can_write_is_never_loaded(build_copy):
    build_copy.parent.chmod(0o777)
    try:
        assert rans_aot.kernels() is None
    finally:
        build_copy.parent.chmod(0o755)


def test_an_output_buffer_is_never_silently_copied(aot_module):
    table = from_counts(np.array([3, 1]))
    args = [np.zeros(2, np.uint32), np.array([0, 2]), np.array([0, 0]), np.zeros(1, np.int64), 0,
            False, np.zeros(0), np.zeros(0), np.zeros(0, np.int64), 1, np.zeros(0), np.zeros(0, np.int32),
            *(np.asarray(a) for a in (Tables.of(table).starts, Tables.of(table).offsets, Tables.of(table).sizes,
                                       Tables.of(table).packed)), Tables.of(table).lookup()[0], 12, 16, 1]
    with pytest.raises(TypeError, match="output array"):
        rans_aot.decode_chunks(aot_module, *args, np.zeros(0, np.int64))  # int64, not the declared int32
