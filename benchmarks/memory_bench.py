"""Memory and speed of a large input through the `nctk` command (issue 17, part 5).

A float32 .npy of --mb megabytes (weights-like: normal(0, 0.02)) is compressed and decompressed by the CLI
in fresh processes; each row gives wall time, throughput and peak RSS as a multiple of the input (target:
<= 2x for both directions), beside the same for `python -c "import nctk, numpy"` (the fixed cost) and
zstd's CLI where it is installed.

    .venv/bin/python benchmarks/memory_bench.py [--mb 300] [--no-write]

Run it alone on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402

NCTK = [sys.executable, "-m", "nctk.cli"]


def run(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one child process, alone in its own wrapper process."""
    probe = ("import resource, subprocess, sys, time\nt0 = time.perf_counter()\n"
             "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
             "print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    wall, kib = out.stdout.split()
    return float(wall), int(kib) * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src, packed, back = Path(tmp) / "w.npy", Path(tmp) / "w.npy.nctk", Path(tmp) / "back.npy"
        n = args.mb * (1 << 20) // 4
        np.save(src, np.random.default_rng(0).normal(0, 0.02, n).astype(np.float32))
        size = src.stat().st_size
        base_t, base_rss = run([sys.executable, "-c", "import nctk, numpy"])
        rows.append(("python -c 'import nctk, numpy' (fixed cost)", base_t, base_rss, None))
        t, rss = run([*NCTK, "compress", "-q", "-f", str(src), "-o", str(packed)])
        rows.append((f"nctk compress ({packed.stat().st_size / size:.3f} of the input)", t, rss, size))
        t, rss = run([*NCTK, "decompress", "-q", "-f", str(packed), "-o", str(back)])
        rows.append(("nctk decompress", t, rss, size))
        assert back.read_bytes() == src.read_bytes()
        if shutil.which("zstd"):
            z = Path(tmp) / "w.zst"
            t, rss = run(["zstd", "-q", "-f", "-3", "-T0", str(src), "-o", str(z)])
            rows.append((f"zstd -3 -T0 compress ({z.stat().st_size / size:.3f}, peer)", t, rss, size))
    lines = ["| run | wall (s) | MB/s | peak RSS (MiB) | peak RSS / input |", "|---|---|---|---|---|"]
    for name, t, rss, nbytes in rows:
        rate = f"{nbytes / t / 1e6:.0f}" if nbytes else ""
        ratio = f"{rss / nbytes:.2f}x" if nbytes else ""
        lines.append(f"| {name} | {t:.2f} | {rate} | {rss / (1 << 20):.0f} | {ratio} |")
    md = (f"## Large input through the CLI (benchmarks/memory_bench.py, {datetime.date.today().isoformat()}, "
          f"{os.cpu_count()} cores)\n\nA {size / 1e6:.0f} MB float32 .npy (normal(0, 0.02)), fresh processes; "
          "peak RSS includes the interpreter and libraries (first row).\n\n" + "\n".join(lines))
    print(md)
    if not args.no_write:
        write_section("memory-bench", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
