"""Image codec design study (issue 9): which learned design beats JPEG within a CPU training budget.

Three designs, each trained for the same wall-clock budget on ``images/{bsds500,sunhays40}`` (never
Kodak), evaluated on all 24 Kodak images with real nctk bitstreams:

* ``hyperprior`` -- compressai's mean-scale hyperprior (N=128, M=192, lambda=0.0067), trained from
  scratch (the baseline). Several rates come from one model by scaling the latent at encode time.
* ``lifting``    -- a learned lifting transform initialised to the CDF 9/7 wavelet (at step 0 it *is*
  a wavelet coder), with a learned subband context entropy model, fine-tuned end to end. One model
  serves every quantiser step: the step is an input and lambda follows it (high-rate theory).
* ``wavelet``    -- the fixed orthonormalised CDF 9/7 wavelet with only a learned entropy model (plain
  maximum likelihood on exactly rounded coefficients) plus a decoder-side enhancement CNN.

All three code their symbols with nctk's rANS and its Gaussian mean-scale family, so the bpp is the
size of real streams (decoded and checked equal to the encoder's symbols). Usage::

    python studies/image_study.py train wavelet --minutes 40      # checkpoints under checkpoints/
    python studies/image_study.py rd wavelet                       # final RD on Kodak -> results JSON
    python studies/image_study.py jpeg                             # Pillow JPEG anchor, same run
    python studies/image_study.py report                           # tables + plot -> IMAGE_STUDY.md

Run it alone: the training budget is wall-clock on a 2-core machine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))

from study_common import load_state, stream_bytes, train_on_budget  # noqa: E402

from nctk.entropy.coder import chunk_counts, decode_chunks, encode_chunks  # noqa: E402
from nctk.entropy.tables import ParametricFamily, factorized_prior  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "images"
CKPT = ROOT / "checkpoints" / "image_study"
RESULTS = Path(__file__).with_name("image_study_results")
DESIGNS = ("hyperprior", "lifting", "wavelet")
LEVELS = 5
FAMILY = ParametricFamily("gaussian", scale_min=0.11, scale_max=256.0, n_scales=96, n_frac=16)
EVAL_STEPS = (1.0, 0.6, 0.35, 0.2, 0.12)  # quantiser steps (pixel units) of the final RD curves
EVAL_GAINS = (0.5, 0.7, 1.0, 1.4)  # latent gains of the hyperprior's RD curve
CURVE_STEP = 0.35  # the operating point tracked during training (the hyperprior tracks gain 1)


# ----------------------------------------------------------------------------------------------- data

def load_dir(paths: list[Path]) -> list[torch.Tensor]:
    """uint8 [3, H, W] tensors."""
    return [torch.from_numpy(np.asarray(Image.open(p).convert("RGB"))).permute(2, 0, 1).contiguous() for p in paths]


def train_images(data: Path) -> list[torch.Tensor]:
    paths = sorted((data / "bsds500").glob("*.jpg")) + sorted((data / "sunhays40").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no training images under {data}/{{bsds500,sunhays40}}")
    return load_dir(paths)


def kodak(data: Path, limit: int = 24) -> list[torch.Tensor]:
    """The Kodak test set (``limit`` < 24 only for smoke tests: results are not comparable)."""
    paths = sorted((data / "kodak").glob("*.png"))
    if len(paths) != 24:
        raise SystemExit(f"expected 24 Kodak PNGs under {data}/kodak, found {len(paths)}")
    return load_dir(paths[:limit])


def random_batch(imgs: list[torch.Tensor], n: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    out = []
    for _ in range(n):
        im = imgs[int(torch.randint(len(imgs), (1,), generator=gen))]
        _, h, w = im.shape
        y = int(torch.randint(h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(w - crop + 1, (1,), generator=gen))
        c = im[:, y : y + crop, x : x + crop]
        if int(torch.randint(2, (1,), generator=gen)):
            c = c.flip(-1)
        out.append(c)
    return torch.stack(out).float() / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR-RGB of two 8-bit images given as floats in [0, 1] (b is rounded to 8 bits first)."""
    b8 = (b.clamp(0, 1) * 255).round()
    mse = float(((a * 255).round() - b8).pow(2).mean())
    return 10 * math.log10(255**2 / max(mse, 1e-12))


# ------------------------------------------------------------------------------ wavelet transforms

# CDF 9/7 lifting steps (JPEG 2000 irreversible transform).
CDF97 = (-1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971)
# An orthonormal colour transform (luma-like sum, two differences): MSE in it equals MSE in RGB.
COLOR = torch.tensor([[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=torch.float32)
COLOR = COLOR / COLOR.norm(dim=1, keepdim=True)


def _next(v: torch.Tensor) -> torch.Tensor:  # v[n + 1] with the symmetric extension at the end
    return torch.cat([v[..., 1:], v[..., -1:]], dim=-1)


def _prev(v: torch.Tensor) -> torch.Tensor:  # v[n - 1] with the symmetric extension at the start
    return torch.cat([v[..., :1], v[..., :-1]], dim=-1)


def _band_norms() -> tuple[float, float]:
    """L2 norms of the unscaled 9/7 synthesis basis functions (low, high): scaling by them makes
    the transform nearly orthonormal, so one quantiser step is MSE-balanced across subbands."""
    n = 256
    out = []
    for band in (0, 1):
        c = torch.zeros(2, n // 2, dtype=torch.float64)
        c[band, n // 4] = 1.0
        e, o = c[0].clone(), c[1].clone()
        a, b, g, d = CDF97
        e = e - d * (_prev(o) + o)
        o = o - g * (e + _next(e))
        e = e - b * (_prev(o) + o)
        o = o - a * (e + _next(e))
        out.append(float(torch.sqrt((e**2).sum() + (o**2).sum())))
    return out[0], out[1]


NORM_L, NORM_H = _band_norms()


class Lifting1D(nn.Module):
    """One 1-D lifting level along the last axis: four 2-tap steps initialised to CDF 9/7, plus
    (``learned=True``) trainable taps and a small CNN added to each predict step, zero-initialised
    so that step 0 is exactly the wavelet. Any function of the other phase keeps it invertible."""

    def __init__(self, learned: bool, width: int = 16):
        super().__init__()
        taps = torch.tensor([[c, c] for c in CDF97], dtype=torch.float32)
        self.taps = nn.Parameter(taps, requires_grad=learned)
        self.learned = learned
        if learned:
            self.nets = nn.ModuleList()
            for _ in range(2):
                net = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(width, 1, 3, padding=1))
                nn.init.zeros_(net[-1].weight)
                nn.init.zeros_(net[-1].bias)
                self.nets.append(net)

    def _extra(self, i: int, v: torch.Tensor) -> torch.Tensor:
        if not self.learned:
            return 0.0
        shape = v.shape
        return self.nets[i](v.reshape(-1, 1, *shape[-2:])).reshape(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, o = x[..., 0::2], x[..., 1::2]
        t = self.taps
        o = o + t[0, 0] * e + t[0, 1] * _next(e) + self._extra(0, e)
        e = e + t[1, 0] * _prev(o) + t[1, 1] * o
        o = o + t[2, 0] * e + t[2, 1] * _next(e) + self._extra(1, e)
        e = e + t[3, 0] * _prev(o) + t[3, 1] * o
        return e * NORM_L, o * NORM_H

    def inverse(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        e, o = lo / NORM_L, hi / NORM_H
        t = self.taps
        e = e - t[3, 0] * _prev(o) - t[3, 1] * o
        o = o - t[2, 0] * e - t[2, 1] * _next(e) - self._extra(1, e)
        e = e - t[1, 0] * _prev(o) - t[1, 1] * o
        o = o - t[0, 0] * e - t[0, 1] * _next(e) - self._extra(0, e)
        return torch.stack([e, o], dim=-1).flatten(-2)


class Wavelet2D(nn.Module):
    """``LEVELS``-level separable 2-D transform of the colour-rotated, centred image.

    ``analysis(x) -> (ll, [(lh, hl, hh) for levels 1..L])``, level 1 the finest; ``synthesis``
    inverts it exactly (up to float rounding) for any parameter values."""

    def __init__(self, learned: bool):
        super().__init__()
        self.rows = nn.ModuleList(Lifting1D(learned) for _ in range(LEVELS))
        self.cols = nn.ModuleList(Lifting1D(learned) for _ in range(LEVELS))
        # Subband gains: the norms of the multi-level synthesis basis functions (a biorthogonal
        # wavelet's translates are not orthogonal, so per-level normalisation is not enough).
        # Scaling coefficients by them makes coefficient-domain MSE equal pixel-domain MSE.
        self.register_buffer("gains", torch.ones(LEVELS, 4), persistent=False)
        self.gains = _subband_gains(self)

    def analysis(self, x: torch.Tensor):
        v = torch.einsum("ij,bjhw->bihw", COLOR, x - 0.5)
        bands = []
        for lev in range(LEVELS):
            lo, hi = self.rows[lev](v)  # along width
            ll, lh = (t.transpose(-1, -2) for t in self.cols[lev](lo.transpose(-1, -2)))
            hl, hh = (t.transpose(-1, -2) for t in self.cols[lev](hi.transpose(-1, -2)))
            g = self.gains[lev]
            bands.append((lh * g[1], hl * g[2], hh * g[3]))
            v = ll
        return v * self.gains[LEVELS - 1, 0], bands

    def synth_level(self, lev: int, ll, lh, hl, hh) -> torch.Tensor:
        """Invert level ``lev``: ``ll`` is gain-scaled only at the coarsest level (as analysis gives it)."""
        g = self.gains[lev]
        if lev == LEVELS - 1:
            ll = ll / g[0]
        lh, hl, hh = lh / g[1], hl / g[2], hh / g[3]
        lo = self.cols[lev].inverse(ll.transpose(-1, -2), lh.transpose(-1, -2)).transpose(-1, -2)
        hi = self.cols[lev].inverse(hl.transpose(-1, -2), hh.transpose(-1, -2)).transpose(-1, -2)
        return self.rows[lev].inverse(lo, hi)

    @staticmethod
    def to_rgb(v: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ji,bjhw->bihw", COLOR, v) + 0.5


@torch.no_grad()
def _subband_gains(wt: Wavelet2D) -> torch.Tensor:
    """[level, (ll, lh, hl, hh)] synthesis norms of a unit coefficient in the middle of each band."""
    n = 32 << LEVELS
    gains = torch.ones(LEVELS, 4)
    for lev in range(LEVELS):
        for band in range(4):
            if band == 0 and lev != LEVELS - 1:
                continue
            s = n >> (lev + 1)
            parts = [torch.zeros(1, 1, s, s) for _ in range(4)]
            parts[band][0, 0, s // 2, s // 2] = 1.0
            rec = parts[0]
            if band != 0:  # a detail band: zero low band at this level
                rec = torch.zeros(1, 1, s, s)
            rec = _synth_raw(wt, lev, rec, *parts[1:])
            for k in reversed(range(lev)):
                z = torch.zeros_like(rec)
                rec = _synth_raw(wt, k, rec, z, z, z)
            gains[lev, band] = rec.norm()
    return gains


def _synth_raw(wt: Wavelet2D, lev: int, ll, lh, hl, hh) -> torch.Tensor:
    lo = wt.cols[lev].inverse(ll.transpose(-1, -2), lh.transpose(-1, -2)).transpose(-1, -2)
    hi = wt.cols[lev].inverse(hl.transpose(-1, -2), hh.transpose(-1, -2)).transpose(-1, -2)
    return wt.rows[lev].inverse(lo, hi)


# ----------------------------------------------------------------------------- subband entropy model

def checker(h: int, w: int) -> torch.Tensor:
    """1 on anchor positions ((i + j) even), coded first; the rest use them as context."""
    i = torch.arange(h).view(-1, 1)
    j = torch.arange(w).view(1, -1)
    return ((i + j) % 2 == 0).float().view(1, 1, h, w)


class ContextNet(nn.Module):
    """Predicts a Gaussian (mean, log-scale) in pixel units per coefficient from what the decoder
    already has: the reconstructed low band of this level, the anchor half of the subbands (second
    pass only), log step and level one-hot. Predicting pixel-unit parameters and discretising by
    the step keeps the model consistent across steps."""

    def __init__(self, n_ctx: int, n_out: int, ch: int = 64):
        super().__init__()
        self.n_out = n_out
        self.net = nn.Sequential(nn.Conv2d(n_ctx + n_out + 2 + LEVELS, ch, 5, padding=2), nn.GELU(),
                                 nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(ch, ch, 3, padding=1), nn.GELU(),
                                 nn.Conv2d(ch, 2 * n_out, 1))

    def forward(self, ctx, anchors, second: bool, log_step: float, level: int):
        b, _, h, w = anchors.shape
        extra = torch.zeros(b, 2 + LEVELS, h, w)
        extra[:, 0] = float(second)
        extra[:, 1] = log_step
        extra[:, 2 + level] = 1.0
        inp = [ctx, anchors, extra] if ctx is not None else [anchors, extra]
        out = self.net(torch.cat(inp, dim=1))
        return out[:, : self.n_out], out[:, self.n_out :].clamp(-12.0, 6.0)


class SubbandModel(nn.Module):
    """Entropy model of all quantised wavelet coefficients: the coarsest low band, then the three
    detail bands of each level, coarse to fine, each in two checkerboard passes."""

    def __init__(self, ch: int = 64):
        super().__init__()
        self.low = ContextNet(0, 3, ch=32)
        self.detail = ContextNet(3, 9, ch=ch)

    def params(self, which: str, ctx, q: torch.Tensor, step: float, level: int):
        """(mean, scale) in step units for every position of ``q`` ([B, C, h, w] integers); anchors
        from the first pass, the rest from the second (which sees the anchors' values)."""
        net = self.low if which == "low" else self.detail
        m = checker(*q.shape[-2:])
        ls = math.log(step)
        ctx_in = None if ctx is None else ctx * (4.0 / 2 ** (level + 1))
        mu1, s1 = net(ctx_in, torch.zeros_like(q), False, ls, level)
        mu2, s2 = net(ctx_in, q * step * 4.0 * m, True, ls, level)
        mu = (mu1 * m + mu2 * (1 - m)) / step
        scale = torch.exp(s1 * m + s2 * (1 - m)) / step
        return mu, scale.clamp(FAMILY.scale_min, FAMILY.scale_max), m


def gauss_bits(q: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-log2 P(q) under the discretised Gaussian (q may be noisy during end-to-end training)."""
    d = torch.distributions.Normal(mu, scale)
    p = d.cdf(q + 0.5) - d.cdf(q - 0.5)
    return -torch.log2(p.clamp_min(1e-9))


class WaveletCodec(nn.Module):
    """Designs 2 (``learned=True``: lifting trained end to end) and 3 (fixed wavelet + enhancer)."""

    def __init__(self, learned: bool, enhance: bool):
        super().__init__()
        self.transform = Wavelet2D(learned)
        self.entropy = SubbandModel()
        self.enhancer = Enhancer() if enhance else None

    def quantise(self, x: torch.Tensor, step: float, noisy: bool):
        """Returns (list of (which, ctx, q_for_rate, level)) and the reconstruction pyramid output."""
        ll, bands = self.transform.analysis(x)

        def quant(v):
            r = torch.round(v / step)
            hard = v / step + (r - v / step).detach()  # straight-through rounding for distortion
            rate_q = v / step + torch.empty_like(v).uniform_(-0.5, 0.5) if noisy else r
            return hard, rate_q

        terms = []
        hard_ll, rate_ll = quant(ll)
        terms.append(("low", None, rate_ll, LEVELS - 1))
        rec = hard_ll * step
        for lev in reversed(range(LEVELS)):
            hq = [quant(b) for b in bands[lev]]
            rate_d = torch.cat([r for _, r in hq], dim=1)
            terms.append(("detail", rec.detach(), rate_d, lev))
            rec = self.transform.synth_level(lev, rec, *(h * step for h, _ in hq))
        return terms, Wavelet2D.to_rgb(rec)

    def rate_bits(self, terms, step: float) -> torch.Tensor:
        total = 0.0
        for which, ctx, q, lev in terms:
            ctx_q = torch.round(q).detach() if q.requires_grad else torch.round(q)
            mu, scale, m = self.entropy.params(which, ctx, ctx_q, step, lev)
            total = total + gauss_bits(q, mu, scale).sum()
        return total


class Enhancer(nn.Module):
    """Decoder-side residual CNN on the decoded RGB image (zero-initialised: starts as identity)."""

    def __init__(self, ch: int = 32, depth: int = 5):
        super().__init__()
        layers = [nn.Conv2d(4, ch, 3, padding=1), nn.GELU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.GELU()]
        layers.append(nn.Conv2d(ch, 3, 3, padding=1))
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, step: float) -> torch.Tensor:
        s = torch.full_like(x[:, :1], math.log(step))
        return x + self.net(torch.cat([x, s], dim=1))


def sample_step(gen: torch.Generator) -> float:
    lo, hi = math.log(0.06), math.log(1.5)  # ~0.1 to ~4 bpp on Kodak
    return math.exp(lo + (hi - lo) * float(torch.rand(1, generator=gen)))


def lam_for_step(step: float) -> float:
    """Rate-distortion slope matching a uniform quantiser of this step in an orthonormal transform:
    dD/dR = -2 ln2 * step^2/12 per coefficient, 3 coefficients per pixel -> bpp + lam * MSE."""
    return 18.0 / (math.log(2) * step * step)


# --------------------------------------------------------------------------------------- training

def build(design: str) -> nn.Module:
    if design == "hyperprior":
        from compressai.models import MeanScaleHyperprior

        return MeanScaleHyperprior(N=128, M=192)
    if design == "lifting":
        return WaveletCodec(learned=True, enhance=False)
    if design == "wavelet":
        return WaveletCodec(learned=False, enhance=True)
    raise SystemExit(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}")


def train_step(design: str, model, opts, x: torch.Tensor, gen: torch.Generator) -> dict:
    npix = x.shape[0] * x.shape[2] * x.shape[3]
    for o in opts:
        o.zero_grad(set_to_none=True)
    if design == "hyperprior":
        out = model(x)
        bpp = sum(-torch.log2(v).sum() for v in out["likelihoods"].values()) / npix
        mse = F.mse_loss(out["x_hat"], x)
        loss = bpp + 0.0067 * 255**2 * mse
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opts[0].step()
        aux = model.aux_loss()
        aux.backward()
        opts[1].step()
        return {"loss": float(loss), "bpp": float(bpp), "psnr": 10 * math.log10(1 / float(mse))}
    step = sample_step(gen)
    if design == "lifting":
        terms, xh = model.quantise(x, step, noisy=True)
        bpp = model.rate_bits(terms, step) / npix
        mse = F.mse_loss(xh, x)
        loss = bpp + lam_for_step(step) * mse
    else:  # wavelet: the transform is fixed, so rate (ML) and enhancement (MSE) train separately
        with torch.no_grad():
            terms, xh = model.quantise(x, step, noisy=False)
        bpp = model.rate_bits(terms, step) / npix
        mse = F.mse_loss(model.enhancer(xh.clamp(0, 1), step), x)
        loss = bpp + 100.0 * mse / step**2  # independent parameter sets: the weight only scales grads
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opts[0].step()
    return {"loss": float(loss), "bpp": float(bpp), "psnr": 10 * math.log10(1 / float(mse)), "step": step}


def make_opts(design: str, model: nn.Module):
    if design == "hyperprior":
        main = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
        aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
        return [torch.optim.Adam(main, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)]
    groups = [{"params": list(model.entropy.parameters()), "lr": 5e-4}]
    if model.enhancer is not None:
        groups.append({"params": list(model.enhancer.parameters()), "lr": 5e-4})
    learned = [p for p in model.transform.parameters() if p.requires_grad]
    if learned:
        groups.append({"params": learned, "lr": 1e-4})
    return [torch.optim.Adam(groups)]


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    imgs = train_images(args.data)
    test = kodak(args.data, args.limit)
    model = build(args.design).train()
    opts = make_opts(args.design, model)
    out = CKPT / args.design
    out.mkdir(parents=True, exist_ok=True)
    log = {"design": args.design, "minutes": args.minutes, "batch": args.batch, "crop": args.crop,
           "threads": args.threads, "curve": [], "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    train_on_budget(
        model, out, log, args.minutes, args.eval_every,
        next_batch=lambda: random_batch(imgs, args.batch, args.crop, gen),
        step=lambda x: train_step(args.design, model, opts, x, gen),
        describe=lambda st: f"bpp {st['bpp']:.3f} psnr {st['psnr']:.2f}",
        evaluate=lambda: (curve_point(args.design, model, test), 0.0), window=50)
    (out / "log.json").write_text(json.dumps(log, indent=1))
    if args.limit < 24:
        print("smoke run (--limit): results not written")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.design}_training.json").write_text(json.dumps(log, indent=1))
    print(f"trained {log['steps']} steps in {log['steps'] / log['steps_per_s'] / 60:.1f} min "
          f"({log['steps_per_s']:.3f} steps/s)")


@torch.no_grad()
def curve_point(design: str, model, test: list[torch.Tensor]) -> dict:
    """Kodak at the tracked operating point, model likelihood rate (fast; labelled as such)."""
    bpps, psnrs, psnr_enh = [], [], []
    for im in test:
        x = im.float().unsqueeze(0) / 255.0
        npix = x.shape[2] * x.shape[3]
        if design == "hyperprior":
            out = model(x)
            bpps.append(float(sum(-torch.log2(v).sum() for v in out["likelihoods"].values())) / npix)
            psnrs.append(psnr(x, out["x_hat"]))
            continue
        terms, xh = model.quantise(x, CURVE_STEP, noisy=False)
        bpps.append(float(model.rate_bits(terms, CURVE_STEP)) / npix)
        psnrs.append(psnr(x, xh))
        if model.enhancer is not None:
            psnr_enh.append(psnr(x, model.enhancer(xh.clamp(0, 1), CURVE_STEP)))
    point = {"bpp_likelihood": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}
    if psnr_enh:
        point["psnr_enhanced"] = float(np.mean(psnr_enh))
    return point


# ------------------------------------------------------------------------ real bitstreams (nctk rANS)

def _code(q: np.ndarray, mu: np.ndarray, scale: np.ndarray) -> tuple[list[bytes], int]:
    """rANS-code integers q with per-symbol Gaussian (mu, scale): nctk's family tables."""
    idx, base = FAMILY.index(mu.ravel(), scale.ravel())
    sym = (q.ravel().astype(np.int64) - base).astype(np.int32)
    return encode_chunks(sym, idx, FAMILY.tables), sym.size


def _decode(chunks: list[bytes], n: int, mu: np.ndarray, scale: np.ndarray) -> np.ndarray:
    idx, base = FAMILY.index(mu.ravel(), scale.ravel())
    sym = decode_chunks(chunks, idx, FAMILY.tables, chunk_counts(n))
    return (sym.astype(np.int64) + base).reshape(mu.shape)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


@torch.no_grad()
def wavelet_encode(model: WaveletCodec, x: torch.Tensor, step: float) -> list:
    """All coefficient streams: list of (chunks, count) in decoding order."""
    terms, _ = model.quantise(x, step, noisy=False)
    streams = []
    for which, ctx, q, lev in terms:
        mu, scale, m = model.entropy.params(which, ctx, q, step, lev)
        mask = (m.expand_as(q) > 0).numpy()
        qn, mun, sn = q.numpy(), _np(mu), _np(scale)
        for sel in (mask, ~mask):  # anchors first, then the rest
            streams.append(_code(qn[sel], mun[sel], sn[sel]))
    return streams


def cm_dequant(q: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """E[y | round(y) = q] under the model's Gaussian (step units): the MSE-optimal value inside the
    bin, which pulls reconstructions towards the predicted mean (a decoder-side gain at low rate)."""
    q64, mu64, s64 = q.double(), mu.double(), scale.double()
    a, b = (q64 - 0.5 - mu64) / s64, (q64 + 0.5 - mu64) / s64
    z = torch.special.ndtr(b) - torch.special.ndtr(a)
    pdf = lambda t: torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
    m = mu64 + s64 * (pdf(a) - pdf(b)) / z.clamp_min(1e-300)
    ok = z > 1e-9  # far in a tail the ratio is numerically meaningless: keep the bin centre
    return torch.where(ok, torch.minimum(torch.maximum(m, q64 - 0.5), q64 + 0.5), q64).float()


@torch.no_grad()
def wavelet_decode(model: WaveletCodec, streams: list, shape: tuple[int, int], step: float,
                   enhance: bool, cm: bool = False) -> torch.Tensor:
    """Decode the streams of :func:`wavelet_encode`. Contexts always use bin centres (as the encoder
    does); ``cm`` reconstructs the final image from conditional-mean values instead."""
    h, w = shape
    it = iter(streams)
    decoded = []

    def band(which, ctx, c, hh, ww, lev):
        q = torch.zeros(1, c, hh, ww)
        m = checker(hh, ww).expand_as(q) > 0
        mu, scale, _ = model.entropy.params(which, ctx, q, step, lev)  # anchors need no context
        chunks, n = next(it)
        q[m] = torch.from_numpy(_decode(chunks, n, _np(mu)[m.numpy()], _np(scale)[m.numpy()])).float()
        mu, scale, _ = model.entropy.params(which, ctx, q, step, lev)  # final (mu, scale) everywhere
        chunks, n = next(it)
        q[~m] = torch.from_numpy(_decode(chunks, n, _np(mu)[~m.numpy()], _np(scale)[~m.numpy()])).float()
        decoded.append((q, mu, scale))
        return q

    hs, ws = h >> LEVELS, w >> LEVELS
    rec = band("low", None, 3, hs, ws, LEVELS - 1) * step
    for lev in reversed(range(LEVELS)):
        hl_, wl_ = h >> lev + 1, w >> lev + 1
        d = band("detail", rec, 9, hl_, wl_, lev) * step
        rec = model.transform.synth_level(lev, rec, d[:, 0:3], d[:, 3:6], d[:, 6:9])
    if cm:
        vals = [cm_dequant(*t) * step for t in decoded]
        rec = vals[0]
        for i, lev in enumerate(reversed(range(LEVELS))):
            d = vals[i + 1]
            rec = model.transform.synth_level(lev, rec, d[:, 0:3], d[:, 3:6], d[:, 6:9])
    out = Wavelet2D.to_rgb(rec).clamp(0, 1)
    if enhance and model.enhancer is not None:
        out = model.enhancer(out, step).clamp(0, 1)
    return out


@torch.no_grad()
def hyper_encode(model, x: torch.Tensor, gain: float):
    y = model.g_a(x) * gain
    z = model.h_a(y / gain)
    tables, medians = _hyper_tables(model)
    med = torch.from_numpy(medians).float().view(1, -1, 1, 1)
    zq = torch.round(z - med)
    z_hat = zq + med
    zi = zq.long().numpy()
    chan = np.broadcast_to(np.arange(zi.shape[1]).reshape(1, -1, 1, 1), zi.shape)
    z_chunks = encode_chunks(zi.ravel().astype(np.int32), chan.ravel().astype(np.int32), tables)
    scales, means = model.h_s(z_hat).chunk(2, 1)
    means, scales = means * gain, (scales * gain).clamp(FAMILY.scale_min, FAMILY.scale_max)
    k = torch.round(y - means)
    y_stream = _code(k.numpy(), np.zeros(k.shape), _np(scales))
    return (z_chunks, zi.size, tuple(z.shape)), y_stream


@torch.no_grad()
def hyper_decode(model, streams, gain: float) -> torch.Tensor:
    (z_chunks, nz, zshape), (y_chunks, ny) = streams
    tables, medians = _hyper_tables(model)
    chan = np.broadcast_to(np.arange(zshape[1]).reshape(1, -1, 1, 1), zshape)
    zi = decode_chunks(z_chunks, chan.ravel().astype(np.int32), tables, chunk_counts(nz)).reshape(zshape)
    z_hat = torch.from_numpy(zi).float() + torch.from_numpy(medians).float().view(1, -1, 1, 1)
    scales, means = model.h_s(z_hat).chunk(2, 1)
    means, scales = means * gain, (scales * gain).clamp(FAMILY.scale_min, FAMILY.scale_max)
    k = torch.from_numpy(_decode(y_chunks, ny, np.zeros(scales.shape), _np(scales))).float()
    return model.g_s((k + means) / gain).clamp(0, 1)


_TABLES: dict = {}


def _hyper_tables(model):
    key = id(model)
    if key not in _TABLES:
        _TABLES[key] = factorized_prior(model.entropy_bottleneck)
    return _TABLES[key]


def cmd_rd(args) -> None:
    """Final RD curve on all of Kodak from real nctk streams, decoded and timed."""
    torch.set_num_threads(args.threads)
    model = load_state(build(args.design), CKPT / args.design / "model.safetensors")
    test = kodak(args.data, args.limit)
    points = EVAL_GAINS if args.design == "hyperprior" else EVAL_STEPS
    variants = [("", False, False)]
    if args.design == "wavelet":  # conditional-mean reconstruction (decoder side only; it lost ~1-2 dB)
        variants += [("+cm", False, True), ("+enhancer", True, False)]
    rows = {v: [] for v, _, _ in variants}
    for p in points:
        acc = {v: {"bpp": [], "psnr": [], "enc_s": [], "dec_s": []} for v, _, _ in variants}
        for im in test:
            x = im.float().unsqueeze(0) / 255.0
            npix = x.shape[2] * x.shape[3]
            for v, enh, cm in variants:
                t0 = time.perf_counter()
                if args.design == "hyperprior":
                    streams = hyper_encode(model, x, p)
                else:
                    streams = wavelet_encode(model, x, p)
                nbytes = stream_bytes(streams)
                t1 = time.perf_counter()
                if args.design == "hyperprior":
                    xh = hyper_decode(model, streams, p)
                else:
                    xh = wavelet_decode(model, streams, tuple(x.shape[-2:]), p, enh, cm)
                t2 = time.perf_counter()
                a = acc[v]
                a["bpp"].append(nbytes * 8 / npix)
                a["psnr"].append(psnr(x, xh))
                a["enc_s"].append(t1 - t0)
                a["dec_s"].append(t2 - t1)
        for v, _, _ in variants:
            row = {k: float(np.mean(vals)) for k, vals in acc[v].items()}
            row["point"] = p
            rows[v].append(row)
            print(f"{args.design}{v} @ {p}: {row}", flush=True)
    if args.limit < 24:
        print("smoke run (--limit): results not written")
        return
    RESULTS.mkdir(exist_ok=True)
    for v, _, _ in variants:
        name = f"{args.design}{v}"
        (RESULTS / f"{name}_rd.json").write_text(json.dumps({"name": name, "points": rows[v]}, indent=1))


def cmd_jpeg(args) -> None:
    """Pillow JPEG (4:2:0, default tables) on all of Kodak, same machine and metric."""
    test = kodak(args.data)
    rows = []
    for qual in (5, 10, 15, 20, 30, 40, 50, 60, 75, 90):
        bpps, ps, enc, dec = [], [], [], []
        for im in test:
            pil = Image.fromarray(im.permute(1, 2, 0).numpy())
            t0 = time.perf_counter()
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=qual)
            t1 = time.perf_counter()
            rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            t2 = time.perf_counter()
            x = im.float() / 255.0
            bpps.append(len(buf.getvalue()) * 8 / (im.shape[1] * im.shape[2]))
            ps.append(psnr(x, torch.from_numpy(rec).permute(2, 0, 1).float() / 255.0))
            enc.append(t1 - t0)
            dec.append(t2 - t1)
        rows.append({"point": qual, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(ps)),
                     "enc_s": float(np.mean(enc)), "dec_s": float(np.mean(dec))})
        print(rows[-1])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "jpeg_rd.json").write_text(json.dumps({"name": "jpeg (Pillow)", "points": rows}, indent=1))


# ---------------------------------------------------------------------------------------- report

def _bd_gap(x1, y1, x2, y2) -> float:
    """Mean of (cubic fit of y2 - cubic fit of y1) over the overlapping x range: Bjontegaard's integral."""
    lo, hi = max(min(x1), min(x2)), min(max(x1), max(x2))
    if hi <= lo:
        return float("nan")
    i1, i2 = (np.polyint(np.polyfit(x, y, 3)) for x, y in ((x1, y1), (x2, y2)))
    return float((np.polyval(i2, hi) - np.polyval(i2, lo) - np.polyval(i1, hi) + np.polyval(i1, lo)) / (hi - lo))


def bd_rate(r1, p1, r2, p2) -> float:
    """Bjontegaard delta rate (%) of curve 2 against curve 1 (cubic fit of log-rate over PSNR,
    integrated over the overlapping PSNR range). Negative = curve 2 needs fewer bits."""
    return float((np.exp(_bd_gap(p1, np.log(r1), p2, np.log(r2))) - 1) * 100)


def bd_psnr(r1, p1, r2, p2) -> float:
    """Bjontegaard delta PSNR (dB) of curve 2 over curve 1 at equal rate (cubic fit over log-rate)."""
    return _bd_gap(np.log(r1), p1, np.log(r2), p2)


ANCHORS = {"jpeg": "JPEG (CompressAI's anchor)", "jpeg2000": "JPEG 2000", "webp": "WebP",
           "bpg_444_x265_ycbcr": "BPG 4:4:4",
           "compressai-bmshj2018-factorized_mse_cpu": "factorized prior (pretrained)",
           "compressai-bmshj2018-hyperprior_mse_cpu": "hyperprior (pretrained)",
           "compressai-mbt2018-mean_mse_cpu": "mean-scale hyperprior (pretrained)"}


def anchor(name: str, data: Path) -> tuple[list[float], list[float]]:
    d = json.loads((data.parent / "rd_results" / "kodak" / f"{name}.json").read_text())["results"]
    return d["bpp"], d["psnr-rgb"]


def _curve(path: Path):
    pts = json.loads(path.read_text())["points"]
    return [p["bpp"] for p in pts], [p["psnr"] for p in pts], pts


def cmd_report(args) -> None:
    """Tables and a plot from the JSON results into IMAGE_STUDY.md's generated sections."""
    from study_common import write_section

    study = Path(__file__).with_name("IMAGE_STUDY.md")
    jr, jp, _ = _curve(RESULTS / "jpeg_rd.json")
    ar, ap_ = anchor("jpeg", args.data)
    curves = {p.stem[:-3]: _curve(p) for p in sorted(RESULTS.glob("*_rd.json")) if p.stem != "jpeg_rd"}
    rows = ["| design | points (bpp / PSNR dB) | BD-rate vs Pillow JPEG | BD-PSNR vs Pillow JPEG "
            "| BD-rate vs anchor JPEG | enc s/img | dec s/img |", "|---|---|---|---|---|---|---|"]
    for name, (r, p, pts) in curves.items():
        pts_s = ", ".join(f"{a:.3f} / {b:.2f}" for a, b in zip(r, p, strict=True))
        rows.append(f"| {name} | {pts_s} | {bd_rate(jr, jp, r, p):+.1f}% | {bd_psnr(jr, jp, r, p):+.2f} dB "
                    f"| {bd_rate(ar, ap_, r, p):+.1f}% | {np.mean([q['enc_s'] for q in pts]):.2f} "
                    f"| {np.mean([q['dec_s'] for q in pts]):.2f} |")
    rows += ["", "Published anchors (`../shared/data/rd_results/kodak`), against the same two JPEG curves:", "",
             "| anchor | BD-rate vs Pillow JPEG | BD-PSNR vs Pillow JPEG | BD-rate vs anchor JPEG |",
             "|---|---|---|---|"]
    for key, label in ANCHORS.items():
        r, p = anchor(key, args.data)
        rows.append(f"| {label} | {bd_rate(jr, jp, r, p):+.1f}% | {bd_psnr(jr, jp, r, p):+.2f} dB "
                    f"| {bd_rate(ar, ap_, r, p):+.1f}% |")
    write_section("rd", "\n".join(rows), study)

    logs = {p.stem[: -len("_training")]: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_training.json"))}
    rows = ["| design | steps | steps/s | " + " | ".join(f"@{c['minutes']:.0f} min" for c in
                                                          max(logs.values(), key=lambda g: len(g["curve"]))["curve"])
            + " |"]
    rows.append("|---|---|---|" + "---|" * max(len(g["curve"]) for g in logs.values()))
    for name, g in logs.items():
        cells = []
        for c in g["curve"]:
            enh = f" (enh. {c['psnr_enhanced']:.2f})" if "psnr_enhanced" in c else ""
            cells.append(f"{c['bpp_likelihood']:.3f} bpp / {c['psnr']:.2f} dB{enh}")
        rows.append(f"| {name} | {g['steps']} | {g['steps_per_s']:.2f} | " + " | ".join(cells) + " |")
    write_section("training", "\n".join(rows), study)
    _plot(curves, (jr, jp), logs, args.data, study.with_suffix(".png"))


def _plot(curves, jpeg, logs, data: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    ax[0].plot(*jpeg, "k-o", ms=3, label="JPEG (Pillow, this run)")
    for key in ("jpeg2000", "compressai-bmshj2018-factorized_mse_cpu", "compressai-mbt2018-mean_mse_cpu"):
        ax[0].plot(*anchor(key, data), "--", lw=1, label=ANCHORS[key])
    for name, (r, p, _) in curves.items():
        ax[0].plot(r, p, "-s", ms=4, label=name)
    ax[0].set(xlabel="bpp (real streams)", ylabel="PSNR-RGB (dB)", title="Kodak, all 24 images", xlim=(0, 1.6),
              ylim=(22, 40))
    ax[0].grid(alpha=0.3)
    ax[0].legend(fontsize=7)
    for name, g in logs.items():
        mins = [c["minutes"] for c in g["curve"]]
        ax[1].plot(mins, [c.get("psnr_enhanced", c["psnr"]) for c in g["curve"]], "-o", label=name)
        ax[2].plot(mins, [c["bpp_likelihood"] for c in g["curve"]], "-o", label=name)
    ax[1].set(xlabel="training CPU-minutes (2 cores)", ylabel="PSNR (dB)", title="quality at the tracked point")
    ax[2].set(xlabel="training CPU-minutes (2 cores)", ylabel="bpp (model likelihood)",
              title="rate at the tracked point")
    for a in ax[1:]:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with kodak/, bsds500/, sunhays40/")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=24, help="Kodak images to evaluate (smoke tests only)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one design for a wall-clock budget")
    t.add_argument("design", choices=DESIGNS)
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--eval-every", type=int, default=10)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("rd", help="final RD curve of a trained design on Kodak (real bitstreams)")
    r.add_argument("design", choices=DESIGNS)
    sub.add_parser("jpeg", help="Pillow JPEG anchor on Kodak")
    sub.add_parser("report", help="write studies/IMAGE_STUDY.md tables and plot")
    a = ap.parse_args()
    {"train": cmd_train, "rd": cmd_rd, "jpeg": cmd_jpeg, "report": cmd_report}[a.cmd](a)
