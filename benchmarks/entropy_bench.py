"""Entropy-coder benchmark: nctk vs constriction (AnsCoder, RangeEncoder) vs compressai's rANS.

One run, the same data for every coder, 10**6 and 10**7 symbols:
  (a) per-symbol discretized Gaussian, means U(-20, 20), scales log-uniform in [0.2, 20], symbols clipped
      to [-128, 127];
  (b) one 1024-ary Zipf(1) categorical (like RVQ indices).
Reports encode/decode Msymbols/s (best of --repeat) and payload bits/symbol against the model's exact
cross-entropy, and writes the table to benchmarks/RESULTS.md. Run it alone: with 2 cores, anything running
beside it skews every figure.

    .venv/bin/python benchmarks/entropy_bench.py [--sizes 1e6 1e7] [--repeat 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best_time, write_section  # noqa: E402

from nctk.entropy import rans_numba, rans_ref  # noqa: E402
from nctk.entropy.coder import DEFAULT_CHUNK, chunk_counts  # noqa: E402
from nctk.entropy.tables import ParametricFamily, categorical  # noqa: E402


def gaussian_workload(n: int, rng: np.random.Generator):
    mu = rng.uniform(-20, 20, n)
    sigma = np.exp(rng.uniform(np.log(0.2), np.log(20), n))
    x = np.clip(np.round(rng.normal(mu, sigma)), -128, 127).astype(np.int64)
    upper = np.where(x == 127, 1.0, ndtr((x + 0.5 - mu) / sigma))
    lower = np.where(x == -128, 0.0, ndtr((x - 0.5 - mu) / sigma))
    xent = -np.log2(upper - lower).sum() / n
    return x, mu, sigma, xent


def zipf_workload(n: int, rng: np.random.Generator):
    p = 1.0 / np.arange(1, 1025)
    p /= p.sum()
    y = rng.choice(1024, n, p=p)
    return y, p, -np.log2(p[y]).mean()



# ------------------------------------------------------------------------------------------- coders

def nctk_gaussian(x, mu, sigma, fam, repeat, threads):
    import numba

    numba.set_num_threads(threads)
    chunk = DEFAULT_CHUNK
    counts = chunk_counts(len(x), chunk)
    te, chunks = best_time(lambda: rans_numba.encode_family(x, mu, sigma, fam, chunk_size=chunk), repeat)
    td, out = best_time(lambda: rans_numba.decode_family(chunks, mu, sigma, fam, counts), repeat)
    assert np.array_equal(out, x)
    return te, td, sum(len(c) for c in chunks)


def nctk_categorical(y, p, table, repeat, threads):
    import numba

    numba.set_num_threads(threads)
    chunk = DEFAULT_CHUNK
    counts = chunk_counts(len(y), chunk)
    te, chunks = best_time(lambda: rans_numba.encode_chunks(y, 0, table, chunk_size=chunk), repeat)
    td, out = best_time(lambda: rans_numba.decode_chunks(chunks, 0, table, counts), repeat)
    assert np.array_equal(out, y)
    return te, td, sum(len(c) for c in chunks)


def reference_gaussian(x, mu, sigma, fam):
    idx, base = fam.index(mu, sigma)
    t0 = time.perf_counter()
    data = rans_ref.encode(x - base, idx, fam.tables)
    t1 = time.perf_counter()
    out = rans_ref.decode(data, idx, fam.tables) + base
    t2 = time.perf_counter()
    assert np.array_equal(out, x)
    return t1 - t0, t2 - t1, len(data)


def reference_categorical(y, table):
    t0 = time.perf_counter()
    data = rans_ref.encode(y, 0, table)
    t1 = time.perf_counter()
    out = rans_ref.decode(data, 0, table, len(y))
    t2 = time.perf_counter()
    assert np.array_equal(out, y)
    return t1 - t0, t2 - t1, len(data)


def constriction_gaussian(x, mu, sigma, repeat, kind):
    import constriction

    model = constriction.stream.model.QuantizedGaussian(-128, 127)
    xs = x.astype(np.int32)

    def enc():
        if kind == "ans":
            c = constriction.stream.stack.AnsCoder()
            c.encode_reverse(xs, model, mu, sigma)
        else:
            c = constriction.stream.queue.RangeEncoder()
            c.encode(xs, model, mu, sigma)
        return c.get_compressed()

    te, comp = best_time(enc, repeat)

    def dec():
        if kind == "ans":
            return constriction.stream.stack.AnsCoder(comp).decode(model, mu, sigma)
        return constriction.stream.queue.RangeDecoder(comp).decode(model, mu, sigma)

    td, out = best_time(dec, repeat)
    assert np.array_equal(out, xs)
    return te, td, comp.nbytes


def constriction_categorical(y, p, repeat, kind):
    import constriction

    model = constriction.stream.model.Categorical(p, perfect=False)
    ys = y.astype(np.int32)

    def enc():
        if kind == "ans":
            c = constriction.stream.stack.AnsCoder()
            c.encode_reverse(ys, model)
        else:
            c = constriction.stream.queue.RangeEncoder()
            c.encode(ys, model)
        return c.get_compressed()

    te, comp = best_time(enc, repeat)

    def dec():
        if kind == "ans":
            return constriction.stream.stack.AnsCoder(comp).decode(model, len(ys))
        return constriction.stream.queue.RangeDecoder(comp).decode(model, len(ys))

    td, out = best_time(dec, repeat)
    assert np.array_equal(out, ys)
    return te, td, comp.nbytes


def compressai_gaussian(x, mu, sigma, repeat):
    """compressai's own recipe: GaussianConditional tables, symbols offset by the rounded mean."""
    import torch
    from compressai import ans
    from compressai.entropy_models import GaussianConditional
    from compressai.models.google import get_scale_table

    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table())
    gc.update()
    cdfs = gc.quantized_cdf.tolist()
    lengths = gc.cdf_length.reshape(-1).int().tolist()
    offsets = gc.offset.reshape(-1).int().tolist()
    means_r = np.round(mu).astype(np.int64)

    def enc():
        idx = gc.build_indexes(torch.from_numpy(sigma).float()).int().tolist()
        sym = (x - means_r).astype(np.int32).tolist()
        return ans.RansEncoder().encode_with_indexes(sym, idx, cdfs, lengths, offsets), idx

    te, (data, idx) = best_time(enc, repeat)

    def dec():
        idx2 = gc.build_indexes(torch.from_numpy(sigma).float()).int().tolist()
        out = ans.RansDecoder().decode_with_indexes(data, idx2, cdfs, lengths, offsets)
        return np.asarray(out, dtype=np.int64) + means_r

    td, out = best_time(dec, repeat)
    assert np.array_equal(out, x)
    return te, td, len(data)


def compressai_categorical(y, p, repeat):
    from compressai import ans
    from compressai._CXX import pmf_to_quantized_cdf

    cdf = pmf_to_quantized_cdf(p.tolist() + [0.0], 16)
    cdfs, lengths, offsets = [cdf], [len(cdf)], [0]

    def enc():
        sym = y.astype(np.int32).tolist()
        return ans.RansEncoder().encode_with_indexes(sym, [0] * len(y), cdfs, lengths, offsets)

    te, data = best_time(enc, repeat)

    def dec():
        return np.asarray(ans.RansDecoder().decode_with_indexes(data, [0] * len(y), cdfs, lengths, offsets))

    td, out = best_time(dec, repeat)
    assert np.array_equal(out, y)
    return te, td, len(data)


# --------------------------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--skip-reference-above", type=float, default=1e6,
                    help="run the pure-Python reference only up to this many symbols")
    args = ap.parse_args()
    import numba

    threads = numba.config.NUMBA_NUM_THREADS
    rng = np.random.default_rng(2026)
    fam = ParametricFamily()
    rows = []
    for n in (int(s) for s in args.sizes):
        rows += bench_size(n, rng, fam, args, threads)
    numba.set_num_threads(threads)
    table_md = render(rows, threads)
    print(table_md)
    if not args.no_write:
        write_section("entropy-bench", table_md)


def bench_size(n: int, rng, fam, args, threads: int) -> list[dict]:
    """Every coder on the same two workloads of ``n`` symbols."""
    print(f"--- n = {n:,}", flush=True)
    x, mu, sigma, xent_a = gaussian_workload(n, rng)
    y, p, xent_b = zipf_workload(n, rng)
    table = categorical(p, precision=16)
    # compile the Numba kernels outside the timings
    nctk_gaussian(x[:1000], mu[:1000], sigma[:1000], fam, 1, threads)
    nctk_categorical(y[:1000], p, table, 1, threads)
    coders = [
        (f"nctk rans64, Numba, {threads} threads",
         lambda: nctk_gaussian(x, mu, sigma, fam, args.repeat, threads),
         lambda: nctk_categorical(y, p, table, args.repeat, threads)),
        ("nctk rans64, Numba, 1 thread", lambda: nctk_gaussian(x, mu, sigma, fam, args.repeat, 1),
         lambda: nctk_categorical(y, p, table, args.repeat, 1)),
    ]
    if n <= args.skip_reference_above:
        coders.append(("nctk rans64, pure-Python reference", lambda: reference_gaussian(x, mu, sigma, fam),
                       lambda: reference_categorical(y, table)))
    coders += [
        ("constriction AnsCoder", lambda: constriction_gaussian(x, mu, sigma, args.repeat, "ans"),
         lambda: constriction_categorical(y, p, args.repeat, "ans")),
        ("constriction RangeEncoder", lambda: constriction_gaussian(x, mu, sigma, args.repeat, "range"),
         lambda: constriction_categorical(y, p, args.repeat, "range")),
        ("compressai rANS (incl. list conversion)", lambda: compressai_gaussian(x, mu, sigma, args.repeat),
         lambda: compressai_categorical(y, p, args.repeat)),
    ]
    rows = []
    for name, run_a, run_b in coders:
        ta_e, ta_d, bytes_a = run_a()
        tb_e, tb_d, bytes_b = run_b()
        row = dict(n=n, coder=name,
                   a_enc=n / ta_e / 1e6, a_dec=n / ta_d / 1e6, a_over=(bytes_a * 8 / n / xent_a - 1) * 100,
                   b_enc=n / tb_e / 1e6, b_dec=n / tb_d / 1e6, b_over=(bytes_b * 8 / n / xent_b - 1) * 100)
        rows.append(row)
        print(f"{name:<42} (a) {row['a_enc']:7.1f} {row['a_dec']:7.1f} {row['a_over']:+.3f}%   "
              f"(b) {row['b_enc']:7.1f} {row['b_dec']:7.1f} {row['b_over']:+.3f}%", flush=True)
    print(f"cross-entropy: (a) {xent_a:.4f}  (b) {xent_b:.4f} bits/symbol")
    return rows


def render(rows, threads: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    lines = [
        "## Entropy coding (`benchmarks/entropy_bench.py`)",
        "",
        f"Measured {now} on this project's 2-core CPU machine ({cpu}, {os.cpu_count()} cores), one run,",
        "same data for every coder, best of 3. Msymbols/s; size = payload bits/symbol vs the model's exact",
        "cross-entropy. (a) per-symbol discretized Gaussian, means U(-20,20), scales log-uniform 0.2-20, clipped",
        "to [-128,127]; (b) 1024-ary Zipf(1) categorical. nctk's Gaussian tables: 96 scales x 16 mean",
        "fractions, precision 16; nctk chunks of 2^18 symbols (independent streams, parallel over chunks);",
        "index computation from (mean, scale) is inside nctk's and compressai's timings.",
        "",
    ]
    for n in sorted({r["n"] for r in rows}):
        sub = [r for r in rows if r["n"] == n]
        ref = next(r for r in sub if r["coder"] == "constriction AnsCoder")
        lines += [f"### {n:,} symbols", "",
                  "| coder | (a) enc | (a) dec | (a) size vs x-ent | (b) enc | (b) dec | (b) size vs x-ent |",
                  "|---|---|---|---|---|---|---|"]
        for r in sub:
            lines.append(f"| {r['coder']} | {r['a_enc']:.1f} | {r['a_dec']:.1f} | {r['a_over']:+.3f}% "
                         f"| {r['b_enc']:.1f} | {r['b_dec']:.1f} | {r['b_over']:+.3f}% |")
        lines += ["", "Ratios to constriction's AnsCoder in the same run (target: encode >= 2x, decode >= 3x):",
                  "",
                  "| coder | (a) enc | (a) dec | (b) enc | (b) dec |", "|---|---|---|---|---|"]
        for r in sub:
            if r["coder"].startswith("nctk"):
                ratios = [r[k] / ref[k] for k in ("a_enc", "a_dec", "b_enc", "b_dec")]
                lines.append(f"| {r['coder']} | " + " | ".join(f"{v:.2f}x" for v in ratios) + " |")
        lines.append("")
    return "\n".join(lines)




if __name__ == "__main__":
    main()
