"""Helpers shared by the benchmarks: best-of-n timing and writing a section of RESULTS.md."""

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


def write_section(name: str, md: str) -> None:
    """Replace the ``name`` section of RESULTS.md (between its markers), keeping everything else."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{md}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else _INTRO
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
