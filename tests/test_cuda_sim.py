"""CUDA kernels (entropy/rans_cuda.py, codec/kernels/rvq_cuda.py) against their CPU twins, bit for bit.

The checks run in subprocesses under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1`` set before numba
is imported there), so this process keeps normal Numba. All simulator processes start together (they
overlap on 2 cores). ``test_real_gpu`` runs the same checks, plus larger inputs and torch CUDA tensors,
on a real device when numba.cuda finds one, and skips otherwise.

Run one check by hand: ``python tests/test_cuda_sim.py rvq`` (simulator) or ``... rvq --real``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
SKIP = 77  # exit code of a check process that cannot run (no numba-cuda / no device)
CHECKS = ("rans_bytes", "rans_decode", "rans_errors", "family", "rvq")
TIMEOUT = 300


def _start(args: list[str], simulator: bool) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if simulator:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, str(HERE), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs():
    procs = {name: _start([name], simulator=True) for name in CHECKS}
    procs["real"] = _start(["all", "--real"], simulator=False)
    procs["ptx"] = _start(["ptx", "--ptx"], simulator=False)
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()


def _result(p: subprocess.Popen) -> None:
    out, _ = p.communicate(timeout=TIMEOUT)
    if p.returncode == SKIP:
        pytest.skip(out.strip().splitlines()[-1] if out.strip() else "skipped")
    assert p.returncode == 0, out


@pytest.mark.parametrize("name", CHECKS)
def test_simulator(runs, name):
    _result(runs[name])


def test_gpu_benchmark_runs_under_the_simulator():
    """benchmarks/gpu_bench.py (for a session with a device) runs end to end: codes and bytes checked."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    p = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--smoke"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    if p.returncode and "No module named 'numba.cuda" in p.stderr:
        pytest.skip("numba-cuda not installed")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "### rANS" in p.stdout and "CUDA simulator" in p.stdout


def test_real_gpu(runs):
    _result(runs["real"])


def test_kernels_compile_for_a_real_gpu(runs):
    """The simulator runs the kernels as Python, so it cannot catch typing or lowering errors; compile
    every kernel to PTX (sm_80, sm_90) where libNVVM is installed, and check the RVQ kernels' arithmetic
    stayed unfused (no FMA)."""
    _result(runs["ptx"])


def test_reciprocal_division_is_exact():
    """The encoder's ``x div f``: ``mulhi64(x, m) >> s`` plus one correction equals ``x // f`` for every
    frequency and the extreme states (x < f * 2**(63 - n) after renormalisation), and the correction is
    only ever taken for f = 1."""
    rans_cuda = pytest.importorskip("nctk.entropy.rans_cuda")
    rng = np.random.default_rng(7)
    ms, ss = rans_cuda.reciprocals()
    for f in range(1, 65537):
        m, s = int(ms[f]), int(ss[f])
        assert m < 1 << 64
        xs = [1, f - 1, f, f + 1, (1 << 31), (f << 51) - 1, (f << 47) - 1, (1 << 63) - 1 if f > 1 else (1 << 51) - 1]
        xs += [int(v) for v in rng.integers(1, min(f << 51, (1 << 63) - 1), 2)]
        for x in xs:
            if x < 1 or x >= 1 << 63:
                continue
            q = ((x * m) >> 64) >> s
            r = x - q * f
            if r >= f:
                assert f == 1
                q, r = q + 1, r - f
            assert (q, r) == divmod(x, f), (x, f)


def test_cuda_backend_unavailable_is_a_clear_error():
    pytest.importorskip("numba.cuda")
    from nctk.entropy import coder
    from nctk.entropy.cuda_common import available
    from nctk.entropy.errors import NctkError
    from nctk.entropy.tables import from_counts

    if available()[0]:
        pytest.skip("a CUDA device is present (the checks above cover it)")
    table = from_counts(np.ones(8))
    with pytest.raises(NctkError, match="CUDA backend unavailable"):
        coder.encode_chunks(np.arange(4), None, table, backend="cuda")
    with pytest.raises(NctkError, match="unknown coder backend"):
        coder.encode_chunks(np.arange(4), None, table, backend="opencl")


# ------------------------------------------------------------------------------------------------------
# The checks (run in the subprocesses only: they import numba.cuda).
# ------------------------------------------------------------------------------------------------------

def _table_sets():
    from nctk.entropy.tables import Tables, from_counts

    a = Tables([
        from_counts(np.array([5, 1, 3, 7, 2]), offset=-2, precision=16, escape_count=1.0),
        from_counts(np.ones(3), offset=10, precision=16),
        from_counts(np.array([]), offset=0, precision=16, escape_count=1.0),  # escape only: f = 2**16
        from_counts(np.array([0, 9, 0, 4]), offset=2**31 - 5, precision=16, escape_count=0.0),  # top of int32
        from_counts(np.arange(1, 300.0), offset=-(2**31), precision=16, escape_count=20.0),  # bottom of int32
    ])
    b = Tables([from_counts(np.array([3071.0, 1024.0]), offset=0, precision=12, escape_count=1.0),
                from_counts(np.ones(40), offset=-20, precision=12, escape_count=5.0)])
    return a, b


def _symbols(tables, n, rng, esc_rate=0.15):
    idx = rng.integers(0, len(tables), n)
    sym = np.empty(n, dtype=np.int64)
    for i, t in enumerate(idx):
        off, size = int(tables.offsets[t]), int(tables.sizes[t])
        r = rng.random()
        if r < esc_rate / 2:
            v = rng.choice([-(2**31), 2**31 - 1, off - 1, off + size, int(rng.integers(-(2**31), 2**31))])
            sym[i] = max(-(2**31), min(2**31 - 1, v))
        elif r < esc_rate or size == 0:
            sym[i] = max(-(2**31), min(2**31 - 1, off + int(rng.integers(-40, size + 40))))
        else:
            sym[i] = off + int(rng.integers(0, size))
    return sym, idx


def _counts(n, chunk):
    from nctk.entropy.coder import chunk_counts

    return chunk_counts(n, chunk)


def check_rans_bytes():
    from numba import cuda

    from nctk.entropy import coder, rans_cuda, rans_numba, rans_ref

    rng = np.random.default_rng(1)
    for tables in _table_sets():
        sym, idx = _symbols(tables, 300, rng)
        for lanes, chunk in ((1, 300), (2, 64), (4, 100), (3, 37), (8, 128)):
            ref = rans_numba.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes)
            got = rans_cuda.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes)
            assert got == ref, (lanes, chunk)
            if chunk >= 128:  # the pure-Python reference defines the bytes
                assert got == coder.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes,
                                                  backend="reference")
        assert rans_cuda.encode(sym, idx, tables, lanes=4) == rans_ref.encode(sym, idx, tables, lanes=4)
        # device inputs and narrower dtypes
        d = rans_cuda.encode_chunks(cuda.to_device(sym.astype(np.int32)), cuda.to_device(idx.astype(np.uint8)),
                                    tables, chunk_size=64, lanes=4)
        assert d == rans_numba.encode_chunks(sym, idx, tables, chunk_size=64, lanes=4)
        words, offs = rans_cuda.encode_chunks_device(sym, idx, tables, chunk_size=64, lanes=4)
        host = words.copy_to_host()
        assert [host[offs[c]:offs[c + 1]].tobytes() for c in range(len(offs) - 1)] == d
        assert coder.encode_chunks(sym, idx, tables, chunk_size=64, lanes=4, backend="cuda") == d

    a, b = _table_sets()
    # one table for every symbol (scalar index), small dtypes, empty input
    s = rng.integers(0, 2, 200).astype(np.uint8)
    assert rans_cuda.encode_chunks(s, 0, b, chunk_size=50, lanes=4) == \
        rans_numba.encode_chunks(s, 0, b, chunk_size=50, lanes=4)
    s16 = rng.integers(-30, 30, 150).astype(np.int16)
    assert rans_cuda.encode_chunks(s16, 1, b, chunk_size=1000, lanes=2) == \
        rans_numba.encode_chunks(s16, 1, b, chunk_size=1000, lanes=2)
    for lanes in (1, 4):
        assert rans_cuda.encode_chunks(np.zeros(0, np.int64), None, a, chunk_size=8, lanes=lanes) == \
            rans_numba.encode_chunks(np.zeros(0, np.int64), None, a, chunk_size=8, lanes=lanes)
    # every symbol escapes with a 34-bit distance: more words than the first slack, so the retry runs
    big = np.full(200, -(2**31), dtype=np.int64)
    big[::3] = 2**31 - 1
    assert rans_cuda.encode_chunks(big, 3, a, chunk_size=150, lanes=2) == \
        rans_numba.encode_chunks(big, 3, a, chunk_size=150, lanes=2)
    # the format document's example
    from nctk.entropy.tables import Tables

    t = Tables.from_bytes(bytes.fromhex("4e54424c010c010000000000000002000000ff17800801"))
    assert rans_cuda.encode([0, 1, 0, 5], None, t, lanes=2).hex() == "d026b4e300000000feff200000002000"


def check_rans_decode():
    from numba import cuda

    from nctk.entropy import rans_cuda, rans_numba, rans_ref

    rng = np.random.default_rng(2)
    default_budget = rans_cuda.SHARED_TABLE_BYTES
    for tables in _table_sets():
        sym, idx = _symbols(tables, 300, rng)
        for lanes, chunk in ((1, 300), (2, 64), (4, 100), (5, 41)):
            cpu = rans_numba.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes)
            counts = _counts(len(sym), chunk)
            # shared tables with a full LUT, shared tables with a reduced LUT, global tables
            for budget in (default_budget, 4 * len(tables.packed) + 2 * (len(tables) << 9), 0):
                rans_cuda.SHARED_TABLE_BYTES = budget
                out = rans_cuda.decode_chunks(cpu, idx, tables, counts, lanes=lanes)
                assert out.dtype == np.int32
                np.testing.assert_array_equal(out, sym)
            rans_cuda.SHARED_TABLE_BYTES = default_budget
            gpu = rans_cuda.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes)
            np.testing.assert_array_equal(rans_numba.decode_chunks(gpu, idx, tables, counts, lanes=lanes), sym)
            if lanes == 2:
                for c, a in zip(gpu, range(0, len(sym), chunk), strict=True):
                    np.testing.assert_array_equal(
                        rans_ref.decode(c, idx[a:a + chunk], tables, lanes=lanes), sym[a:a + chunk])
        dev = rans_cuda.decode_chunks_device(cpu, cuda.to_device(idx), tables, counts, lanes=lanes)
        np.testing.assert_array_equal(dev.copy_to_host(), sym)
        np.testing.assert_array_equal(rans_cuda.decode(rans_ref.encode(sym, idx, tables, lanes=3), idx, tables,
                                                       lanes=3), sym)
    a, b = _table_sets()
    s = rng.integers(-25, 25, 120)
    st = rans_numba.encode_chunks(s, 1, b, chunk_size=50, lanes=4)
    np.testing.assert_array_equal(rans_cuda.decode_chunks(st, 1, b, [50, 50, 20], lanes=4), s)
    empty = rans_numba.encode_chunks(np.zeros(0, np.int64), None, a, chunk_size=8, lanes=4)
    assert rans_cuda.decode_chunks(empty, None, a, [0], lanes=4).shape == (0,)
    assert rans_cuda.decode_chunks([], None, a, [], lanes=4).shape == (0,)


def _outcome(fn):
    try:
        return ("ok", fn().tobytes())
    except Exception as e:  # compared between backends: same type and message
        return (type(e).__name__, str(e))


def check_rans_errors():
    from numba import cuda

    from nctk.entropy import rans_cuda, rans_numba
    from nctk.entropy.errors import CorruptStreamError, FormatError, NctkError

    rng = np.random.default_rng(3)
    a, b = _table_sets()
    sym, idx = _symbols(a, 200, rng)
    bad = idx.copy()
    bad[17] = len(a)
    for ix in (bad, cuda.to_device(bad), -1, len(a), np.full(200, -1)):
        for fn in (rans_cuda.encode_chunks, rans_numba.encode_chunks):
            with pytest.raises(NctkError, match="table index"):
                fn(sym, ix, a, chunk_size=64, lanes=4)
    for s in (np.array([2**31, 0]), np.array([-(2**31) - 1])):
        for fn in (rans_cuda.encode_chunks, rans_numba.encode_chunks):
            with pytest.raises(NctkError, match="int32"):
                fn(s, 0, a, chunk_size=64, lanes=4)
    streams = rans_numba.encode_chunks(sym, idx, a, chunk_size=64, lanes=4)
    counts = _counts(len(sym), 64)
    for ix in (bad, cuda.to_device(bad), np.full(200, -1)):
        with pytest.raises(NctkError, match="table index"):
            rans_cuda.decode_chunks(streams, ix, a, counts, lanes=4)
    for lanes in (0, 257):
        with pytest.raises(NctkError, match="lanes"):
            rans_cuda.encode_chunks(sym, idx, a, chunk_size=64, lanes=lanes)
        with pytest.raises(NctkError, match="lanes"):
            rans_cuda.decode_chunks(streams, idx, a, counts, lanes=lanes)
    with pytest.raises(NctkError, match="count per chunk"):
        rans_cuda.decode_chunks(streams, idx, a, counts[:-1], lanes=4)
    # corrupted streams: the same exception (type and message) as rans_numba, or the same symbols
    cases = []
    s0 = bytearray(streams[1])
    for pos in list(range(0, len(s0), max(1, len(s0) // 12))) + [len(s0) - 1, 7, 31]:
        for bit in (0, 5, 7):
            c = bytearray(s0)
            c[pos] ^= 1 << bit
            cases.append(bytes(c))
    cases += [bytes(s0[:-4]), bytes(s0) + b"\0\0\0\0", bytes(s0[:-3]), bytes(s0[:8]),
              bytes(s0[:7]) + b"\xff" + bytes(s0[8:])]  # a state >= 2**63
    seen = set()
    for c in cases:
        chunks = [streams[0], c, *streams[2:]]
        got = _outcome(lambda: rans_cuda.decode_chunks(chunks, idx, a, counts, lanes=4))  # noqa: B023
        ref = _outcome(lambda: rans_numba.decode_chunks(chunks, idx, a, counts, lanes=4))  # noqa: B023
        assert got == ref, (got, ref)
        seen.add(got[0])
    assert {CorruptStreamError.__name__, FormatError.__name__} <= seen, seen


def check_family():
    from numba import cuda

    from nctk.entropy import coder, rans_cuda, rans_numba
    from nctk.entropy.errors import NctkError
    from nctk.entropy.tables import ParametricFamily

    rng = np.random.default_rng(4)
    fam = ParametricFamily("gaussian", scale_min=0.2, scale_max=30.0, n_scales=6, n_frac=4, precision=14)
    n = 240
    means = rng.uniform(-50, 50, n)
    scales = rng.uniform(0.05, 40, n)
    scales[:6] = [0.0, 1e-300, -1.0, 1e9, np.inf, fam.boundaries[2]]
    means[6:9] = [-0.25, 2.0**29, -(2.0**29) + 0.5]
    k = np.round(rng.normal(means, np.abs(scales[:n]).clip(0.1, 40))).astype(np.int64)
    means[9:14] = [0.3, 0.7, -3.2, 40.0, 0.0]  # far outliers (escapes), rel = k - floor(mean) within int32
    k[9:14] = [2**31 - 1, -(2**31), 10**6, -(10**6), 0]
    for lanes, chunk in ((1, 240), (4, 64), (3, 50)):
        ref = rans_numba.encode_family(k, means, scales, fam, chunk_size=chunk, lanes=lanes)
        got = rans_cuda.encode_family(k, means, scales, fam, chunk_size=chunk, lanes=lanes)
        assert got == ref, (lanes, chunk)
        counts = _counts(n, chunk)
        out = rans_cuda.decode_family(ref, means, scales, fam, counts, lanes=lanes)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, k)
        np.testing.assert_array_equal(rans_numba.decode_family(got, means, scales, fam, counts, lanes=lanes), k)
        # the one entry point: every backend, the same bytes
        for backend in (*coder.BACKENDS, "cuda"):
            assert coder.encode_family(k, means, scales, fam, chunk_size=chunk, lanes=lanes, backend=backend) == ref
        np.testing.assert_array_equal(coder.decode_family(ref, means, scales, fam, counts, lanes=lanes,
                                                          backend="cuda"), k)
    # device inputs: float32 means/scales are widened on the device, exactly as on the host
    m32, s32 = means.astype(np.float32), scales.astype(np.float32)
    ref = rans_numba.encode_family(k, m32, s32, fam, chunk_size=64, lanes=4)
    got = rans_cuda.encode_family(cuda.to_device(k), cuda.to_device(m32), cuda.to_device(s32), fam, chunk_size=64,
                                  lanes=4)
    assert got == ref
    np.testing.assert_array_equal(
        rans_cuda.decode_family(ref, cuda.to_device(m32), cuda.to_device(s32), fam, _counts(n, 64), lanes=4), k)
    for bad_mean in (np.nan, 2.0**30, -np.inf):
        mb = means.copy()
        mb[100] = bad_mean
        for fn in (rans_cuda.encode_family, rans_numba.encode_family):
            with pytest.raises(NctkError, match="means"):
                fn(k, mb, scales, fam, chunk_size=64, lanes=4)
        with pytest.raises(NctkError, match="means"):
            rans_cuda.decode_family(ref, mb, scales, fam, _counts(n, 64), lanes=4)


def _rvq_case(rng, N=50, D=8, K=16, S=3):
    """Integer-valued codewords and inputs (exact distances, many exact ties), duplicated codewords, a
    negative zero, and a few large-offset vectors whose near-ties only the float64 distance settles."""
    cb = rng.integers(-3, 4, (S, K, D)).astype(np.float32)
    cb[:, 5] = cb[:, 2]  # tied codewords: the lowest index must win
    cb[1, 11] = cb[1, 3]
    cb[0, 3, 1] = -0.0
    cb[2, 7, 0] = 1e4 + 0.5
    cb[2, 8] = cb[2, 7]
    cb[2, 8, 0] = np.float32(1e4 + 0.5) + np.float32(2.0**-10)
    x = rng.integers(-4, 5, (N, D)).astype(np.float32)
    x[: N // 4] += rng.standard_normal((N // 4, D)).astype(np.float32) * np.float32(0.3)
    x[N - 4:] = cb[0, 2] + cb[1, 3]  # reconstructs exactly: residual 0 after two stages, then ties
    x[N - 6, 0] = np.float32(1e4 + 0.5) + np.float32(2.0**-11)
    return x, cb


def check_rvq():
    from numba import cuda

    from nctk.codec.kernels import rvq_cuda
    from nctk.codec.kernels.rvq_ref import decode_reference, encode_reference
    from nctk.entropy.errors import NctkError

    rng = np.random.default_rng(5)
    x, cb = _rvq_case(rng)
    ref = encode_reference(x, cb)
    assert len({tuple(r) for r in ref.tolist()}) > 5
    default = rvq_cuda.SHARED_BYTES
    D, K = cb.shape[2], cb.shape[1]
    # all in shared (one tile), all in shared (tiles of 8), global residuals (tiles of 5), all global
    for budget in (default, 4 * (32 * D + 8 * D), 4 * 5 * D, 4):
        rvq_cuda.SHARED_BYTES = budget
        codes = rvq_cuda.encode(x, cb)
        assert codes.dtype == np.int32 and codes.shape == ref.shape
        np.testing.assert_array_equal(codes, ref)
    rvq_cuda.SHARED_BYTES = default
    np.testing.assert_array_equal(rvq_cuda.encode(x, cb, n_stages=2), encode_reference(x, cb, n_stages=2))
    assert rvq_cuda.encode(x, cb, n_stages=0).shape == (len(x), 0)
    assert rvq_cuda.encode(x[:0], cb).shape == (0, 3)
    dec = rvq_cuda.decode(ref, cb)
    assert dec.dtype == np.float32 and dec.tobytes() == decode_reference(ref, cb).tobytes()
    assert rvq_cuda.decode(ref[:, :1], cb).tobytes() == decode_reference(ref[:, :1], cb).tobytes()
    assert rvq_cuda.decode(ref[:, :0], cb).tobytes() == decode_reference(ref[:, :0], cb).tobytes()
    # device arrays in, device arrays out
    dcodes = rvq_cuda.encode(cuda.to_device(x), cuda.to_device(cb))
    assert not isinstance(dcodes, np.ndarray)
    np.testing.assert_array_equal(dcodes.copy_to_host(), ref)
    ddec = rvq_cuda.decode(dcodes, cuda.to_device(cb))
    assert ddec.copy_to_host().tobytes() == decode_reference(ref, cb).tobytes()
    import torch

    tcodes = rvq_cuda.encode(torch.from_numpy(x).requires_grad_(), torch.from_numpy(cb))
    assert isinstance(tcodes, torch.Tensor)
    np.testing.assert_array_equal(tcodes.numpy(), ref)
    assert isinstance(rvq_cuda.decode(tcodes, cb), torch.Tensor)
    # random float data: nothing special, still equal
    xr = rng.standard_normal((40, 6)).astype(np.float32)
    cbr = rng.standard_normal((2, 10, 6)).astype(np.float32)
    np.testing.assert_array_equal(rvq_cuda.encode(xr, cbr), encode_reference(xr, cbr))
    # errors
    for call in (lambda: rvq_cuda.encode(np.full((2, D), np.nan, np.float32), cb),
                 lambda: rvq_cuda.encode(cuda.to_device(np.full((2, D), np.inf, np.float32)), cuda.to_device(cb)),
                 lambda: rvq_cuda.encode(x[:, :3], cb),
                 lambda: rvq_cuda.encode(x, cb, n_stages=4),
                 lambda: rvq_cuda.decode(np.full((2, 3), K), cb),
                 lambda: rvq_cuda.decode(cuda.to_device(np.full((2, 3), -1, np.int32)), cuda.to_device(cb)),
                 lambda: rvq_cuda.decode(np.zeros((2, 4), np.int32), cb)):
        with pytest.raises(NctkError):
            call()


def check_real_gpu_extra():
    """Larger inputs and torch CUDA tensors (real device only)."""
    import torch

    from nctk.codec.kernels import rvq_cuda
    from nctk.codec.kernels.rvq_ref import decode_reference, encode_reference
    from nctk.entropy import rans_cuda, rans_numba
    from nctk.entropy.tables import ParametricFamily

    rng = np.random.default_rng(6)
    for tables in _table_sets():
        sym, idx = _symbols(tables, 200_000, rng, esc_rate=0.02)
        for lanes, chunk in ((4, 4096), (8, 1 << 14), (1, 1000)):
            ref = rans_numba.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes)
            assert rans_cuda.encode_chunks(sym, idx, tables, chunk_size=chunk, lanes=lanes) == ref
            np.testing.assert_array_equal(
                rans_cuda.decode_chunks(ref, idx, tables, _counts(len(sym), chunk), lanes=lanes), sym)
    fam = ParametricFamily()
    n = 300_000
    means, scales = rng.uniform(-20, 20, n), rng.uniform(0.05, 300, n)
    k = np.round(rng.normal(means, scales)).astype(np.int64)
    ref = rans_numba.encode_family(k, means, scales, fam, chunk_size=4096)
    assert rans_cuda.encode_family(k, means, scales, fam, chunk_size=4096) == ref
    np.testing.assert_array_equal(rans_cuda.decode_family(ref, means, scales, fam, _counts(n, 4096)), k)
    if torch.cuda.is_available():
        ts = torch.from_numpy(k).cuda()
        assert rans_cuda.encode_family(ts, torch.from_numpy(means).cuda(), torch.from_numpy(scales).cuda(), fam,
                                       chunk_size=4096) == ref
    x = rng.standard_normal((4096, 64)).astype(np.float32)
    cb = rng.standard_normal((4, 256, 64)).astype(np.float32) * np.float32(0.5)
    cb[:, 17] = cb[:, 3]
    ref = encode_reference(x, cb)
    np.testing.assert_array_equal(rvq_cuda.encode(x, cb), ref)
    assert rvq_cuda.decode(ref, cb).tobytes() == decode_reference(ref, cb).tobytes()
    if torch.cuda.is_available():
        tc = rvq_cuda.encode(torch.from_numpy(x).cuda(), torch.from_numpy(cb).cuda())
        assert tc.is_cuda
        np.testing.assert_array_equal(tc.cpu().numpy(), ref)
        td = rvq_cuda.decode(tc, torch.from_numpy(cb).cuda())
        assert td.is_cuda and td.cpu().numpy().tobytes() == decode_reference(ref, cb).tobytes()


def check_ptx():
    """Compile every kernel for real GPUs without one (libNVVM only)."""
    import types as pytypes
    from unittest import mock

    from numba import cuda
    from numba import types as T

    from nctk.codec.kernels import rvq_cuda
    from nctk.entropy import cuda_common, rans_cuda

    def arr(dt):
        return T.Array(dt, 1, "C")

    i64, f64, f32, b = T.int64, T.float64, T.float32, T.boolean
    fam = (b, arr(f64), arr(f64), arr(i64), i64, i64, arr(f64), arr(T.int32))
    kernels = [
        (rans_cuda._encode_kernel, (arr(T.int32), arr(T.uint8), i64, *fam, arr(i64), arr(i64), arr(i64), arr(i64),
                                    arr(i64), arr(T.uint32), arr(T.uint64), arr(T.uint8), i64, i64, arr(T.uint32),
                                    arr(i64))),
        (rans_cuda._decode_kernel, (arr(T.uint32), arr(i64), arr(i64), arr(i64), i64, *fam, arr(i64), arr(i64),
                                    arr(i64), arr(T.uint32), arr(T.uint16), i64, i64, i64, i64, i64, arr(T.int64),
                                    arr(i64))),
        (rans_cuda._compact_kernel, (arr(T.uint32), arr(i64), arr(i64), arr(i64), arr(T.uint32))),
        (rans_cuda._to_f64_kernel, (arr(f32), arr(f64))),
        (cuda_common._outside_kernel, (arr(f64), f64, arr(T.int32))),  # means
        (cuda_common._outside_kernel, (arr(f32), f64, arr(T.int32))),  # RVQ inputs
        (rvq_cuda._encode_kernel, (arr(f32), arr(f32), arr(T.int32), i64, i64, i64, i64, i64, b, b, arr(f32))),
        (rvq_cuda._decode_kernel, (arr(i64), arr(f32), arr(f32), i64, i64, i64, i64, arr(T.int32))),
    ]
    for cc in ((8, 0), (9, 0)):
        fake = pytypes.SimpleNamespace(compute_capability=cc)  # nested device functions ask the device
        with mock.patch("numba.cuda.dispatcher.get_current_device", lambda: fake):  # noqa: B023
            for kernel, sig in kernels:
                ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                if kernel.py_func.__module__ == rvq_cuda.__name__:
                    assert "fma" not in ptx, kernel.py_func.__name__
                if kernel is rvq_cuda._encode_kernel:
                    assert "add.rn.f64" in ptx and "mul.rn.f64" in ptx and "sub.rn.f32" in ptx
                if kernel is rans_cuda._encode_kernel:
                    assert "mul.hi.u64" in ptx and "div.s64" not in ptx and "div.u64" not in ptx


def _main(argv: list[str]) -> int:
    real = "--real" in argv
    names = [a for a in argv if not a.startswith("--")] or ["all"]
    if "--ptx" in argv:
        try:
            from numba.cuda.cudadrv.nvvm import NVVM

            NVVM()
        except Exception as e:  # numba-cuda or libNVVM missing
            print(f"libNVVM unavailable: {e}")
            return SKIP
        check_ptx()
        print("ptx: ok")
        return 0
    if not real:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    sys.path.insert(0, str(ROOT))
    try:
        from numba import cuda
    except ImportError as e:
        print(f"numba-cuda is not installed: {e}")
        return SKIP
    if real and not cuda.is_available():
        print("no CUDA device")
        return SKIP
    todo = list(CHECKS) + (["real_gpu_extra"] if real else []) if names == ["all"] else names
    for name in todo:
        globals()[f"check_{name}"]()
        print(f"{name}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
