"""Audio codec design study (issue 10): which neural codec design beats Opus at low bitrates on a CPU budget.

Designs, each trained on ``audio/{speech,music}_train_24k`` (never the ``*_eval_24k`` folders) for a
wall-clock budget on this machine, evaluated on every eval file with real nctk bitstreams:

* ``seanet``      -- SEANet encoder/decoder at EnCodec's 24 kHz size (32 filters, strides 8-5-4-2 = 75 Hz,
  2-layer LSTM, 128-d latent) + 8 x 1024 RVQ with quantizer dropout (1.5 / 3 / 6 kbps from one model),
  multi-scale mel + waveform L1 losses, no discriminator (the baseline).
* ``seanet-small`` -- the same family, 16 filters, no LSTM, 64-d latent (more steps per CPU-hour).
* ``mdct-rvq``    -- a fixed MDCT (20 ms hop, sine window), the 25-band log-energy envelope coded by an
  RVQ, residual VQ of the band-normalised low band (k-means + EMA codebooks, no gradient training), noise
  filling above it, frozen code tables as the entropy model, the inverse MDCT as decoder.

Every design codes its symbols with nctk's rANS through tables learned on the training set, so kbps is the
size of real streams. Usage::

    python studies/audio_study.py train mdct-rvq --minutes 40
    python studies/audio_study.py eval mdct-rvq          # final rate/quality table -> results JSON
    python studies/audio_study.py opus                   # Opus and Vorbis anchors, same metric
    python studies/audio_study.py report                 # tables + plot -> AUDIO_STUDY.md

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
import soundfile as sf
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))

from study_common import load_state, save_state, stream_bytes, train_on_budget  # noqa: E402

from nctk.codec.quant.residual_vq import ResidualVQ  # noqa: E402
from nctk.entropy.coder import chunk_counts, decode_chunks, encode_chunks  # noqa: E402
from nctk.entropy.tables import from_counts  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "audio"
CKPT = ROOT / "checkpoints" / "audio_study"
RESULTS = Path(__file__).with_name("audio_study_results")
SR = 24000
DESIGNS = ("seanet", "seanet-small", "mdct-rvq")
EVAL_SETS = ("speech_eval_24k", "music_eval_24k")


# ----------------------------------------------------------------------------------------------- data

def read_dir(folder: Path) -> list[tuple[str, np.ndarray]]:
    files = sorted(folder.glob("*.flac"))
    if not files:
        raise SystemExit(f"no .flac files under {folder}")
    out = []
    for f in files:
        x, sr = sf.read(f, dtype="float32", always_2d=True)
        if sr != SR:
            raise SystemExit(f"{f}: expected {SR} Hz, got {sr}")
        out.append((f.name, x.mean(axis=1)))
    return out


def train_audio(data: Path) -> list[np.ndarray]:
    return [x for d in ("speech_train_24k", "music_train_24k") for _, x in read_dir(data / d)]


def random_segments(clips: list[np.ndarray], n: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """[n, 1, length] random excerpts, each from a clip picked in proportion to its length."""
    lengths = torch.tensor([max(len(c) - length + 1, 0) for c in clips], dtype=torch.float64)
    out = []
    for i in torch.multinomial(lengths, n, replacement=True, generator=gen).tolist():
        c = clips[i]
        a = int(torch.randint(len(c) - length + 1, (1,), generator=gen))
        out.append(torch.from_numpy(c[a : a + length]))
    return torch.stack(out).unsqueeze(1)


# -------------------------------------------------------------------------------------------- metrics

_MEL = None


def log_mel(x: np.ndarray) -> torch.Tensor:
    """The issue's metric front end: 80 mel bins, n_fft 1024, hop 256, log10 magnitude, 1e-5 floor."""
    global _MEL
    if _MEL is None:
        import torchaudio

        _MEL = torchaudio.transforms.MelSpectrogram(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=80,
                                                    power=1.0)
    return torch.log10(_MEL(torch.as_tensor(x, dtype=torch.float32)).clamp_min(1e-5))


def logmel_distance(ref: np.ndarray, deg: np.ndarray) -> float:
    """Mean absolute difference of log-mel spectrograms (lower is better)."""
    return float((log_mel(ref) - log_mel(deg)).abs().mean())


def si_snr(ref: np.ndarray, deg: np.ndarray) -> float:
    """Scale-invariant SNR in dB (zero-mean signals)."""
    r = ref.astype(np.float64) - ref.mean()
    d = deg.astype(np.float64) - deg.mean()
    s = (d @ r) / max(r @ r, 1e-20) * r
    e = d - s
    return float(10 * np.log10(max(s @ s, 1e-20) / max(e @ e, 1e-20)))


LSD_FFT = 2048  # 11.7 Hz bins at 24 kHz: speech harmonics (F0 >= 80 Hz) are resolved, unlike on the mel scale
LSD_TOP_HZ = 4000.0


def lowband_lsd(ref: np.ndarray, deg: np.ndarray) -> float:
    """Log-spectral distance on linear-frequency bins below 4 kHz (log10 magnitude, 1e-5 floor, mean absolute
    difference, hop 256): the log-mel metric's form at a resolution that sees pitch harmonics, so noise
    excitation on a correct envelope scores badly here while a band-limited codec is not punished."""
    win = torch.hann_window(LSD_FFT, dtype=torch.float64)

    def spec(x: np.ndarray) -> torch.Tensor:
        s = torch.stft(torch.from_numpy(x.astype(np.float64)), LSD_FFT, 256, window=win, return_complex=True).abs()
        return torch.log10(s[: int(LSD_TOP_HZ * LSD_FFT / SR) + 1].clamp_min(1e-5))

    return float((spec(ref) - spec(deg)).abs().mean())


def quality(ref: np.ndarray, deg: np.ndarray) -> dict[str, float]:
    """Every per-file quality metric of the study (``deg`` already trimmed/padded to ``ref``'s length)."""
    return {"logmel": logmel_distance(ref, deg), "lsd4k": lowband_lsd(ref, deg), "si_snr": si_snr(ref, deg)}


def match_length(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


# ------------------------------------------------------------------------------- shared code tables

def stage_tables(counts: torch.Tensor) -> list:
    """One frozen table per RVQ stage from code counts [stages, K] (add-one: every code stays codable)."""
    return [from_counts(counts[s].double().numpy() + 1.0, 0, 16) for s in range(counts.shape[0])]


def count_codes(counts: torch.Tensor, codes: np.ndarray) -> None:
    """Add the histogram of each stage's codes (N, stages) to ``counts`` [stages, K]."""
    for s in range(codes.shape[1]):
        counts[s] += torch.bincount(torch.from_numpy(codes[:, s].astype(np.int64)), minlength=counts.shape[1]).float()


def code(symbols: np.ndarray, table) -> tuple[list[bytes], int]:
    s = np.ascontiguousarray(symbols.ravel(), dtype=np.int32)
    return encode_chunks(s, None, table), s.size


def decode(stream: tuple[list[bytes], int], table) -> np.ndarray:
    chunks, n = stream
    return decode_chunks(chunks, None, table, chunk_counts(n))


# --------------------------------------------------------------------------------- design: mdct-rvq

HOP = 480  # 20 ms at 24 kHz: 25 Hz per MDCT bin
BAND_EDGES = (0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128, 144, 160, 192, 224, 256,
              320, 384, 480)
VQ_BINS = 160  # bins 0..159 (0-4 kHz) get RVQ shapes; the bands above are noise-filled
ENV_DB = 10.0  # the envelope vector holds band levels in units of 10 dB
ENV_FLOOR_DB = -100.0  # band levels are clamped here; decoded levels near it mean silence
# nominal kbps -> (envelope RVQ stages, shape RVQ stages); the reported kbps are measured from the streams
MDCT_POINTS = {1.5: (3, 0), 3.0: (4, 3), 6.0: (4, 11)}  # ~0.47 kbps per envelope stage, ~0.35 per shape stage


def _mdct_basis() -> torch.Tensor:
    """[2N, N] windowed, orthonormal MDCT basis (sine window: Princen-Bradley, so TDAC is exact)."""
    n = torch.arange(2 * HOP, dtype=torch.float64).view(-1, 1)
    k = torch.arange(HOP, dtype=torch.float64).view(1, -1)
    win = torch.sin(math.pi * (n + 0.5) / (2 * HOP))
    return (win * math.sqrt(2.0 / HOP) * torch.cos(math.pi / HOP * (n + 0.5 + HOP / 2) * (k + 0.5))).float()


BASIS = _mdct_basis()


def mdct(x: np.ndarray) -> torch.Tensor:
    """[frames, N] coefficients; the signal is padded to whole frames plus one hop each side."""
    n = len(x)
    frames = -(-n // HOP) + 1
    xp = np.zeros((frames + 1) * HOP, np.float32)
    xp[HOP : HOP + n] = x
    blocks = torch.from_numpy(xp).unfold(0, 2 * HOP, HOP)
    return blocks @ BASIS


def imdct(c: torch.Tensor, n: int) -> np.ndarray:
    """Inverse of :func:`mdct` by overlap-add (time-domain aliasing cancels between neighbours)."""
    blocks = c @ BASIS.T  # [frames, 2N]
    frames = blocks.shape[0]
    out = F.fold(blocks.T.unsqueeze(0), (1, (frames + 1) * HOP), (1, 2 * HOP), stride=(1, HOP))
    return out.view(-1)[HOP : HOP + n].numpy()


def band_energy(c: torch.Tensor) -> torch.Tensor:
    """[frames, bands] RMS of each band."""
    return torch.stack([c[:, a:b].pow(2).mean(1).sqrt() for a, b in zip(BAND_EDGES[:-1], BAND_EDGES[1:],
                                                                       strict=True)], 1)


def envelope(c: torch.Tensor) -> torch.Tensor:
    """[frames, bands] band levels in units of ENV_DB, floored at ENV_FLOOR_DB: the vectors the envelope
    RVQ codes (a 25-d vector per frame; scalar coding of the same levels measured 2.6-3.7 kbps)."""
    return (20 * torch.log10(band_energy(c).clamp_min(1e-12))).clamp_min(ENV_FLOOR_DB) / ENV_DB


def envelope_rms(env: torch.Tensor) -> torch.Tensor:
    rms = 10 ** (env * ENV_DB / 20)
    return torch.where(env * ENV_DB < ENV_FLOOR_DB + 5, torch.zeros_like(rms), rms)


def expand_bands(v: torch.Tensor) -> torch.Tensor:
    """[frames, bands] -> [frames, N] (each band's value on its bins)."""
    widths = torch.tensor([b - a for a, b in zip(BAND_EDGES[:-1], BAND_EDGES[1:], strict=True)])
    return torch.repeat_interleave(v, widths, dim=1)


class MdctRvq(nn.Module):
    """Design 3: fixed MDCT; an RVQ-coded log band-energy envelope; RVQ of the band-normalised low band;
    noise filling above it; the inverse MDCT as decoder. No gradient training: k-means + EMA codebooks."""

    def __init__(self, env_stages: int = 4, shape_stages: int = 11):
        super().__init__()
        nb = len(BAND_EDGES) - 1
        self.env = ResidualVQ(nb, 1024, env_stages, decay=0.9, kmeans_init=True, kmeans_iters=20,
                              dead_code_threshold=0.5, seed=1)
        self.rvq = ResidualVQ(VQ_BINS, 1024, shape_stages, decay=0.9, kmeans_init=True, kmeans_iters=20,
                              dead_code_threshold=0.5)
        # Frozen code tables, filled after training (counts over the training set).
        self.register_buffer("env_counts", torch.zeros(env_stages, 1024))
        self.register_buffer("code_counts", torch.zeros(shape_stages, 1024))

    @staticmethod
    def shapes(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low-band coefficients over their band RMS, which frames are not silent there). The decoder
        renormalises each band to its decoded energy, so the encoder may normalise by the true one."""
        e = expand_bands(band_energy(c))[:, :VQ_BINS]
        live = e.max(1).values > 10 ** (ENV_FLOOR_DB / 20)
        return torch.where(e > 0, c[:, :VQ_BINS] / e.clamp_min(1e-12), torch.zeros_like(e)), live

    def train_step(self, clips_batch: list[torch.Tensor]) -> dict:
        envs, vecs = [], []
        for x in clips_batch:
            c = mdct(x.numpy())
            envs.append(envelope(c))
            v, live = self.shapes(c)
            vecs.append(v[live])
        _, _, s_env = self.env(torch.cat(envs))
        _, _, s_shape = self.rvq(torch.cat(vecs))
        return {"loss": float(s_env["commitment"] + s_shape["commitment"]),
                "env_usage": float(s_env["usage"].mean()), "usage": float(s_shape["usage"].mean())}

    def fit_tables(self, clips: list[np.ndarray]) -> None:
        self.env_counts.zero_()
        self.code_counts.zero_()
        for x in clips:
            c = mdct(x)
            for q, counts, x_ in ((self.env, self.env_counts, envelope(c)), (self.rvq, self.code_counts,
                                                                             self.shapes(c)[0])):
                count_codes(counts, q.to_codes(x_.numpy()))

    def tables(self):
        return stage_tables(self.env_counts), stage_tables(self.code_counts)

    def encode(self, x: np.ndarray, env_stages: int, shape_stages: int) -> list:
        """Streams: the envelope codes of each of the first ``env_stages`` stages, then the shape codes."""
        c = mdct(x)
        et, ct = self.tables()
        codes = self.env.to_codes(envelope(c).numpy(), env_stages)
        streams = [code(codes[:, s], et[s]) for s in range(env_stages)]
        if shape_stages:
            codes = self.rvq.to_codes(self.shapes(c)[0].numpy(), shape_stages)
            streams += [code(codes[:, s], ct[s]) for s in range(shape_stages)]
        return streams

    def decode(self, streams: list, n: int, env_stages: int, seed: int = 0) -> np.ndarray:
        """``n`` samples from :meth:`encode`'s streams (the noise filling is seeded: decoding is repeatable)."""
        et, ct = self.tables()
        codes = np.stack([decode(streams[s], et[s]) for s in range(env_stages)], 1).astype(np.int32)
        e = expand_bands(envelope_rms(torch.from_numpy(self.env.from_codes(codes))))
        gen = torch.Generator().manual_seed(seed)
        shape = torch.randn(e.shape, generator=gen)  # noise filling: unit-RMS Gaussian per band
        shape_stages = len(streams) - env_stages
        if shape_stages:
            codes = np.stack([decode(streams[env_stages + s], ct[s]) for s in range(shape_stages)], 1)
            shape[:, :VQ_BINS] = torch.from_numpy(self.rvq.from_codes(codes.astype(np.int32)))
        # Each band gets exactly its coded energy: RVQ shapes at few stages are too smooth (energy lost).
        rms = expand_bands(band_energy(shape)).clamp_min(1e-9)
        return imdct(shape / rms * e, n)


# ------------------------------------------------------------------------------ design: SEANet + RVQ

class ResUnit(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(nn.ELU(), nn.Conv1d(ch, ch // 2, 3, dilation=dilation, padding=dilation),
                                   nn.ELU(), nn.Conv1d(ch // 2, ch, 1))

    def forward(self, x):
        return x + self.block(x)


class Seanet(nn.Module):
    """SEANet-style encoder/decoder (written for nctk) with a residual VQ bottleneck."""

    def __init__(self, filters: int, ratios: tuple[int, ...], dim: int, lstm: bool, stages: int, res_units: int):
        super().__init__()
        self.hop = math.prod(ratios)
        enc: list[nn.Module] = [nn.Conv1d(1, filters, 7, padding=3)]
        ch = filters
        for r in reversed(ratios):  # fine to coarse: 2, 4, 5, 8 -> as EnCodec
            enc += [ResUnit(ch, 3**i) for i in range(res_units)]
            enc += [nn.ELU(), nn.Conv1d(ch, 2 * ch, 2 * r, stride=r, padding=math.ceil(r / 2))]
            ch *= 2
        self.enc = nn.Sequential(*enc)
        self.enc_lstm = nn.LSTM(ch, ch, 2, batch_first=True) if lstm else None
        self.enc_out = nn.Sequential(nn.ELU(), nn.Conv1d(ch, dim, 7, padding=3))
        self.dec_in = nn.Conv1d(dim, ch, 7, padding=3)
        self.dec_lstm = nn.LSTM(ch, ch, 2, batch_first=True) if lstm else None
        dec: list[nn.Module] = []
        for r in ratios:
            dec += [nn.ELU(), nn.ConvTranspose1d(ch, ch // 2, 2 * r, stride=r, padding=r // 2 + r % 2,
                                                 output_padding=r % 2)]
            ch //= 2
            dec += [ResUnit(ch, 3**i) for i in range(res_units)]
        dec += [nn.ELU(), nn.Conv1d(ch, 1, 7, padding=3)]
        self.dec = nn.Sequential(*dec)
        self.rvq = ResidualVQ(dim, 1024, stages, decay=0.99, kmeans_init=True, dead_code_threshold=1.0,
                              quantizer_dropout=1.0)
        self.register_buffer("code_counts", torch.zeros(stages, 1024))  # frozen code tables, set after training

    @staticmethod
    def _lstm(lstm, h):
        if lstm is None:
            return h
        y, _ = lstm(h.transpose(1, 2))
        return h + y.transpose(1, 2)

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, -x.shape[-1] % self.hop))  # whole frames
        return self.enc_out(self._lstm(self.enc_lstm, self.enc(x)))

    def decode_latent(self, z: torch.Tensor, n: int) -> torch.Tensor:
        y = self.dec(self._lstm(self.dec_lstm, self.dec_in(z)))
        return y[..., :n]

    def forward(self, x: torch.Tensor, n_stages: int | None = None):
        z = self.encode_latent(x)
        zq, codes, stats = self.rvq(z.transpose(1, 2), n_stages)
        return self.decode_latent(zq.transpose(1, 2), x.shape[-1]), stats


SEANET = {"seanet": dict(filters=32, ratios=(8, 5, 4, 2), dim=128, lstm=True, stages=8, res_units=1),
          "seanet-small": dict(filters=16, ratios=(8, 5, 4, 4), dim=64, lstm=False, stages=16, res_units=1)}


def seanet_points(design: str) -> dict[float, int]:
    """Nominal kbps -> RVQ stages: frame rate x 10 bits per stage."""
    frame_rate = SR / math.prod(SEANET[design]["ratios"])
    return {k: max(1, round(k * 1000 / (frame_rate * 10))) for k in (1.5, 3.0, 6.0)}


_MS_MELS: dict = {}


def multiscale_mel_loss(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 of log mel spectrograms at several resolutions (a reconstruction loss, not the metric)."""
    import torchaudio

    loss = 0.0
    for n_fft in (256, 512, 1024, 2048):
        if n_fft not in _MS_MELS:
            _MS_MELS[n_fft] = torchaudio.transforms.MelSpectrogram(SR, n_fft=n_fft, hop_length=n_fft // 4,
                                                                   n_mels=min(80, n_fft // 8), power=1.0)
        m = _MS_MELS[n_fft]
        loss = loss + (torch.log(m(y).clamp_min(1e-5)) - torch.log(m(x).clamp_min(1e-5))).abs().mean()
    return loss


# --------------------------------------------------------------------------------------- training

def build(design: str) -> nn.Module:
    if design == "mdct-rvq":
        return MdctRvq()
    if design in SEANET:
        return Seanet(**SEANET[design])
    raise SystemExit(f"unknown design {design!r}; choose one of {', '.join(DESIGNS)}")


def points(design: str) -> dict[float, int | tuple[int, int]]:
    return MDCT_POINTS if design == "mdct-rvq" else seanet_points(design)


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    clips = train_audio(args.data)
    evalset = eval_files(args.data, args.limit)
    model = build(args.design).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=3e-4, betas=(0.5, 0.9)) if params else None
    out = CKPT / args.design
    out.mkdir(parents=True, exist_ok=True)
    log = {"design": args.design, "minutes": args.minutes, "threads": args.threads, "curve": [],
           "parameters": sum(p.numel() for p in params), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    seconds = args.seconds or (10.0 if args.design == "mdct-rvq" else 1.0)  # mdct: >= 1024 vectors/batch

    def step(x: torch.Tensor) -> dict:
        if args.design == "mdct-rvq":
            with torch.no_grad():
                return model.train_step(list(x[:, 0]))
        y, q = model(x)
        wave = F.l1_loss(y, x)
        mel = multiscale_mel_loss(y[:, 0], x[:, 0])
        loss = mel + 0.1 * wave + q["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return {"loss": float(loss), "mel": float(mel), "usage": float(q["usage"].mean())}

    def evaluate_now() -> tuple[dict, float]:
        fitting = 0.0
        if args.design == "mdct-rvq":  # its entropy model is counted as training time
            t_fit = time.perf_counter()
            model.fit_tables(clips)
            fitting = time.perf_counter() - t_fit
        return evaluate(args.design, model, evalset, max(points(args.design)), bitstreams=False), fitting

    train_on_budget(model, out, log, args.minutes, args.eval_every,
                    next_batch=lambda: random_segments(clips, args.batch, int(seconds * SR), gen),
                    step=step, describe=str, evaluate=evaluate_now, window=20)
    if args.design != "mdct-rvq":
        model.eval()
        model_tables(model, clips)  # the code tables, learned once at the end (seconds)
        save_state(model, out / "model.safetensors")
    (out / "log.json").write_text(json.dumps(log, indent=1))
    if args.limit:
        print("smoke run (--limit): results not written")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.design}_training.json").write_text(json.dumps(log, indent=1))
    print(f"trained {log['steps']} steps in {log['steps'] / log['steps_per_s'] / 60:.1f} min "
          f"({log['steps_per_s']:.3f} steps/s)")


# --------------------------------------------------------------------------- SEANet bitstreams

def model_tables(model: Seanet, clips: list[np.ndarray]) -> None:
    """Frozen per-stage code tables from the training clips' codes (stored as a buffer)."""
    counts = torch.zeros(model.rvq.num_stages, 1024)
    with torch.no_grad():
        for x in clips:
            z = model.encode_latent(torch.from_numpy(x).view(1, 1, -1))
            count_codes(counts, model.rvq.to_codes(z[0].T.contiguous().numpy()))
    model.code_counts.copy_(counts)


def seanet_encode(model: Seanet, x: np.ndarray, stages: int) -> list:
    z = model.encode_latent(torch.from_numpy(x).view(1, 1, -1))
    codes = model.rvq.to_codes(z[0].T.contiguous().numpy(), stages)
    tabs = stage_tables(model.code_counts)
    return [code(codes[:, s], tabs[s]) for s in range(stages)]


def seanet_decode(model: Seanet, streams: list, n: int) -> np.ndarray:
    tabs = stage_tables(model.code_counts)
    codes = np.stack([decode(s, tabs[i]) for i, s in enumerate(streams)], 1).astype(np.int32)
    zq = torch.from_numpy(model.rvq.from_codes(codes)).T.unsqueeze(0)
    return model.decode_latent(zq, n)[0, 0].numpy()


# ----------------------------------------------------------------------------------- evaluation

def eval_files(data: Path, limit: int = 0) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for d in EVAL_SETS:
        files = read_dir(data / d)
        out += [(d.split("_")[0], name, x) for name, x in (files[:limit] if limit else files)]
    return out


@torch.no_grad()
def evaluate(design: str, model, files, kbps: float, bitstreams: bool = True) -> dict:
    """Mean metrics per set at one nominal rate; real streams and timings when ``bitstreams``."""
    stages = points(design)[kbps]
    acc: dict[str, dict[str, list[float]]] = {}
    for kind, _, x in files:
        t0 = time.perf_counter()
        if design == "mdct-rvq":
            streams = model.encode(x, *stages)
        elif bitstreams:
            streams = seanet_encode(model, x, stages)
        else:
            y, _ = model(torch.from_numpy(x).view(1, 1, -1), stages)
            y = y[0, 0].numpy()
        t1 = time.perf_counter()
        if design == "mdct-rvq":
            y = model.decode(streams, len(x), stages[0])
        elif bitstreams:
            y = seanet_decode(model, streams, len(x))
        t2 = time.perf_counter()
        dur = len(x) / SR
        a = acc.setdefault(kind, {"kbps": [], "logmel": [], "lsd4k": [], "si_snr": [], "enc_xrt": [],
                                  "dec_xrt": []})
        y = match_length(y, len(x))
        if bitstreams or design == "mdct-rvq":
            a["kbps"].append(stream_bytes(streams) * 8 / dur / 1000)
            a["enc_xrt"].append(dur / max(t1 - t0, 1e-9))
            a["dec_xrt"].append(dur / max(t2 - t1, 1e-9))
        else:
            a["kbps"].append(stages * 10 * SR / model.hop / 1000)  # codes x bits per code, labelled nominal
        for k, v in quality(x, y).items():
            a[k].append(v)
    return {kind: {k: float(np.mean(v)) for k, v in a.items() if v} for kind, a in acc.items()}


def cmd_eval(args) -> None:
    torch.set_num_threads(args.threads)
    model = load_state(build(args.design), CKPT / args.design / "model.safetensors")
    files = eval_files(args.data, args.limit)
    rows = []
    for kbps in points(args.design):
        r = evaluate(args.design, model, files, kbps)
        r["nominal_kbps"] = kbps
        rows.append(r)
        print(f"{args.design} @ {kbps} kbps: {r}", flush=True)
    if args.limit:
        print("smoke run (--limit): results not written")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.design}_eval.json").write_text(json.dumps({"name": args.design, "points": rows}, indent=1))


def cmd_opus(args) -> None:
    """Opus and Vorbis through libsndfile at a sweep of compression levels, same files and metric."""
    files = eval_files(args.data, args.limit)
    rows = []
    sweeps = [("OPUS", lv) for lv in (1.0, 0.99, 0.98, 0.97, 0.95, 0.9)] + [("VORBIS", lv) for lv in (1.0, 0.9)]
    for subtype, level in sweeps:
        acc: dict[str, dict[str, list[float]]] = {}
        for kind, _, x in files:
            buf = io.BytesIO()
            t0 = time.perf_counter()
            sf.write(buf, x, SR, format="OGG", subtype=subtype, compression_level=level)
            t1 = time.perf_counter()
            buf.seek(0)
            y, _ = sf.read(buf, dtype="float32")
            t2 = time.perf_counter()
            y = match_length(y, len(x))
            dur = len(x) / SR
            a = acc.setdefault(kind, {"kbps": [], "logmel": [], "lsd4k": [], "si_snr": [], "enc_xrt": [],
                                      "dec_xrt": []})
            a["kbps"].append(len(buf.getvalue()) * 8 / dur / 1000)
            for k, v in quality(x, y).items():
                a[k].append(v)
            a["enc_xrt"].append(dur / (t1 - t0))
            a["dec_xrt"].append(dur / (t2 - t1))
        row = {kind: {k: float(np.mean(v)) for k, v in a.items()} for kind, a in acc.items()}
        row["codec"], row["level"] = subtype.lower(), level
        rows.append(row)
        print(row, flush=True)
    if args.limit:
        print("smoke run (--limit): results not written")
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "anchors_eval.json").write_text(json.dumps({"name": "opus/vorbis", "points": rows}, indent=1))


def cmd_report(args) -> None:
    """Tables and a plot from the JSON results into AUDIO_STUDY.md's generated sections."""
    from study_common import write_section

    study = Path(__file__).with_name("AUDIO_STUDY.md")
    rows = ["| codec | nominal | speech kbps | speech log-mel | speech LSD<4k | speech SI-SNR | music kbps "
            "| music log-mel | music LSD<4k | music SI-SNR | enc x RT | dec x RT |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    series: dict[str, list] = {}

    def add(name: str, nominal: str, r: dict) -> None:
        sp, mu = r["speech"], r.get("music", {})
        nan = float("nan")
        rows.append(f"| {name} | {nominal} | {sp['kbps']:.2f} | {sp['logmel']:.3f} | {sp.get('lsd4k', nan):.3f} "
                    f"| {sp['si_snr']:.1f} | {mu.get('kbps', nan):.2f} | {mu.get('logmel', nan):.3f} "
                    f"| {mu.get('lsd4k', nan):.3f} | {mu.get('si_snr', nan):.1f} | {sp.get('enc_xrt', nan):.0f} "
                    f"| {sp.get('dec_xrt', nan):.0f} |")
        series.setdefault(name, []).append((sp["kbps"], sp["logmel"], mu.get("kbps"), mu.get("logmel")))

    anchors = RESULTS / "anchors_eval.json"
    if anchors.exists():
        for r in json.loads(anchors.read_text())["points"]:
            add(r["codec"], f"level {r['level']}", r)
    for p in sorted(RESULTS.glob("*_eval.json")):
        if p.name != "anchors_eval.json":
            d = json.loads(p.read_text())
            for r in d["points"]:
                add(d["name"], f"{r['nominal_kbps']} kbps", r)
    write_section("rates", "\n".join(rows), study)

    logs = {p.stem[: -len("_training")]: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*_training.json"))}
    rows = ["| design | parameters | steps | steps/s | speech log-mel at the top rate, by training minutes |",
            "|---|---|---|---|---|"]
    for name, g in logs.items():
        cells = ", ".join(f"{c['speech']['logmel']:.3f} @ {c['minutes']:.0f} min" for c in g["curve"])
        rows.append(f"| {name} | {g['parameters']:,} | {g['steps']} | {g['steps_per_s']:.2f} | {cells} |")
    write_section("training", "\n".join(rows), study)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    for name, pts in series.items():
        style = "k--o" if name == "opus" else ("-s" if name not in ("vorbis",) else "k:^")
        ax[0].plot([p[0] for p in pts], [p[1] for p in pts], style, ms=4, label=name)
        if pts[0][2] is not None:
            ax[1].plot([p[2] for p in pts], [p[3] for p in pts], style, ms=4, label=name)
    for a, t in zip(ax[:2], ("speech (eval)", "music (eval)"), strict=True):
        a.set(xlabel="kbps (real streams)", ylabel="log-mel distance (lower is better)", title=t, xlim=(0, 30))
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    for name, g in logs.items():
        ax[2].plot([c["minutes"] for c in g["curve"]], [c["speech"]["logmel"] for c in g["curve"]], "-o", label=name)
    ax[2].set(xlabel="training CPU-minutes (2 cores)", ylabel="speech log-mel distance", title="training")
    ax[2].grid(alpha=0.3)
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(study.with_suffix(".png"), dpi=90)
    print(f"wrote {study.with_suffix('.png')}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="folder with the *_train_24k / *_eval_24k folders")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="eval files per set (smoke tests only; 0 = all)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one design for a wall-clock budget")
    t.add_argument("design", choices=DESIGNS)
    t.add_argument("--minutes", type=float, default=40.0)
    t.add_argument("--eval-every", type=int, default=10)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seconds", type=float, default=None, help="segment length (default 1 s; mdct-rvq 10 s)")
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval", help="final rate/quality table of a trained design (real bitstreams)")
    e.add_argument("design", choices=DESIGNS)
    sub.add_parser("opus", help="Opus / Vorbis anchors on the eval files")
    sub.add_parser("report", help="write studies/AUDIO_STUDY.md tables and plot")
    a = ap.parse_args()
    {"train": cmd_train, "eval": cmd_eval, "opus": cmd_opus, "report": cmd_report}[a.cmd](a)
