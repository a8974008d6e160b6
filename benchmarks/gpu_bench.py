"""GPU benchmark (issue 3): the CUDA RVQ and rANS kernels against the Numba CPU kernels, in one run.

RVQ encode, shapes of ``rvq_bench.py`` (K = 1024, 8 stages, D = 128 and 8): vectors/s with inputs and codes
on the device, and the fraction of the device's fp32 matmul throughput (torch, TF32 off, measured in the same
run) that the useful work ``2 N K D S`` flops represents. rANS, the two workloads of ``entropy_bench.py``:
encode/decode Msymbols/s and GB/s of compressed bytes. Every GPU result is checked against the CPU twin
(same codes, same bytes) before it is reported. Writes the ``gpu-bench`` section of benchmarks/RESULTS.md,
with the device name. Run it alone on the device machine:

    python benchmarks/gpu_bench.py [--rvq-n 1000000] [--symbols 1e7 1e8] [--repeat 5] [--no-write]

``--smoke`` runs tiny sizes without writing; under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) that is
how the test suite checks this script works where there is no GPU (its figures mean nothing there).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, write_section  # noqa: E402
from entropy_bench import gaussian_workload, zipf_workload  # noqa: E402

from nctk.codec.kernels import rvq_numba  # noqa: E402
from nctk.entropy import rans_numba  # noqa: E402
from nctk.entropy.coder import DEFAULT_CHUNK, chunk_counts  # noqa: E402
from nctk.entropy.tables import ParametricFamily, categorical  # noqa: E402


def gpu_time(fn, repeat: int):
    """(best seconds over ``repeat`` calls, the last result), synchronising the device around each call."""
    from numba import cuda

    best, out = float("inf"), None
    for _ in range(repeat):
        cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def device_name() -> str:
    from numba import cuda

    from nctk.entropy.cuda_common import SIMULATOR

    if SIMULATOR:
        return "CUDA simulator (figures meaningless)"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def matmul_tflops(repeat: int, size: int) -> float | None:
    """fp32 matmul throughput of the device (torch, TF32 off), or None without torch CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(size, size, device="cuda")
    b = torch.randn(size, size, device="cuda")
    torch.matmul(a, b)  # warm-up
    best, _ = gpu_time(lambda: torch.matmul(a, b), repeat)  # torch shares numba's (primary) CUDA context
    return 2 * size**3 / best / 1e12


def bench_rvq(dim: int, n: int, k: int, stages: int, repeat: int, tflops: float | None, rng) -> dict:
    """CUDA RVQ encode/decode on device arrays vs the Numba CPU encoder, same data, codes checked equal."""
    from numba import cuda

    from nctk.codec.kernels import rvq_cuda

    x = rng.normal(size=(n, dim)).astype(np.float32)
    scale = 0.5 ** np.arange(stages, dtype=np.float32)[:, None, None]
    cb = (rng.normal(size=(stages, k, dim)).astype(np.float32) * scale).astype(np.float32)
    xd, cbd = cuda.to_device(x), cuda.to_device(cb)
    rvq_cuda.encode(xd[: min(n, 64)], cbd)  # compile
    t_enc, codes_d = gpu_time(lambda: rvq_cuda.encode(xd, cbd), repeat)
    t_dec, _ = gpu_time(lambda: rvq_cuda.decode(codes_d, cbd), repeat)
    cpu_n = min(n, 100_000)
    rvq_numba.encode(x[:64], cb)  # compile
    t_cpu, cpu_codes = best_time(lambda: rvq_numba.encode(x[:cpu_n], cb), max(1, repeat // 2))
    if not np.array_equal(codes_d.copy_to_host()[:cpu_n], cpu_codes):
        raise SystemExit(f"D = {dim}: CUDA codes differ from the CPU kernel's")
    flops = 2.0 * n * k * dim * stages
    return dict(dim=dim, k=k, stages=stages, n=n, gpu_enc=n / t_enc, gpu_dec=n / t_dec, cpu_enc=cpu_n / t_cpu,
                frac=(flops / t_enc / 1e12 / tflops) if tflops else None)


def bench_rans(n: int, repeat: int, rng) -> list[dict]:
    """CUDA rANS on both entropy-benchmark workloads vs the Numba coder; bytes checked identical."""
    from numba import cuda

    from nctk.entropy import rans_cuda

    fam = ParametricFamily()
    x, mu, sigma, _ = gaussian_workload(n, rng)
    y, p, _ = zipf_workload(n, rng)
    table = categorical(p, precision=16)
    chunk = DEFAULT_CHUNK
    counts = chunk_counts(n, chunk)
    rows = []

    # (b) categorical: symbols on the device in, streams stay on the device (encode_chunks_device)
    yd = cuda.to_device(y.astype(np.int32))
    rans_cuda.encode_chunks(yd[:1000], 0, table, chunk_size=chunk)  # compile
    te, (words, offs) = gpu_time(lambda: rans_cuda.encode_chunks_device(yd, 0, table, chunk_size=chunk), repeat)
    streams = rans_cuda.streams_bytes(words, offs)
    cpu_te, cpu_streams = best_time(lambda: rans_numba.encode_chunks(y, 0, table, chunk_size=chunk), repeat)
    if streams != cpu_streams:
        raise SystemExit("(b): CUDA streams differ from the Numba coder's")
    td, out = gpu_time(lambda: rans_cuda.decode_chunks_device(streams, 0, table, counts), repeat)
    if not np.array_equal(out.copy_to_host(), y):
        raise SystemExit("(b): CUDA decode differs")
    cpu_td, _ = best_time(lambda: rans_numba.decode_chunks(cpu_streams, 0, table, counts), repeat)
    nbytes = sum(len(s) for s in streams)
    rows.append(dict(work="(b) Zipf categorical", n=n, nbytes=nbytes, te=te, td=td, cpu_te=cpu_te, cpu_td=cpu_td))

    # (a) Gaussian family: per-symbol means/scales on the device; the API returns host bytes/symbols
    xd, mud, sgd = cuda.to_device(x), cuda.to_device(mu), cuda.to_device(sigma)
    rans_cuda.encode_family(xd[:1000], mud[:1000], sgd[:1000], fam, chunk_size=chunk)  # compile
    te, streams = gpu_time(lambda: rans_cuda.encode_family(xd, mud, sgd, fam, chunk_size=chunk), repeat)
    cpu_te, cpu_streams = best_time(lambda: rans_numba.encode_family(x, mu, sigma, fam, chunk_size=chunk), repeat)
    if streams != cpu_streams:
        raise SystemExit("(a): CUDA streams differ from the Numba coder's")
    td, out = gpu_time(lambda: rans_cuda.decode_family(streams, mud, sgd, fam, counts), repeat)
    if not np.array_equal(out, x):
        raise SystemExit("(a): CUDA decode differs")
    cpu_td, _ = best_time(lambda: rans_numba.decode_family(cpu_streams, mu, sigma, fam, counts), repeat)
    nbytes = sum(len(s) for s in streams)
    rows.append(dict(work="(a) Gaussian family", n=n, nbytes=nbytes, te=te, td=td, cpu_te=cpu_te, cpu_td=cpu_td))
    return rows


def render(device: str, tflops: float | None, rvq_rows: list[dict], rans_rows: list[dict], threads: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    peak = f"{tflops:.1f} TFLOP/s" if tflops else "n/a (no torch CUDA)"
    lines = [
        "## GPU kernels (`benchmarks/gpu_bench.py`)",
        "",
        f"Measured {now} on **{device}**; CPU columns: the Numba kernels with {threads} threads on the same",
        f"machine, same run. fp32 matmul throughput of the device (torch, TF32 off): {peak}.",
        "",
        "### RVQ (inputs and codes on the device)",
        "",
        "| D | K | stages | N | CUDA encode vectors/s | CUDA decode vectors/s | Numba CPU encode vectors/s | "
        "GPU/CPU | fraction of matmul throughput |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rvq_rows:
        frac = f"{r['frac']:.1%}" if r["frac"] is not None else "n/a"
        lines.append(f"| {r['dim']} | {r['k']} | {r['stages']} | {r['n']:,} | {r['gpu_enc']:,.0f} | "
                     f"{r['gpu_dec']:,.0f} | {r['cpu_enc']:,.0f} | {r['gpu_enc'] / r['cpu_enc']:.1f}x | {frac} |")
    lines += [
        "",
        "### rANS (same bytes as the CPU coder; GB/s of compressed bytes)",
        "",
        "| workload | symbols | CUDA enc Msym/s | CUDA enc GB/s | CUDA dec Msym/s | CUDA dec GB/s | "
        "Numba enc Msym/s | Numba dec Msym/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rans_rows:
        lines.append(f"| {r['work']} | {r['n']:,} | {r['n'] / r['te'] / 1e6:,.1f} | "
                     f"{r['nbytes'] / r['te'] / 1e9:.2f} | {r['n'] / r['td'] / 1e6:,.1f} | "
                     f"{r['nbytes'] / r['td'] / 1e9:.2f} | "
                     f"{r['n'] / r['cpu_te'] / 1e6:,.1f} | {r['n'] / r['cpu_td'] / 1e6:,.1f} |")
    lines += [
        "",
        "Timings include what each public call does: (b) encode keeps the streams on the device; decode copies",
        "the streams to the device first; (a) encode/decode return host bytes/symbols (copies included).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rvq-n", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=float, nargs="+", default=[1e7, 1e8])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no write (works under the simulator)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    import numba

    from nctk.entropy.cuda_common import available

    ok, why = available()
    if not ok:
        raise SystemExit(f"gpu_bench: {why}")
    if args.smoke:
        args.rvq_n, args.symbols, args.repeat, args.no_write = 96, [3000], 1, True
        shapes = [(8, 32, 2), (20, 16, 2)]
    else:
        shapes = [(128, 1024, 8), (8, 1024, 8)]
    rng = np.random.default_rng(2026)
    device = device_name()
    tflops = None if args.smoke else matmul_tflops(args.repeat, 8192)
    rvq_rows = []
    for dim, k, stages in shapes:
        rvq_rows.append(bench_rvq(dim, args.rvq_n, k, stages, args.repeat, tflops, rng))
        print(rvq_rows[-1], flush=True)
    rans_rows = []
    for n in (int(s) for s in args.symbols):
        rans_rows += bench_rans(n, args.repeat, rng)
        print(rans_rows[-2:], flush=True)
    md = render(device, tflops, rvq_rows, rans_rows, numba.config.NUMBA_NUM_THREADS)
    print(md)
    if not args.no_write:
        write_section("gpu-bench", md)


if __name__ == "__main__":
    main()
