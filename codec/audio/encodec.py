"""EnCodec checkpoints through nctk: the SEANet + RVQ model, exact codes, streaming without seams.

Loads a state dict of Meta's ``encodec`` package (``EncodecModel.state_dict()``, e.g. the published
``encodec_24khz-d7cc33bc.th``) by its own parameter names, from a ``.th``/``.pt`` file (``torch.load`` with
``weights_only=True``: no code in a pickle ever runs), a safetensors file, or a dict. Weight norm is folded
into plain weights at load (``torch._weight_norm``, the package's own formula, so the weights are bit-identical
to the ones it computes on every forward).

::

    from nctk.codec.audio import encodec
    model = encodec.load("encodec_24khz-d7cc33bc.th")        # or encodec.load(state_dict)
    enc = model.encode(wav, bandwidth=6.0)                  # wav (channels, T) or (T,) float
    enc.codes                                               # (n_q, frames) int32: 8 codebooks at 6 kbps
    out = model.decode(enc)                                 # (channels, T) float32

    s = model.stream_encoder(bandwidth=6.0)                  # 24 kHz (causal) model: streaming
    for pcm in chunks:
        codes = s.feed(pcm)                                 # (n_q, k): every frame no later sample changes
    codes = s.flush()                                       # the rest (end-of-signal padding)
    d = model.stream_decoder()
    pcm = d.feed(codes); pcm = d.flush()                    # (channels, k * 320)

**Exact codes.** The SEANet layers run on :mod:`.seanet_numba` (every element by a fixed sequence of float32
operations, see :mod:`.seanet_ref`), the RVQ on :mod:`nctk.codec.kernels.rvq_numba` (the exact codes of
:mod:`nctk.codec.kernels.rvq_ref`: the codeword at the smallest float64 distance, ties to the lowest index).
So a given input has one set of codes on every machine and thread count, and encoding in chunks of any
size gives exactly the codes of encoding the whole signal. The ``encodec`` package ranks codewords by float32
``|x|^2 - 2 x.c + |c|^2`` from its own summation order; where two codewords are that close (a near tie) its
code may differ from the exact one: tests/test_encodec_reference.py measures how often (well under 1% of
frames).

**Streaming (24 kHz model).** :class:`StreamEncoder` returns the code of frame ``t`` as soon as its 320
samples are in, except at the start: EnCodec pads every convolution on the left by reflecting the signal,
and the encoder's last convolution (7 taps at the frame rate) reflects frames 1..6, so the first codes come
out once 7 frames (2240 samples, 93 ms) are in, then one frame per 320 samples. :class:`StreamDecoder` returns
320 samples per frame, the first 7 frames' samples once the 7th frame is in (the decoder's first convolution
reflects the same way). ``flush()`` applies EnCodec's end-of-signal padding. State is a few kernel widths of
activations per layer plus the LSTMs' ``(h, c)``, whatever the length.

**48 kHz stereo model.** Non-causal, with GroupNorm over each 1 s segment and each segment normalised by its
RMS (``scale``), exactly as the package: segments of 48000 samples every 47520, decoded and overlap-added
with linear fades. Its codes are chunk-invariant too, but a segment is the unit: :class:`SegmentStreamEncoder`
returns a segment's ``(codes, scale)`` once all of its 48000 samples are in (1 s latency), and
:class:`SegmentStreamDecoder` returns samples up to the next segment's start once a segment is decoded.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nctk.codec.audio.seanet import Decoder, Encoder, SEANetConfig, param_shapes
from nctk.entropy.errors import CodecError

__all__ = [
    "ENCODEC_24KHZ", "ENCODEC_48KHZ", "EncodecConfig", "EncodecModel", "EncodedAudio", "SegmentStreamDecoder",
    "SegmentStreamEncoder", "StreamDecoder", "StreamEncoder", "load", "random_state_dict", "read_checkpoint",
]

ENCODE_BLOCK = 1 << 16  # samples per step when a whole file is encoded through the stream (~45 MB of activations)
DECODE_BLOCK = 256  # frames per step when decoding


@dataclass(frozen=True)
class EncodecConfig:
    """The arguments of ``EncodecModel._get_model`` (and the quantizer's codebook size)."""

    name: str
    sample_rate: int
    target_bandwidths: tuple[float, ...]
    seanet: SEANetConfig
    normalize: bool = False
    segment: float | None = None  # seconds
    overlap: float = 0.01
    bins: int = 1024

    @property
    def channels(self) -> int:
        return self.seanet.channels

    @property
    def hop_length(self) -> int:
        return self.seanet.hop_length

    @property
    def frame_rate(self) -> int:
        return math.ceil(self.sample_rate / self.hop_length)

    @property
    def n_q(self) -> int:
        """Codebooks in the model (32 at 24 kHz, 16 at 48 kHz)."""
        return int(1000 * self.target_bandwidths[-1] // (self.frame_rate * 10))

    @property
    def segment_length(self) -> int | None:
        return None if self.segment is None else int(self.segment * self.sample_rate)

    @property
    def segment_stride(self) -> int | None:
        n = self.segment_length
        return None if n is None else max(1, int((1 - self.overlap) * n))

    def codebooks_for(self, bandwidth: float | None) -> int:
        """How many codebooks a bandwidth (kbps) uses; None: all of them. Only the model's own bandwidths."""
        if bandwidth is None:
            return self.n_q
        if bandwidth not in self.target_bandwidths:
            raise CodecError(f"{self.name} codes at {', '.join(f'{b:g}' for b in self.target_bandwidths)} kbps, "
                             f"not {bandwidth!r}")
        per_q = math.log2(self.bins) * self.frame_rate / 1000
        return int(max(1, math.floor(bandwidth / per_q)))


ENCODEC_24KHZ = EncodecConfig("encodec_24khz", 24_000, (1.5, 3.0, 6.0, 12.0, 24.0),
                              SEANetConfig(channels=1, causal=True, norm="weight_norm"))
ENCODEC_48KHZ = EncodecConfig("encodec_48khz", 48_000, (3.0, 6.0, 12.0, 24.0),
                              SEANetConfig(channels=2, causal=False, norm="time_group_norm"),
                              normalize=True, segment=1.0)
CONFIGS = {"24khz": ENCODEC_24KHZ, "48khz": ENCODEC_48KHZ}


# ------------------------------------------------------------------------------------------ checkpoints

_CODEBOOK = "quantizer.vq.layers.{}._codebook.embed"
_IGNORED_BUFFERS = ("inited", "cluster_size", "embed_avg")  # training state of EnCodec's EMA codebooks


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The tensors of a checkpoint file: safetensors, or a torch file loaded with ``weights_only=True``.
    Anything else (a pickle that would run code, a truncated or foreign file) is one :class:`CodecError`."""
    import torch

    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise CodecError(f"cannot read checkpoint {str(path)!r}: {e.strerror or e}") from None
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: u64 header length, then a JSON header
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path)))
        except Exception as e:  # the parser's own error types
            raise CodecError(f"checkpoint {path.name!r} is not a valid safetensors file ({e})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the refusal below says enough
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code or foreign objects, RuntimeError for broken zips, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CodecError(f"checkpoint {path.name!r} cannot be loaded as plain weights (torch.load with "
                         f"weights_only=True refused it: {first[:300]})") from None
    if not isinstance(obj, Mapping):
        raise CodecError(f"checkpoint {path.name!r} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def _as_array(name: str, value: Any) -> Any:
    """A float32 torch tensor from a tensor or numpy array; CodecError for anything else."""
    import torch

    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            raise CodecError(f"checkpoint tensor {name!r} has dtype {value.dtype}, not a floating type")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise CodecError(f"checkpoint entry {name!r} is a {type(value).__name__}, not a tensor")
    if not value.is_floating_point():
        raise CodecError(f"checkpoint tensor {name!r} has dtype {value.dtype}, not a floating type")
    value = value.detach().to("cpu", torch.float32).contiguous()
    if not bool(torch.isfinite(value).all()):
        raise CodecError(f"checkpoint tensor {name!r} has NaN or infinite values")
    return value


def infer_config(state: Mapping[str, Any]) -> EncodecConfig:
    """24 kHz mono (weight norm) or 48 kHz stereo (group norm), from the first convolution."""
    base = "encoder.model.0.conv.conv."
    w = next((state[base + k] for k in ("weight_v", "weight", "parametrizations.weight.original1")
              if base + k in state), None)
    shape = tuple(getattr(w, "shape", ()))
    group_norm = "encoder.model.0.conv.norm.weight" in state
    if len(shape) == 3 and shape[1] == 1 and not group_norm:
        return ENCODEC_24KHZ
    if len(shape) == 3 and shape[1] == 2 and group_norm:
        return ENCODEC_48KHZ
    raise CodecError("the state dict is neither EnCodec's 24 kHz nor its 48 kHz model (first convolution "
                     f"{base}weight{'_v' if not group_norm else ''} has shape {shape or 'missing'}); "
                     "pass config= for another architecture")


def canonical_weights(state: Mapping[str, Any], cfg: EncodecConfig) -> dict[str, np.ndarray]:
    """Every tensor the model needs, float32 numpy, weight norm folded, under the names of
    :func:`.seanet.param_shapes`; :class:`CodecError` naming the first missing, unexpected or misshapen ones."""
    import torch

    if not isinstance(state, Mapping):
        raise CodecError(f"a state dict (a mapping of names to tensors) is needed, not {type(state).__name__}")
    shapes = {**param_shapes(cfg.seanet, "encoder"), **param_shapes(cfg.seanet, "decoder")}
    dim = cfg.seanet.dimension
    for i in range(cfg.n_q):
        shapes[_CODEBOOK.format(i)] = (cfg.bins, dim)
    keys = set(state)
    used: set[str] = set()
    ignored = {f"quantizer.vq.layers.{i}._codebook.{b}" for i in range(cfg.n_q) for b in _IGNORED_BUFFERS}
    out: dict[str, np.ndarray] = {}
    missing: list[str] = []
    problems: list[str] = []
    weight_norm = cfg.seanet.norm == "weight_norm"
    for name, shape in shapes.items():
        base = name[: -len(".weight")]
        forms = [[name]]
        if weight_norm and name.endswith((".conv.conv.weight", ".convtr.convtr.weight")):
            forms = [[base + ".weight_g", base + ".weight_v"],
                     [base + ".parametrizations.weight.original0", base + ".parametrizations.weight.original1"],
                     [name]]
        form = next((f for f in forms if all(k in keys for k in f)), None)
        if form is None:
            missing.append(forms[0][-1] if len(forms[0]) == 1 else forms[0][1])
            continue
        used.update(form)
        if len(form) == 2:  # weight norm: g (dim 0 kept), v
            g, v = (_as_array(k, state[k]) for k in form)
            gshape = (shape[0],) + (1,) * (len(shape) - 1)
            if tuple(v.shape) != shape or tuple(g.shape) != gshape:
                problems.append(f"{form[1]} {tuple(v.shape)} / {form[0]} {tuple(g.shape)}, "
                                f"expected {shape} / {gshape}")
                continue
            w = torch._weight_norm(v, g, 0)
        else:
            w = _as_array(form[0], state[form[0]])
            if tuple(w.shape) != shape:
                problems.append(f"{form[0]} {tuple(w.shape)}, expected {shape}")
                continue
        out[name] = w.numpy()
    unexpected = sorted(keys - used - ignored)
    if missing or unexpected or problems:
        parts = []
        if missing:
            more = ", ..." if len(missing) > 3 else ""
            parts.append(f"missing {len(missing)} tensors ({', '.join(missing[:3])}{more})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(map(str, unexpected[:3]))}"
                         f"{', ...' if len(unexpected) > 3 else ''})")
        if problems:
            parts.append(f"wrong shapes: {'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}")
        raise CodecError(f"not an {cfg.name} state dict: {'; '.join(parts)}")
    return out


def random_state_dict(config: EncodecConfig | str = ENCODEC_24KHZ, seed: int = 0) -> dict[str, Any]:
    """A state dict in the ``encodec`` package's layout (``weight_g``/``weight_v`` for weight-normalised
    convolutions, the codebooks' training buffers included) with random weights scaled to keep activations
    near unit size: for tests and benchmarks, since no checkpoint ships and nothing downloads."""
    import torch

    cfg = CONFIGS[config] if isinstance(config, str) else config
    gen = torch.Generator().manual_seed(seed)
    shapes = {**param_shapes(cfg.seanet, "encoder"), **param_shapes(cfg.seanet, "decoder")}
    state: dict[str, Any] = {}
    for name, shape in shapes.items():
        if name.endswith(("conv.conv.weight", "convtr.convtr.weight")):
            # a transposed convolution of kernel 2s and stride s adds 2 taps of each input channel per output
            fan_in = shape[1] * shape[2] if ".conv.conv." in name else 2 * shape[0]
            w = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
            if cfg.seanet.norm == "weight_norm":
                base = name[: -len(".weight")]
                state[base + ".weight_g"] = torch.linalg.vector_norm(w.reshape(shape[0], -1), dim=1).reshape(
                    (shape[0],) + (1,) * (len(shape) - 1))
                state[base + ".weight_v"] = w * (1 + torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=gen))
                continue
            state[name] = w
        elif ".norm." in name:
            state[name] = (1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(shape, generator=gen)
        elif ".lstm." in name:
            bound = 1 / math.sqrt(shape[-1] if "weight" in name else shape[0] // 4)
            state[name] = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        else:  # convolution biases
            state[name] = 0.05 * torch.randn(shape, generator=gen)
    dim = cfg.seanet.dimension
    for i in range(cfg.n_q):
        embed = torch.randn((cfg.bins, dim), generator=gen) * (0.2 * 0.8**i)
        state[_CODEBOOK.format(i)] = embed
        prefix = f"quantizer.vq.layers.{i}._codebook."
        state[prefix + "inited"] = torch.ones(1)
        state[prefix + "cluster_size"] = torch.ones(cfg.bins)
        state[prefix + "embed_avg"] = embed.clone()
    return state


def load(source: str | os.PathLike | Mapping[str, Any], config: EncodecConfig | str | None = None) -> EncodecModel:
    """An :class:`EncodecModel` from a checkpoint path or a state dict (``encodec``'s parameter names).

    ``config``: :data:`ENCODEC_24KHZ`, :data:`ENCODEC_48KHZ`, ``"24khz"``/``"48khz"``, or None to tell them
    apart from the weights. Any problem with the checkpoint is one :class:`CodecError`."""
    if isinstance(source, (str, os.PathLike)):
        state = read_checkpoint(source)
    elif isinstance(source, Mapping):
        state = source
    else:
        raise CodecError(f"load() takes a checkpoint path or a state dict, not a {type(source).__name__}")
    if isinstance(config, str):
        if config not in CONFIGS:
            raise CodecError(f"unknown EnCodec config {config!r}; known: {', '.join(CONFIGS)}")
        config = CONFIGS[config]
    cfg = config if config is not None else infer_config(state)
    return EncodecModel(cfg, canonical_weights(state, cfg))


# ------------------------------------------------------------------------------------------ the model


class ExactRVQ:
    """:func:`nctk.codec.kernels.rvq_numba.encode` (the exact codes of ``rvq_ref``) with its per-codebook tables
    made once: that function derives them on every call (~1 ms per codebook), which a stream encoding a frame
    at a time cannot afford. Same path as its large-D branch: one float32 product per block and stage
    screens the codewords (``[r, 1] @ [-2 C^T; |c|^2]``), ``rvq_numba._select_rows`` settles every code
    exactly; inputs it would send elsewhere (small D, scales float32 cannot screen) go to ``encode`` itself."""

    BLOCK = 2048

    def __init__(self, codebooks: np.ndarray):
        from nctk.codec.kernels import rvq_numba as rq

        self.cb = codebooks
        stages, bins, dim = codebooks.shape
        self.cn, self.cmax = rq._stage_tables(codebooks)
        self.coef = 2.0 * rq._gamma(dim + 3) + 16.0 * rq.U32
        self.ib = max(1, int(bins - 1).bit_length())
        self.aug: list[Any] = [None] * stages

    def _aug(self, s: int) -> Any:
        if self.aug[s] is None:
            import torch

            a = np.concatenate([-2.0 * self.cb[s].T, self.cn[s][None, :]], axis=0)
            self.aug[s] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        return self.aug[s]

    def encode(self, x: np.ndarray, n_q: int) -> np.ndarray:
        """Codes (N, n_q) int32 of x (N, D), equal to ``rvq_ref.encode_reference(x, codebooks, n_q)``."""
        import torch

        from nctk.codec.kernels import rvq_numba as rq

        x = np.ascontiguousarray(x, dtype=np.float32)
        n, dim = x.shape
        if not np.isfinite(x).all():
            raise CodecError("the encoder produced non-finite values (are the weights sane?)")
        xn = max(abs(float(x.max())), abs(float(x.min()))) * math.sqrt(dim) if n else 0.0
        scale = xn + 2.0 * float(self.cmax[:n_q].sum())
        if dim <= rq.SMALL_D or not math.isfinite(scale) or (dim + 4) * scale * scale > rq.MAX_SCALE2:
            return rq.encode(x, self.cb, n_q)
        codes = np.empty((n, n_q), np.int32)
        # One torch thread, as rvq_numba does: these products are small (a block of frames), and waking
        # torch's thread pool for each costs more than it saves (milliseconds when the machine is busy).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for a in range(0, n, self.BLOCK):
                m = min(self.BLOCK, n - a)
                res = np.empty((m, dim + 1), np.float32)
                res[:, :dim] = x[a : a + m]
                res[:, dim] = 1.0
                g = torch.empty((m, self.cb.shape[1]), dtype=torch.float32)
                out = codes[a : a + m]
                for s in range(n_q):
                    torch.matmul(torch.from_numpy(res), self._aug(s), out=g)
                    rq._select_rows(res, g.numpy(), self.cb[s], self.cmax[s], self.coef, self.ib, out, s)
        finally:
            torch.set_num_threads(threads)
        return codes


@dataclass
class EncodedAudio:
    """RVQ codes of one signal: ``codes`` (n_q, frames) int32; for the 48 kHz model the frames of every
    segment one after the other, and ``scales`` (one per segment)."""

    codes: np.ndarray
    length: int  # samples per channel of the input (decode trims to it)
    sample_rate: int
    channels: int
    scales: np.ndarray | None = field(default=None)

    @property
    def n_q(self) -> int:
        return int(self.codes.shape[0])


class EncodecModel:
    """EnCodec on nctk's exact kernels (inference only). Build it with :func:`load`."""

    def __init__(self, config: EncodecConfig, weights: Mapping[str, np.ndarray]):
        self.config = config
        self.encoder = Encoder(config.seanet, weights)
        self.decoder = Decoder(config.seanet, weights)
        self.codebooks = np.ascontiguousarray(
            np.stack([weights[_CODEBOOK.format(i)] for i in range(config.n_q)]), dtype=np.float32)
        self.rvq = ExactRVQ(self.codebooks)

    sample_rate = property(lambda self: self.config.sample_rate)
    channels = property(lambda self: self.config.channels)
    hop_length = property(lambda self: self.config.hop_length)
    frame_rate = property(lambda self: self.config.frame_rate)

    def __repr__(self) -> str:
        c = self.config
        return (f"EncodecModel({c.name}: {c.sample_rate} Hz, {c.channels} channel(s), {c.n_q} codebooks of "
                f"{c.bins}, {'/'.join(f'{b:g}' for b in c.target_bandwidths)} kbps)")

    # ---- pieces

    def audio(self, wav: Any) -> np.ndarray:
        """Input audio as time-major float32 (T, channels): from (channels, T), or (T,) for mono; numpy or
        torch."""
        if hasattr(wav, "detach") and hasattr(wav, "cpu"):
            wav = wav.detach().cpu().numpy()
        a = np.asarray(wav)
        if a.dtype.kind != "f":
            raise CodecError(f"audio must be floating point samples (about -1..1), not {a.dtype}")
        if a.ndim == 1 and self.channels == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[0] != self.channels:
            raise CodecError(f"{self.config.name} takes audio of shape ({self.channels}, samples)"
                             f"{' or (samples,)' if self.channels == 1 else ''}, not {a.shape}")
        if not np.isfinite(a).all():
            raise CodecError("audio has NaN or infinite samples")
        return np.ascontiguousarray(a.T, dtype=np.float32)

    def quantize(self, emb: np.ndarray, n_q: int) -> np.ndarray:
        """Exact RVQ codes (n_q, frames) int32 of embeddings (frames, dimension)."""
        if emb.shape[0] == 0:
            return np.zeros((n_q, 0), np.int32)
        return np.ascontiguousarray(self.rvq.encode(emb, n_q).T)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Embeddings (frames, dimension): the codewords' float32 sum, stage by stage (the package's order)."""
        from nctk.codec.kernels import rvq_ref

        codes = self.check_codes(codes)
        if codes.shape[1] == 0:
            return np.zeros((0, self.config.seanet.dimension), np.float32)
        return rvq_ref.decode_reference(codes.T, self.codebooks)  # numpy float32 adds: it is the definition

    def check_codes(self, codes: Any) -> np.ndarray:
        c = np.asarray(codes)
        if c.ndim != 2 or not 1 <= c.shape[0] <= self.config.n_q or c.dtype.kind not in "iu":
            raise CodecError(f"codes must be integers of shape (n_q, frames) with 1 <= n_q <= {self.config.n_q}; "
                             f"got {c.dtype} {c.shape}")
        if c.size and (c.min() < 0 or c.max() >= self.config.bins):
            raise CodecError(f"codes must be in [0, {self.config.bins})")
        return c.astype(np.int64, copy=False)

    def segments(self, length: int) -> list[tuple[int, int]]:
        """(offset, samples) of each segment the package codes separately; one segment if the model has none."""
        seg, stride = self.config.segment_length, self.config.segment_stride
        if seg is None:
            return [(0, length)] if length else []
        return [(o, min(seg, length - o)) for o in range(0, length, stride)]

    def frames(self, length: int) -> int:
        """Frames the codes of ``length`` samples have."""
        return sum(-(-n // self.hop_length) for _, n in self.segments(length))

    # ---- whole signals

    def encode(self, wav: Any, bandwidth: float | None = None) -> EncodedAudio:
        """Codes of a whole signal (bounded memory: the causal model streams it in blocks, with the same
        codes as one piece)."""
        x = self.audio(wav)
        n_q = self.config.codebooks_for(bandwidth)
        if self.config.segment is None:
            s = self.stream_encoder(bandwidth)
            parts = [s.feed_frames(x[i : i + ENCODE_BLOCK]) for i in range(0, x.shape[0], ENCODE_BLOCK)]
            parts.append(s.flush())
            return EncodedAudio(np.concatenate(parts, axis=1), x.shape[0], self.sample_rate, self.channels)
        codes, scales = [], []
        for off, n in self.segments(x.shape[0]):
            c, scale = self._encode_segment(x[off : off + n], n_q)
            codes.append(c)
            scales.append(scale)
        codes_all = np.concatenate(codes, axis=1) if codes else np.zeros((n_q, 0), np.int32)
        return EncodedAudio(codes_all, x.shape[0], self.sample_rate, self.channels, np.asarray(scales, np.float32))

    def _encode_segment(self, x: np.ndarray, n_q: int) -> tuple[np.ndarray, float]:
        scale = np.float32(1.0)
        if self.config.normalize:
            mono = x.mean(axis=1, dtype=np.float32)
            volume = np.float32(math.sqrt(float(np.mean(mono.astype(np.float64) ** 2))))
            scale = np.float32(np.float32(1e-8) + volume)
            x = x / scale
        return self.quantize(self.encoder.whole(x), n_q), float(scale)

    def decode(self, encoded: EncodedAudio | Any) -> np.ndarray:
        """Audio (channels, length) float32 from :class:`EncodedAudio`; from a bare (n_q, frames) code array
        (causal model), all ``frames * hop`` samples."""
        if not isinstance(encoded, EncodedAudio):
            if self.config.segment is not None:
                raise CodecError(f"{self.config.name} decodes EncodedAudio (its codes need their segment scales)")
            codes = self.check_codes(encoded)
            encoded = EncodedAudio(codes, codes.shape[1] * self.hop_length, self.sample_rate, self.channels)
        codes = self.check_codes(encoded.codes)
        length = int(encoded.length)
        if length < 0 or self.frames(length) != codes.shape[1]:
            raise CodecError(f"{codes.shape[1]} frames of codes do not match a signal of {length} samples "
                             f"({self.frames(length)} frames)")
        if self.config.segment is None:
            out = np.empty((codes.shape[1] * self.hop_length, self.channels), np.float32)
            d = self.stream_decoder()
            pos = 0
            for i in range(0, codes.shape[1], DECODE_BLOCK):
                y = d.feed_rows(codes[:, i : i + DECODE_BLOCK])
                out[pos : pos + y.shape[0]] = y
                pos += y.shape[0]
            y = d.flush_rows()
            out[pos : pos + y.shape[0]] = y
            return np.ascontiguousarray(out[:length].T)
        segs = self.segments(length)
        scales = np.asarray(encoded.scales if encoded.scales is not None else [], np.float32).reshape(-1)
        if scales.shape[0] != len(segs):
            raise CodecError(f"{len(segs)} segment scales expected, got {scales.shape[0]}")
        d = SegmentStreamDecoder(self)
        parts, f0 = [], 0
        for (_, n), scale in zip(segs, scales, strict=True):
            f = -(-n // self.hop_length)
            parts.append(d.feed([(codes[:, f0 : f0 + f], float(scale))]))
            f0 += f
        parts.append(d.flush())
        return np.ascontiguousarray(np.concatenate(parts, axis=1)[:, :length])

    def _decode_segment(self, codes: np.ndarray, scale: float) -> np.ndarray:
        y = self.decoder.whole(self.dequantize(codes))
        return y * np.float32(scale) if self.config.normalize else y

    # ---- streaming

    def stream_encoder(self, bandwidth: float | None = None) -> StreamEncoder | SegmentStreamEncoder:
        """Feed PCM, get codes: :class:`StreamEncoder` (causal model) or :class:`SegmentStreamEncoder`."""
        n_q = self.config.codebooks_for(bandwidth)
        return StreamEncoder(self, n_q) if self.config.segment is None else SegmentStreamEncoder(self, n_q)

    def stream_decoder(self) -> StreamDecoder | SegmentStreamDecoder:
        """Feed codes, get PCM: :class:`StreamDecoder` (causal model) or :class:`SegmentStreamDecoder`."""
        return StreamDecoder(self) if self.config.segment is None else SegmentStreamDecoder(self)


class _Finishable:
    done = False

    def _check(self) -> None:
        if self.done:
            raise CodecError(f"this {type(self).__name__} was flushed; start a new one")


class StreamEncoder(_Finishable):
    """Causal model: ``feed(pcm)`` -> codes (n_q, k) of the frames completed so far; ``flush()`` -> the rest.
    The concatenated codes equal :meth:`EncodecModel.encode`'s, whatever the chunk sizes."""

    def __init__(self, model: EncodecModel, n_q: int):
        self.model, self.n_q = model, n_q
        self.stream = model.encoder.stream()

    def feed(self, pcm: Any) -> np.ndarray:
        """``pcm`` (channels, n) or (n,) for mono; returns codes (n_q, k), k >= 0."""
        return self.feed_frames(self.model.audio(pcm))

    def feed_frames(self, x: np.ndarray) -> np.ndarray:
        """Like :meth:`feed` for time-major float32 (n, channels) input."""
        self._check()
        return self.model.quantize(self.stream.feed(x), self.n_q)

    def flush(self) -> np.ndarray:
        """The remaining frames (EnCodec's end-of-signal padding applied); the stream is then finished."""
        self._check()
        self.done = True
        return self.model.quantize(self.stream.flush(), self.n_q)


class StreamDecoder(_Finishable):
    """Causal model: ``feed(codes)`` -> PCM (channels, n) decoded so far; ``flush()`` -> the rest. The
    concatenation equals decoding all the codes at once (bit for bit), ``frames * hop`` samples."""

    def __init__(self, model: EncodecModel):
        self.model = model
        self.stream = model.decoder.stream()

    def feed(self, codes: Any) -> np.ndarray:
        return np.ascontiguousarray(self.feed_rows(codes).T)

    def feed_rows(self, codes: Any) -> np.ndarray:
        """Like :meth:`feed`, time-major (n, channels)."""
        self._check()
        return self.stream.feed(self.model.dequantize(codes))

    def flush(self) -> np.ndarray:
        return np.ascontiguousarray(self.flush_rows().T)

    def flush_rows(self) -> np.ndarray:
        self._check()
        self.done = True
        return self.stream.flush()


class SegmentStreamEncoder(_Finishable):
    """Segment model (48 kHz): ``feed(pcm)`` -> ``[(codes (n_q, f), scale), ...]`` for every segment whose
    samples are all in; ``flush()`` -> the remaining (shorter) segments. Same codes as a whole encode."""

    def __init__(self, model: EncodecModel, n_q: int):
        self.model, self.n_q = model, n_q
        self.buf = np.zeros((0, model.channels), np.float32)
        self.start = 0  # absolute sample index of buf[0] (the next segment's offset)

    def feed(self, pcm: Any) -> list[tuple[np.ndarray, float]]:
        self._check()
        self.buf = np.concatenate([self.buf, self.model.audio(pcm)], axis=0)
        seg, stride = self.model.config.segment_length, self.model.config.segment_stride
        out = []
        while self.buf.shape[0] >= seg:
            out.append(self.model._encode_segment(self.buf[:seg], self.n_q))
            self.buf = self.buf[stride:]
            self.start += stride
        return out

    def flush(self) -> list[tuple[np.ndarray, float]]:
        self._check()
        self.done = True
        stride = self.model.config.segment_stride
        return [self.model._encode_segment(self.buf[o : o + self.model.config.segment_length], self.n_q)
                for o in range(0, self.buf.shape[0], stride)]


class SegmentStreamDecoder(_Finishable):
    """Segment model: ``feed([(codes, scale), ...])`` -> PCM (channels, n) up to the next segment's start
    (EnCodec's linear overlap-add, same arithmetic); ``flush()`` -> the rest, untrimmed."""

    def __init__(self, model: EncodecModel):
        self.model = model
        self.weight: np.ndarray | None = None
        self.acc = np.zeros((0, model.channels), np.float32)  # weighted sum from absolute sample `pos`
        self.wsum = np.zeros(0, np.float32)
        self.pos = 0
        self.next_offset = 0

    def feed(self, segments: list[tuple[Any, float]]) -> np.ndarray:
        self._check()
        stride = self.model.config.segment_stride
        out = []
        for codes, scale in segments:
            frame = self.model._decode_segment(codes, scale)  # (n, channels)
            if self.weight is None:  # the package's fade: from the first frame's length
                import torch

                t = torch.linspace(0, 1, frame.shape[0] + 2, dtype=torch.float32)[1:-1]
                self.weight = (0.5 - (t - 0.5).abs()).numpy()
            n = frame.shape[0]
            if n > self.weight.shape[0]:
                raise CodecError("a segment decodes longer than the first one")
            off = self.next_offset - self.pos
            end = off + n
            if end > self.acc.shape[0]:
                grow = end - self.acc.shape[0]
                self.acc = np.concatenate([self.acc, np.zeros((grow, self.model.channels), np.float32)])
                self.wsum = np.concatenate([self.wsum, np.zeros(grow, np.float32)])
            w = self.weight[:n]
            self.acc[off:end] += w[:, None] * frame
            self.wsum[off:end] += w
            self.next_offset += stride
            ready = max(0, min(self.acc.shape[0], self.next_offset - self.pos))
            out.append(self.acc[:ready] / self.wsum[:ready, None])
            self.acc, self.wsum = self.acc[ready:], self.wsum[ready:]
            self.pos += ready
        y = np.concatenate(out, axis=0) if out else np.zeros((0, self.model.channels), np.float32)
        return np.ascontiguousarray(y.T)

    def flush(self) -> np.ndarray:
        self._check()
        self.done = True
        y = self.acc / self.wsum[:, None] if self.acc.shape[0] else self.acc
        return np.ascontiguousarray(y.T)
