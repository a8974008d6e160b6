"""Helpers shared by the design studies: safetensors checkpoints, stream sizes, the budgeted training loop.

Studies import the installed package (``nctk``) like any user would; results files are written with
``benchmarks/common.py``'s :func:`write_section`, re-exported here.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import write_section  # noqa: E402

__all__ = ["load_state", "save_state", "stream_bytes", "train_on_budget", "write_section"]


def save_state(model, path: Path) -> None:
    """A module's state_dict as safetensors (never pickle)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))


def load_state(model, path: Path):
    """Load :func:`save_state`'s file into ``model`` (torch's own loader, not a subclass override such as
    compressai's, which expects its update()-filled CDF buffers) and return it in eval mode."""
    import torch
    from safetensors.torch import load_file

    torch.nn.Module.load_state_dict(model, load_file(str(path)))
    return model.eval()


def stream_bytes(streams) -> int:
    """Total size of a list of coded streams, each ``(chunks, ...)`` as the study scripts keep them."""
    return sum(len(c) for s in streams for c in s[0])


def train_on_budget(model, out: Path, log: dict, minutes: float, eval_every: int, next_batch, step, describe,
                    evaluate, window: int) -> None:
    """The study scripts' training loop: ``step(next_batch())`` until ``minutes`` of step time (batch
    preparation and evaluation are not counted), evaluating every ``eval_every`` minutes and at the end.

    ``step`` returns stats with a ``loss``; ``describe(stats)`` is printed every 30 s beside the mean loss of
    the last ``window`` steps. ``evaluate()`` runs in eval mode and returns ``(point, seconds)``: the curve
    point and any seconds of it to count as training (a design whose entropy model is fitted there). Each
    evaluation appends to ``log["curve"]`` and saves ``out/model.safetensors`` and ``out/log.json``; at the
    end ``log`` gets ``steps`` and ``steps_per_s``.
    """
    import json

    import numpy as np

    budget, trained, steps, last_print = minutes * 60.0, 0.0, 0, 0.0
    evals = [m * 60.0 for m in range(eval_every, int(minutes), eval_every)] + [budget]
    losses = []
    while evals:
        batch = next_batch()
        t0 = time.perf_counter()
        stats = step(batch)
        trained += time.perf_counter() - t0
        steps += 1
        losses.append(stats["loss"])
        if trained - last_print > 30:
            last_print = trained
            print(f"[{trained / 60:5.1f} min] step {steps} loss {np.mean(losses[-window:]):.4f} {describe(stats)}",
                  flush=True)
        if trained >= evals[0]:
            evals.pop(0)
            model.eval()
            point, counted = evaluate()
            trained += counted
            model.train()
            point.update(minutes=round(trained / 60, 2), steps=steps)
            log["curve"].append(point)
            print(f"  eval @ {point['minutes']} min: {point}", flush=True)
            save_state(model, out / "model.safetensors")
            (out / "log.json").write_text(json.dumps(log, indent=1))
    log["steps"] = steps
    log["steps_per_s"] = steps / trained
