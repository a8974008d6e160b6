"""Start-up benchmark: how long a person waits for `nctk` calls that do little work (issue 17's targets).

Each figure is the median wall time of --repeat fresh processes, in one run, beside two floors measured the
same way (`python -c pass`, `python -c "import numpy"`) and zstd's CLI on the same file where it is installed:

- `nctk --help`, `nctk codecs` (targets: under 0.3 s);
- `nctk compress` / `nctk decompress` of the demo's 250 KB float16 .npy (target: under 0.5 s per call), with
  the ahead-of-time rANS kernels (the default once `make` has built them) and with NCTK_AOT=0 (Numba JIT,
  cached machine code);
- the first call after an install into an empty kernel cache (the `make` step `python -m
  nctk.entropy.rans_aot`, then the first compress), against the later calls (target: no slower).

    .venv/bin/python benchmarks/startup_bench.py [--repeat 7] [--no-write]

Run it alone on the machine: anything beside it skews every figure.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO_FILE = ROOT / "assets" / "demo" / "inputs" / "embeddings_fp16.npy"
NCTK = [sys.executable, "-m", "nctk.cli"]


def wall(cmd: list[str], env: dict | None = None) -> float:
    """Seconds one process takes, start to exit; fails loudly if the command fails."""
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)
    return time.perf_counter() - t0


def median(cmd: list[str], repeat: int, env: dict | None = None) -> float:
    wall(cmd, env)  # one unmeasured call: the OS file cache, not nctk, is what a first call would measure
    return statistics.median(wall(cmd, env) for _ in range(repeat))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = ap.parse_args()

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "e.npy"
        shutil.copy(DEMO_FILE, src)
        packed, back = Path(tmp) / "e.npy.nctk", Path(tmp) / "back.npy"
        compress = [*NCTK, "compress", "-q", "-f", str(src), "-o", str(packed)]
        decompress = [*NCTK, "decompress", "-q", "-f", str(packed), "-o", str(back)]
        r = args.repeat
        rows.append(("python -c pass (floor)", median([sys.executable, "-c", "pass"], r), ""))
        rows.append(("python -c 'import numpy' (floor)", median([sys.executable, "-c", "import numpy"], r), ""))
        rows.append(("nctk --help", median([*NCTK, "--help"], r), "< 0.3 s"))
        rows.append(("nctk codecs", median([*NCTK, "codecs"], r), "< 0.3 s"))
        rows.append(("nctk compress 250 KB .npy", median(compress, r), "< 0.5 s"))
        rows.append(("nctk decompress 250 KB .npy", median(decompress, r), "< 0.5 s"))
        assert back.read_bytes() == src.read_bytes()
        jit = dict(os.environ, NCTK_AOT="0")
        rows.append(("compress, NCTK_AOT=0 (Numba JIT, cached)", median(compress, r, jit), ""))
        rows.append(("decompress, NCTK_AOT=0 (Numba JIT, cached)", median(decompress, r, jit), ""))
        if shutil.which("zstd"):
            z = ["zstd", "-q", "-f", "-3", str(src), "-o", str(Path(tmp) / "e.zst")]
            rows.append(("zstd -3 on the same file (peer CLI)", median(z, r), ""))

        fresh = dict(os.environ, NCTK_CACHE_DIR=str(Path(tmp) / "cache"))
        fresh.pop("NUMBA_CACHE_DIR", None)
        install = wall([sys.executable, "-m", "nctk.entropy.rans_aot"], fresh)
        first = wall(compress, fresh)
        later = statistics.median(wall(compress, fresh) for _ in range(r))
        rows.append(("first compress after install (fresh cache)", first, "<= later calls"))
        rows.append(("later compress calls, same cache", later, ""))

    lines = ["| call | median wall time (s) | target |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {target} |" for name, t, target in rows]
    stamp = datetime.date.today().isoformat()
    md = (f"## Start-up (benchmarks/startup_bench.py, {stamp}, {os.cpu_count()} cores)\n\n"
          f"Median of {args.repeat} fresh processes per call. The install step that warms a fresh kernel cache "
          f"(ahead-of-time build + Numba cache) took {install:.1f} s.\n\n" + "\n".join(lines))
    print(md)
    if not args.no_write:
        write_section("startup-bench", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
