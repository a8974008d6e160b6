"""Training the ``image-wavelet`` context model: a float twin with fake quantisation, exported to integers.

The transform is fixed, so training is maximum likelihood of the exact quantised coefficients the codec codes:
each step takes a batch of random crops, a random step ``D`` (log-uniform over the quality range and a little
beyond), computes the codec's own integer coefficients, indices and network inputs (:mod:`nctk.codec.image`, in
the codec's coding order, closed loop: contexts are the dequantised values the decoder will have), and minimises
the bits of every index under a discretised Laplace whose mean and scale the float twin predicts.

The float twin mirrors the integer network (:mod:`nctk.codec.image.model`) layer for layer: weights fake-quantised
to int8 per output channel and hidden activations to 8 bits (straight-through rounding), the same conditioning of
the first layer's bias on group, pass and log2 step. :func:`export` turns it into integer weights, multipliers and
shifts and writes a model artifact (:func:`nctk.codec.artifacts.write`) with the frozen Laplace tables.

Checkpoints (``OUT/last`` and ``OUT/best``: ``model.safetensors``, ``optim.safetensors``, ``state.json``; no
pickle) are written every few minutes and on exit, and a run resumes exactly: batch ``k`` is a pure function of
the seed and ``k``. About 5% of the images (those whose name's SHA-256 is 0 mod 20) are held out; ``best`` is the
checkpoint with the lowest held-out rate. Never train on Kodak: it is the test set.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nctk.codec import artifacts
from nctk.codec.image import WAVELET
from nctk.codec.image.choice import Grid
from nctk.codec.image.model import ACC_BOUND, BIAS_MAX, NETS
from nctk.codec.image.quantiser import dequantise, detail_steps, low_steps, quantise
from nctk.codec.image.subbands import GROUPS, INPUT_MAX, anchor_mask, coded_channels, detail_inputs, low_inputs
from nctk.codec.image.transform import analysis, colour_forward, synthesis_level
from nctk.entropy.errors import NctkError

__all__ = ["Config", "FloatModel", "export", "held_out", "list_images", "train"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
INPUT_SCALE = 2.0**-10  # the float twin sees integer inputs times this (folded into the exported weights)
EVAL_DELTAS = (12.0, 40.0, 128.0)  # held-out rate is measured at these steps (pixels)


class TrainError(NctkError):
    """Training cannot start or continue (no data, a checkpoint that does not match, ...)."""


@dataclass
class Config:
    """Hyper-parameters; saved in every checkpoint and in the exported artifact's manifest."""

    low_widths: tuple[int, ...] = (16, 16, 16)
    detail_widths: tuple[int, ...] = (32, 32, 32)
    kernel: int = 3  # hidden layers' kernel size (the output layer is 1 x 1)
    batch: int = 8
    crop: int = 128
    lr: float = 1e-3
    delta_min: float = 4.0  # steps (pixels) are drawn log-uniform in [delta_min, delta_max]
    delta_max: float = 320.0
    grey_fraction: float = 0.1
    seed: int = 0
    grid: dict = field(default_factory=lambda: Grid().as_json())

    @classmethod
    def from_json(cls, obj: dict) -> Config:
        """Rebuild from :func:`dataclasses.asdict` output (tuples come back from JSON lists)."""
        obj = dict(obj)
        for k in ("low_widths", "detail_widths"):
            obj[k] = tuple(obj[k])
        return cls(**obj)


# ------------------------------------------------------------------------------------------------ data

def list_images(folders: list[str | Path]) -> list[Path]:
    """Image files in ``folders`` (not recursive), sorted by path; files are taken as given."""
    out: list[Path] = []
    for f in folders:
        p = Path(f)
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise TrainError(f"{p}: no such file or folder")
    if any("kodak" in part.lower() for p in out for part in p.parts):
        raise TrainError("refusing to train on Kodak: it is the test set")
    if not out:
        raise TrainError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, folders))}")
    return out


def held_out(path: Path) -> bool:
    """Whether an image is held out for checkpoint selection: SHA-256 of its file name is 0 mod 20 (about 5%)."""
    return int(hashlib.sha256(path.name.encode()).hexdigest()[:8], 16) % 20 == 0


def _load(paths: list[Path]) -> list[np.ndarray]:
    from nctk.codec.image.pixels import read_image

    out = []
    for p in paths:
        px, _ = read_image(p.read_bytes(), p.name)
        out.append(px if px.shape[2] == 3 else np.repeat(px, 3, axis=2))
    return out


def batch(images: list[np.ndarray], step: int, cfg: Config) -> tuple[np.ndarray, np.ndarray, int]:
    """``(crops uint8 (B, crop, crop, 3), grey flags (B,), step D)`` of training step ``step``: a pure function of
    ``(cfg.seed, step)``, so resumed runs see the same batches."""
    rng = np.random.default_rng([cfg.seed, step])
    crops, grey = [], []
    for _ in range(cfg.batch):
        im = images[int(rng.integers(len(images)))]
        h, w = im.shape[:2]
        c = min(cfg.crop, h, w) // 32 * 32
        y, x = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        crop = im[y : y + c, x : x + c]
        if rng.integers(2):
            crop = crop[:, ::-1]
        if c < cfg.crop:  # a small image: replicate its edges (as the codec pads)
            crop = np.pad(crop, ((0, cfg.crop - c), (0, cfg.crop - c), (0, 0)), mode="edge")
        crops.append(crop)
        grey.append(bool(rng.random() < cfg.grey_fraction))
    delta = math.exp(rng.uniform(math.log(cfg.delta_min), math.log(cfg.delta_max)))
    return np.stack(crops), np.array(grey), max(1, round(16 * delta))


@dataclass
class Pass:
    """One coding pass of a batch: the network's integer inputs and the indices it must predict."""

    net: str
    group: int
    pass_: int
    inputs: np.ndarray  # int64 (B, Cin, h, w)
    q: np.ndarray  # int64 (B, n, h, w)
    mask: np.ndarray  # bool (B, n, h, w): the indices this pass codes


def passes(crops: np.ndarray, grey: np.ndarray, d: int) -> list[Pass]:
    """Every pass of the codec's coding order for a batch, with the codec's own integer inputs (closed loop)."""
    x = np.stack([colour_forward(c[:, :, :1] if g else c) for c, g in zip(crops, grey, strict=True)])
    ll, details = analysis(x)
    out = []
    rec = None
    for _name, net, level in GROUPS:
        if net == "low":
            q = quantise(ll, low_steps(d))
        else:
            q = quantise(np.concatenate(details[level - 1], axis=-3), detail_steps(d, level))
        n = q.shape[1]
        chans = np.zeros((len(crops), n), dtype=bool)
        for b, g in enumerate(grey):
            chans[b, coded_channels(net, 1 if g else 3)] = True
        anchors = anchor_mask(*q.shape[-2:])
        for p, sel in ((0, anchors), (1, ~anchors)):
            inputs = low_inputs(q, d, p) if net == "low" else detail_inputs(rec, q, d, level, p)
            out.append(Pass(net, 0 if net == "low" else level - 1, p, inputs, q,
                            chans[:, :, None, None] & sel[None, None]))
        if net == "low":
            rec = dequantise(q, low_steps(d))
        else:
            c = dequantise(q, detail_steps(d, level))
            rec = synthesis_level(rec, c[:, 0:3], c[:, 3:6], c[:, 6:9])
    return out


def grey_of(crop: np.ndarray) -> np.ndarray:
    """Integer luma (BT.601 weights) of an RGB crop, ``(H, W, 1)`` uint8: how grey training crops are made."""
    c = crop.astype(np.int64)
    return ((299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2] + 500) // 1000).astype(np.uint8)[..., None]


# ------------------------------------------------------------------------------------------ float twin

class QuantConv(nn.Conv2d):
    """A convolution whose weights are fake-quantised to int8 per output channel (straight-through)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        s = (w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 127).clamp_min(1e-12)
        wq = w + (torch.round(w / s).clamp(-127, 127) * s - w).detach()
        return F.conv2d(x, wq, self.bias, padding=self.padding)


class ActQuant(nn.Module):
    """ReLU, then fake quantisation to 0..255 times a scale tracked from the activations' 99.99th percentile."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        if self.training:
            with torch.no_grad():
                flat = x.detach().reshape(-1)
                sample = flat[:: max(1, flat.numel() // 65536)]
                k = max(1, int(math.ceil(0.9999 * sample.numel())))
                top = float(sample.kthvalue(k).values) / 255 if sample.numel() else 0.0
                top = max(top, 1e-6)
                self.scale.copy_(torch.tensor(top) if float(self.scale) == 0 else 0.99 * self.scale + 0.01 * top)
        s = self.scale.clamp_min(1e-6)
        q = torch.clamp(torch.round(x / s), 0, 255) * s
        return x + (q - x).detach()


class FloatNet(nn.Module):
    """The float twin of one integer context network (see :mod:`nctk.codec.image.model`)."""

    def __init__(self, n_in: int, n_out: int, widths: tuple[int, ...], kernel: int, groups: int):
        super().__init__()
        chans = (n_in,) + tuple(widths)
        self.convs = nn.ModuleList(QuantConv(chans[i], chans[i + 1], kernel, padding=kernel // 2, bias=i > 0)
                                   for i in range(len(widths)))
        self.acts = nn.ModuleList(ActQuant() for _ in widths)
        self.last = QuantConv(widths[-1], 2 * n_out, 1)
        self.bias0 = nn.Parameter(torch.zeros(groups, 2, widths[0]))
        self.cond = nn.Parameter(torch.zeros(widths[0]))
        self.n_out = n_out
        with torch.no_grad():
            self.last.weight.mul_(0.1)
            self.last.bias.zero_()
            self.last.bias[n_out:] = 3.0  # log2 scale of 8 pixels to start with

    def forward(self, x: torch.Tensor, group: int, pass_: int, log2_delta: float) -> torch.Tensor:
        """``(B, 2 n_out, h, w)``: means (pixels) then log2 scales (pixels), from integer-valued inputs ``x``."""
        h = self.convs[0](x * INPUT_SCALE) + (self.bias0[group, pass_] + self.cond * log2_delta).view(1, -1, 1, 1)
        h = self.acts[0](h)
        for conv, act in zip(self.convs[1:], self.acts[1:], strict=True):
            h = act(conv(h))
        return self.last(h)


class FloatModel(nn.Module):
    """Both networks of ``image-wavelet``."""

    def __init__(self, cfg: Config):
        super().__init__()
        grid = Grid.from_json(cfg.grid)
        lo = grid.log2_scale_min_q8 / 256
        self.scale_range = (lo, lo + (grid.n_scales - 1) * (1 << grid.scale_shift) / 256)  # log2, in steps
        self.nets = nn.ModuleDict({
            "low": FloatNet(NETS["low"][0], NETS["low"][1] // 2, cfg.low_widths, cfg.kernel, NETS["low"][2]),
            "detail": FloatNet(NETS["detail"][0], NETS["detail"][1] // 2, cfg.detail_widths, cfg.kernel,
                               NETS["detail"][2])})


def laplace_bits(q: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """-log2 P(q) of integers ``q`` under a Laplace (mean ``mu``, scale ``b``) discretised to unit bins."""
    lo, hi = q - 0.5 - mu, q + 0.5 - mu
    log_width = torch.log(-torch.expm1(-1.0 / b))  # log(1 - exp(-1/b))
    left = math.log(0.5) + torch.clamp(hi, max=0) / b + log_width  # the bin lies left of the mean
    right = math.log(0.5) - torch.clamp(lo, min=0) / b + log_width  # right of it
    inner = torch.log(torch.clamp(1 - 0.5 * (torch.exp(torch.clamp(lo, max=0) / b)
                                             + torch.exp(-torch.clamp(hi, min=0) / b)), min=1e-12))
    logp = torch.where(hi <= 0, left, torch.where(lo >= 0, right, inner))
    return -torch.clamp(logp, min=math.log(1e-9)) / math.log(2)


def rate_bits(model: FloatModel, ps: list[Pass], d: int) -> torch.Tensor:
    """Total bits of a batch's indices under the float twin."""
    log2_delta = math.log2(d / 16)
    total = torch.zeros(())
    for p in ps:
        net = model.nets[p.net]
        out = net(torch.from_numpy(p.inputs).float(), p.group, p.pass_, log2_delta)
        mask = torch.from_numpy(p.mask)
        q = torch.from_numpy(p.q).float()[mask]
        mu = out[:, : net.n_out][mask] * (16.0 / d)
        lq = torch.clamp(out[:, net.n_out :][mask] - log2_delta, *model.scale_range)  # the tables' scales
        total = total + laplace_bits(q, mu, torch.exp2(lq)).sum()
    return total


# ----------------------------------------------------------------------------------------- checkpoints

def _save_checkpoint(folder: Path, model: FloatModel, opt: torch.optim.Optimizer, state: dict) -> None:
    """Write ``folder`` atomically (a temporary sibling renamed into place)."""
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"))
    tensors, steps = {}, {}
    for i, p in enumerate(opt.param_groups[0]["params"]):
        st = opt.state.get(p, {})
        if st:
            tensors[f"{i}.exp_avg"], tensors[f"{i}.exp_avg_sq"] = st["exp_avg"], st["exp_avg_sq"]
            steps[str(i)] = float(st["step"])
    save_file(tensors, str(tmp / "optim.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state, "optim_steps": steps}, indent=1))
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, model: FloatModel, opt: torch.optim.Optimizer | None) -> dict:
    from safetensors.torch import load_file

    try:
        state = json.loads((folder / "state.json").read_text())
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        if opt is not None:
            tensors = load_file(str(folder / "optim.safetensors"))
            for i, p in enumerate(opt.param_groups[0]["params"]):
                if str(i) in state["optim_steps"]:
                    opt.state[p] = {"step": torch.tensor(state["optim_steps"][str(i)]),
                                    "exp_avg": tensors[f"{i}.exp_avg"], "exp_avg_sq": tensors[f"{i}.exp_avg_sq"]}
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise TrainError(f"{folder}: not a usable image-wavelet checkpoint ({type(e).__name__}: {e})") from None
    return state


# ------------------------------------------------------------------------------------------- training

@torch.no_grad()
def held_out_bpp(model: FloatModel, images: list[np.ndarray], crop: int = 256) -> float:
    """Mean model-likelihood bits per pixel of the held-out images' central crops over :data:`EVAL_DELTAS`."""
    model.eval()
    total = 0.0
    for im in images:
        h, w = im.shape[:2]
        c = min(crop, h, w) // 32 * 32
        y, x = (h - c) // 2, (w - c) // 2
        crops = im[None, y : y + c, x : x + c]
        for delta in EVAL_DELTAS:
            d = round(16 * delta)
            total += float(rate_bits(model, passes(crops, np.array([False]), d), d)) / (c * c)
    model.train()
    return total / max(1, len(images) * len(EVAL_DELTAS))


def train(data: list[str | Path], out: str | Path, minutes: float, *, resume: bool = False,
          cfg: Config | None = None, checkpoint_minutes: float = 5.0, max_steps: int | None = None,
          lr: float | None = None, log=print) -> dict:
    """Train for ``minutes`` of wall-clock time (or ``max_steps`` more steps), checkpointing into ``out``.

    Returns the final state (step, elapsed seconds, held-out history). Ctrl-C saves a checkpoint, then re-raises.
    Uses torch's current thread count (``nctk train`` sets 1: faster here than 2 for these many small ops).
    ``lr`` replaces the learning rate (of a new run's ``cfg``, or of a resumed one from here on: a schedule by
    hand, e.g. a lower rate for the last stretch); each change is logged in the state's ``lr_changes``.
    """
    out = Path(out)
    last = out / "last"
    if (last / "state.json").exists() and not resume:
        raise TrainError(f"{out} already holds a checkpoint: add --resume to continue it, or choose another folder")
    if resume and not (last / "state.json").exists():
        raise TrainError(f"{out} holds no checkpoint to resume")
    if resume:
        cfg = Config.from_json(json.loads((last / "state.json").read_text())["config"])
    cfg = cfg or Config()
    if lr is not None:
        if not (math.isfinite(lr) and lr > 0):
            raise TrainError(f"learning rate must be a positive number, not {lr!r}")
        cfg = replace(cfg, lr=float(lr))
    torch.manual_seed(cfg.seed)
    paths = list_images(data)
    train_paths = [p for p in paths if not held_out(p)]
    held_paths = [p for p in paths if held_out(p)]
    if not train_paths:
        raise TrainError("every image is held out: give more images")
    log(f"{len(train_paths)} training images, {len(held_paths)} held out; loading")
    images, held = _load(train_paths), _load(held_paths)
    model = FloatModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = {"step": 0, "elapsed_s": 0.0, "config": asdict(cfg), "history": [], "best_bpp": None,
             "data": {"train": len(train_paths), "held_out": [p.name for p in held_paths],
                      "folders": sorted({str(p.parent) for p in paths})}}
    if resume:
        state = _load_checkpoint(last, model, opt)
        log(f"resumed at step {state['step']} ({state['elapsed_s'] / 60:.1f} min trained)")
        if cfg.lr != state["config"]["lr"]:
            state.setdefault("lr_changes", []).append({"step": state["step"], "lr": cfg.lr})
            state["config"] = asdict(cfg)
            log(f"learning rate {cfg.lr:g} from step {state['step']}")
    model.train()
    start, last_ckpt = time.monotonic(), time.monotonic()
    base_elapsed, base_step = state["elapsed_s"], state["step"]
    window: list[float] = []

    def checkpoint() -> None:
        state["elapsed_s"] = base_elapsed + time.monotonic() - start
        bpp = held_out_bpp(model, held) if held else None
        state["history"].append({"step": state["step"], "minutes": state["elapsed_s"] / 60, "held_out_bpp": bpp})
        _save_checkpoint(last, model, opt, state)
        if bpp is not None and (state["best_bpp"] is None or bpp < state["best_bpp"]):
            state["best_bpp"] = bpp
            _save_checkpoint(out / "best", model, opt, state)
        log(f"checkpoint at step {state['step']}: held-out {bpp if bpp is None else round(bpp, 4)} bpp "
            f"(model likelihood, mean of steps {', '.join(f'{d:g}' for d in EVAL_DELTAS)} px)")

    # Subnormal floats (tiny gradients, far tails) slow the CPU down 20x. The flag is this thread's (and numpy's):
    # set for the loop only, and reset after, so nothing else in the process sees flushed subnormals.
    torch.set_flush_denormal(True)
    try:
        while True:
            done = time.monotonic() - start >= minutes * 60
            if done or (max_steps is not None and state["step"] - base_step >= max_steps):
                break
            crops, grey, d = batch(images, state["step"], cfg)
            crops = np.stack([grey_of(c).repeat(3, axis=2) if g else c for c, g in zip(crops, grey, strict=True)])
            ps = passes(crops, grey, d)
            opt.zero_grad(set_to_none=True)
            bpp = rate_bits(model, ps, d) / (crops.shape[0] * crops.shape[1] * crops.shape[2])
            bpp.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["step"] += 1
            window.append(float(bpp.detach()))
            if state["step"] % 50 == 0:
                rate = (state["step"] - base_step) / max(1e-9, time.monotonic() - start)
                log(f"step {state['step']}: {np.mean(window):.4f} bpp (model likelihood, random steps), "
                    f"{rate:.2f} steps/s")
                window.clear()
            if time.monotonic() - last_ckpt >= checkpoint_minutes * 60:
                checkpoint()
                last_ckpt = time.monotonic()
        checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        raise
    finally:
        torch.set_flush_denormal(False)
    return state


# --------------------------------------------------------------------------------------------- export

def _requant(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel ``(mult, shift)`` with ``mult / 2**shift ~= ratio`` and ``mult`` in ``[2**29, 2**30)``."""
    mult, shift = [], []
    for r in ratio.tolist():
        r = max(r, 2.0**-40)
        s = min(62, max(1, 29 - math.floor(math.log2(r))))
        m = round(r * 2.0**s)
        while m >= 1 << 31:
            s -= 1
            m = round(r * 2.0**s)
        mult.append(m)
        shift.append(s)
    return np.array(mult, dtype=np.int32), np.array(shift, dtype=np.int32)


def integer_weights(model: FloatModel) -> dict[str, np.ndarray]:
    """The integer tensors of ``weights.safetensors`` (:mod:`nctk.codec.image.model`) of a float twin."""
    out: dict[str, np.ndarray] = {}
    for name, net in model.nets.items():
        convs = list(net.convs) + [net.last]
        scales = [INPUT_SCALE] + [float(a.scale) for a in net.acts]
        for i, conv in enumerate(convs):
            w = conv.weight.detach().double().numpy()
            sw = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1) / 127, 1e-12)
            wi = np.clip(np.round(w / sw[:, None, None, None]), -127, 127).astype(np.int8)
            acc_unit = sw * scales[i]  # the real value of one accumulator unit, per output channel
            if i == len(convs) - 1:
                out_unit = np.array([1 / 16] * net.n_out + [1 / 256] * net.n_out)
            else:
                out_unit = np.full(w.shape[0], max(scales[i + 1], 1e-6))
            mult, shift = _requant(acc_unit / out_unit)
            if i == 0:
                b = net.bias0.detach().double().numpy() / acc_unit
                out[f"{name}.cond"] = np.clip(np.round(net.cond.detach().double().numpy() / acc_unit),
                                              -BIAS_MAX, BIAS_MAX).astype(np.int32)
            else:
                b = conv.bias.detach().double().numpy() / acc_unit
            in_max = INPUT_MAX if i == 0 else 255
            if (np.abs(wi.astype(np.int64)).reshape(w.shape[0], -1).sum(axis=1) * in_max).max() > ACC_BOUND:
                raise TrainError(f"{name}.{i}: weights too large for exact 32-bit accumulation")
            out[f"{name}.{i}.weight"] = wi
            out[f"{name}.{i}.bias"] = np.clip(np.round(b), -BIAS_MAX, BIAS_MAX).astype(np.int32)
            out[f"{name}.{i}.mult"], out[f"{name}.{i}.shift"] = mult, shift
    return out


def family_tables(grid: Grid) -> bytes:
    """The frozen Laplace table set of ``grid`` (built once here, in float64; decoders only read the bytes)."""
    from nctk.entropy.tables import ParametricFamily

    lo = 2.0 ** (grid.log2_scale_min_q8 / 256)
    hi = 2.0 ** ((grid.log2_scale_min_q8 + (grid.n_scales - 1) * (1 << grid.scale_shift)) / 256)
    return ParametricFamily("laplace", lo, hi, grid.n_scales, grid.n_frac).tables.to_bytes()


def default_export_dir(artifact_id: str) -> Path:
    """``assets/models/<id>`` of the installed package (the repository's folder in an editable install)."""
    return Path(str(resources.files("nctk.assets"))) / "models" / artifact_id


def export(checkpoint: str | Path, artifact_id: str, folder: str | Path | None = None, *, force: bool = False,
           note: str = "") -> artifacts.Artifact:
    """Write the integer artifact of the checkpoint folder ``checkpoint`` (``OUT/best`` or ``OUT/last``)."""
    from safetensors.numpy import save

    checkpoint = Path(checkpoint)
    state = json.loads((checkpoint / "state.json").read_text())
    cfg = Config.from_json(state["config"])
    model = FloatModel(cfg)
    _load_checkpoint(checkpoint, model, None)
    grid = Grid.from_json(cfg.grid)
    folder = Path(folder) if folder is not None else default_export_dir(artifact_id)
    if (folder / artifacts.MANIFEST).exists():
        if not force:
            raise TrainError(f"{folder} already holds an artifact: add --force to replace it")
        shutil.rmtree(folder)
    files = {"weights.safetensors": save(integer_weights(model)),
             "tables.ntbl": family_tables(grid),
             "model.json": (json.dumps({"grid": grid.as_json(), "family": "laplace"}, sort_keys=True, indent=1)
                            + "\n").encode()}
    meta = {"training": {"steps": state["step"], "minutes": round(state["elapsed_s"] / 60, 2),
                         "held_out_bpp": state.get("best_bpp"), "history": state["history"][-5:],
                         "data": state["data"], "config": state["config"],
                         "lr_changes": state.get("lr_changes", []),
                         "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
                         "checkpoint": checkpoint.name, "note": note},
            "exported": time.strftime("%Y-%m-%d")}
    return artifacts.write(folder, artifact_id, WAVELET.id, files, meta)


def summary(state: dict) -> str:
    """One line about a finished or interrupted run."""
    return (f"{state['step']} steps in {state['elapsed_s'] / 60:.1f} min; best held-out "
            f"{state['best_bpp'] if state['best_bpp'] is None else round(state['best_bpp'], 4)} bpp")
