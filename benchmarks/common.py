"""Helpers shared by the benchmarks (and the studies): best-of-n timing, writing a section of a results file."""

from __future__ import annotations

import re
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
_INTRO = "# Benchmark results\n\nRatios matter more than absolute figures: these shared machines drift.\n\n"


def best_time(fn, repeat: int):
    """(best wall time in seconds over ``repeat`` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def write_section(name: str, md: str, path: Path = RESULTS) -> None:
    """Replace the ``name`` section of ``path`` (between its markers), keeping everything else."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{md}\n{end}"
    text = path.read_text() if path.exists() else _INTRO
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")
