"""SEANet encoder and decoder (EnCodec's convolutional halves) on nctk's exact kernels, whole or streaming.

Each layer is a pure function of its whole input sequence, with EnCodec's semantics (``encodec.modules``:
``SConv1d`` reflect padding, the extra right padding that completes the last window, ``SConvTranspose1d``
trimming, the residual blocks and the skip LSTM). Causal layers also have a **stream**: ``feed(x)`` returns
every output row that no later input can change, ``flush()`` the rest; the concatenated outputs equal
``whole(input)`` bit for bit whatever the chunking, because the kernels (:mod:`.seanet_numba`) compute an
element the same way whatever the width of the call. State per layer is the last ``kernel - stride`` input
rows (plus, until a layer starts, the first ``padding + 1`` rows its left reflection needs) and the LSTM's
``(h, c)``: bounded, whatever the length.

Activations are time-major float32 arrays ``(T, C)``. Weights come folded (weight norm already applied) under
EnCodec's parameter names, e.g. ``encoder.model.0.conv.conv.weight``; :func:`plan` lists every layer and
:func:`param_shapes` every tensor a checkpoint must provide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nctk.codec.audio import seanet_numba as kern
from nctk.entropy.errors import CodecError

__all__ = ["SEANetConfig", "Decoder", "Encoder", "param_shapes", "plan", "pad1d"]


@dataclass(frozen=True)
class SEANetConfig:
    """EnCodec's ``SEANetEncoder``/``SEANetDecoder`` arguments (their defaults)."""

    channels: int = 1
    dimension: int = 128
    n_filters: int = 32
    n_residual_layers: int = 1
    ratios: tuple[int, ...] = (8, 5, 4, 2)  # decoder order; the encoder uses them reversed
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    causal: bool = True
    pad_mode: str = "reflect"
    true_skip: bool = False
    compress: int = 2
    lstm: int = 2
    norm: str = "weight_norm"  # or "time_group_norm" (48 kHz model) or "none"
    alpha: float = 1.0  # ELU
    group_norm_eps: float = 1e-5

    @property
    def hop_length(self) -> int:
        return int(np.prod(self.ratios))


# ------------------------------------------------------------------------------------------ the layer plan


@dataclass(frozen=True)
class LayerSpec:
    kind: str  # "conv", "convtr", "res", "lstm", "elu"
    prefix: str  # e.g. "encoder.model.3"
    cin: int = 0
    cout: int = 0
    kernel: int = 1
    stride: int = 1
    dilation: int = 1


def plan(cfg: SEANetConfig, part: str) -> list[LayerSpec]:
    """The layers of ``part`` ("encoder" or "decoder"), in order, named as EnCodec's ``nn.Sequential``."""
    nf, layers = cfg.n_filters, []

    def add(kind: str, **kw: Any) -> None:
        layers.append(LayerSpec(kind, f"{part}.model.{len(layers)}", **kw))

    if part == "encoder":
        mult = 1
        add("conv", cin=cfg.channels, cout=nf, kernel=cfg.kernel_size)
        for ratio in reversed(cfg.ratios):
            for j in range(cfg.n_residual_layers):
                add("res", cin=mult * nf, cout=mult * nf, kernel=cfg.residual_kernel_size,
                    dilation=cfg.dilation_base ** j)
            add("elu", cin=mult * nf, cout=mult * nf)
            add("conv", cin=mult * nf, cout=2 * mult * nf, kernel=2 * ratio, stride=ratio)
            mult *= 2
        if cfg.lstm:
            add("lstm", cin=mult * nf, cout=mult * nf)
        add("elu", cin=mult * nf, cout=mult * nf)
        add("conv", cin=mult * nf, cout=cfg.dimension, kernel=cfg.last_kernel_size)
    elif part == "decoder":
        mult = 2 ** len(cfg.ratios)
        add("conv", cin=cfg.dimension, cout=mult * nf, kernel=cfg.kernel_size)
        if cfg.lstm:
            add("lstm", cin=mult * nf, cout=mult * nf)
        for ratio in cfg.ratios:
            add("elu", cin=mult * nf, cout=mult * nf)
            add("convtr", cin=mult * nf, cout=mult * nf // 2, kernel=2 * ratio, stride=ratio)
            for j in range(cfg.n_residual_layers):
                add("res", cin=mult * nf // 2, cout=mult * nf // 2, kernel=cfg.residual_kernel_size,
                    dilation=cfg.dilation_base ** j)
            mult //= 2
        add("elu", cin=nf, cout=nf)
        add("conv", cin=nf, cout=cfg.channels, kernel=cfg.last_kernel_size)
    else:
        raise ValueError(part)
    return layers


def _conv_params(base: str, cin: int, cout: int, kernel: int, cfg: SEANetConfig, transposed: bool = False
                 ) -> dict[str, tuple[int, ...]]:
    """Folded parameter shapes of one ``NormConv1d`` / ``NormConvTranspose1d`` (``base`` ends in .conv/.convtr)."""
    inner = "convtr" if transposed else "conv"
    shapes = {f"{base}.{inner}.weight": (cin, cout, kernel) if transposed else (cout, cin, kernel),
              f"{base}.{inner}.bias": (cout,)}
    if cfg.norm == "time_group_norm":
        shapes[f"{base}.norm.weight"] = (cout,)
        shapes[f"{base}.norm.bias"] = (cout,)
    return shapes


def param_shapes(cfg: SEANetConfig, part: str) -> dict[str, tuple[int, ...]]:
    """Every (folded) tensor ``part`` needs, by EnCodec name, with its shape. Weight-normalised convolutions
    list their folded ``.weight``; the checkpoint may hold ``weight_g``/``weight_v`` instead."""
    shapes: dict[str, tuple[int, ...]] = {}
    for s in plan(cfg, part):
        if s.kind == "conv":
            shapes.update(_conv_params(f"{s.prefix}.conv", s.cin, s.cout, s.kernel, cfg))
        elif s.kind == "convtr":
            shapes.update(_conv_params(f"{s.prefix}.convtr", s.cin, s.cout, s.kernel, cfg, transposed=True))
        elif s.kind == "res":
            hidden = s.cin // cfg.compress
            shapes.update(_conv_params(f"{s.prefix}.block.1.conv", s.cin, hidden, s.kernel, cfg))
            shapes.update(_conv_params(f"{s.prefix}.block.3.conv", hidden, s.cin, 1, cfg))
            if not cfg.true_skip:
                shapes.update(_conv_params(f"{s.prefix}.shortcut.conv", s.cin, s.cin, 1, cfg))
        elif s.kind == "lstm":
            for n in range(cfg.lstm):
                shapes[f"{s.prefix}.lstm.weight_ih_l{n}"] = (4 * s.cin, s.cin)
                shapes[f"{s.prefix}.lstm.weight_hh_l{n}"] = (4 * s.cin, s.cin)
                shapes[f"{s.prefix}.lstm.bias_ih_l{n}"] = (4 * s.cin,)
                shapes[f"{s.prefix}.lstm.bias_hh_l{n}"] = (4 * s.cin,)
    return shapes


# ------------------------------------------------------------------------------------------ padding


def _reflect(x: np.ndarray, left: int, right: int) -> np.ndarray:
    n = x.shape[0]
    parts = [x[np.arange(left, 0, -1)], x, x[np.arange(n - 2, n - 2 - right, -1)]]
    return np.concatenate(parts, axis=0)


def pad1d(x: np.ndarray, left: int, right: int, mode: str = "reflect") -> np.ndarray:
    """EnCodec's ``pad1d`` on a time-major array: reflect (zero-extending inputs too short to reflect, then
    trimming) or zeros."""
    if mode != "reflect":
        z = np.zeros((left, x.shape[1]), x.dtype), x, np.zeros((right, x.shape[1]), x.dtype)
        return np.concatenate(z, axis=0)
    extra = 0
    max_pad = max(left, right)
    if x.shape[0] <= max_pad:
        extra = max_pad - x.shape[0] + 1
        x = np.concatenate([x, np.zeros((extra, x.shape[1]), x.dtype)], axis=0)
    padded = _reflect(x, left, right)
    return padded[: padded.shape[0] - extra]


def extra_padding(length: int, kernel: int, stride: int, padding_total: int) -> int:
    """EnCodec's ``get_extra_padding_for_conv1d``: right padding that makes the last window full."""
    n_frames = (length - kernel + padding_total) / stride + 1
    ideal = (math.ceil(n_frames) - 1) * stride + (kernel - padding_total)
    return ideal - length


def _empty(c: int) -> np.ndarray:
    return np.zeros((0, c), np.float32)


# ------------------------------------------------------------------------------------------ layers


class _GroupNorm:
    """``nn.GroupNorm(1, C)`` over a whole (T, C) sequence: statistics in float64, then ``x * a + b`` in float32."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, eps: float):
        self.weight = np.asarray(weight, np.float64)
        self.bias = np.asarray(bias, np.float64)
        self.eps = eps

    def __call__(self, y: np.ndarray) -> np.ndarray:
        if y.size == 0:
            return y
        y64 = y.astype(np.float64)
        mean = y64.mean()
        rstd = 1.0 / math.sqrt(((y64 - mean) ** 2).mean() + self.eps)
        a = (rstd * self.weight).astype(np.float32)
        b = (self.bias - mean * rstd * self.weight).astype(np.float32)
        return y * a + b


class Conv:
    """``SConv1d``: folded weights (Cout, Cin, K), EnCodec padding, optional GroupNorm (48 kHz model)."""

    def __init__(self, w: np.ndarray, b: np.ndarray, *, stride: int = 1, dilation: int = 1, causal: bool = True,
                 pad_mode: str = "reflect", norm: _GroupNorm | None = None):
        self.cout, self.cin, self.kernel = w.shape
        self.packed = kern.pack_conv(w, b)
        self.stride, self.dilation, self.causal, self.pad_mode, self.norm = stride, dilation, causal, pad_mode, norm
        self.keff = (self.kernel - 1) * dilation + 1
        self.padding = self.keff - stride  # EnCodec's padding_total: (k - 1) * d - (s - 1)

    def pads(self, length: int) -> tuple[int, int]:
        extra = extra_padding(length, self.kernel, self.stride, self.padding)
        if self.causal:
            return self.padding, extra
        right = self.padding // 2
        return self.padding - right, right + extra

    def run(self, padded: np.ndarray) -> np.ndarray:
        return kern.conv1d(padded, self.packed, self.cout, self.stride, self.dilation)

    def whole(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return _empty(self.cout)
        y = self.run(pad1d(x, *self.pads(x.shape[0]), self.pad_mode))
        return self.norm(y) if self.norm is not None else y

    def stream(self) -> _ConvStream:
        if not self.causal or self.norm is not None:
            raise CodecError("only causal convolutions without group norm can stream")
        return _ConvStream(self)


class _ConvStream:
    """A causal :class:`Conv` fed in pieces. ``buf`` holds the padded input sequence P (left padding, then the
    input) from absolute row ``p0``; output ``j`` reads P rows ``j*s .. j*s + keff - 1``."""

    def __init__(self, conv: Conv):
        self.conv = conv
        self.pending: list[np.ndarray] = []  # input rows before the left padding can be made
        self.n_pending = 0
        self.buf: np.ndarray | None = None
        self.p0 = 0
        self.n_in = 0
        self.emitted = 0

    def feed(self, x: np.ndarray) -> np.ndarray:
        c = self.conv
        if x.shape[0] == 0:
            return _empty(c.cout)
        self.n_in += x.shape[0]
        if self.buf is None:
            self.pending.append(x)
            self.n_pending += x.shape[0]
            if self.n_pending <= c.padding:  # reflection needs padding + 1 rows (shorter: flush's whole path)
                return _empty(c.cout)
            raw = np.concatenate(self.pending, axis=0)
            self.pending = []
            self.buf = pad1d(raw, c.padding, 0, c.pad_mode)
        else:
            self.buf = np.concatenate([self.buf, x], axis=0)
        return self._emit()

    def _emit(self) -> np.ndarray:
        c, buf = self.conv, self.buf
        total = self.p0 + buf.shape[0]
        n_avail = (total - c.keff) // c.stride + 1 if total >= c.keff else 0
        if n_avail <= self.emitted:
            return _empty(c.cout)
        a = self.emitted * c.stride - self.p0
        z = (n_avail - 1) * c.stride + c.keff - self.p0
        y = c.run(buf[a:z])
        self.emitted = n_avail
        keep = min(n_avail * c.stride, total - c.stride)  # the last `stride` rows serve a right reflection
        self.buf = buf[keep - self.p0 :].copy()  # a copy: a view would keep the whole chunk alive
        self.p0 = keep
        return y

    def flush(self) -> np.ndarray:
        c = self.conv
        if self.buf is None:  # never reached padding + 1 rows: EnCodec's short-input padding, in one go
            raw = np.concatenate(self.pending, axis=0) if self.pending else _empty(c.cin)
            self.pending = []
            return c.whole(raw)
        extra = extra_padding(self.n_in, c.kernel, c.stride, c.padding)
        if extra:
            if c.pad_mode == "reflect":
                n = self.buf.shape[0]
                tail = self.buf[np.arange(n - 2, n - 2 - extra, -1)]
            else:
                tail = np.zeros((extra, c.cin), np.float32)
            self.buf = np.concatenate([self.buf, tail], axis=0)
        return self._emit()


class ConvTr:
    """``SConvTranspose1d`` as a convolution: output phase ``p`` of input step ``t`` is a ``ceil(K/s)``-tap
    convolution of the inputs ``t, t-1, ...``; all ``s`` phases are one convolution with ``s * Cout`` outputs,
    whose (T, s*Cout) result is already the time-major (T*s, Cout) output."""

    def __init__(self, w: np.ndarray, b: np.ndarray, *, stride: int, causal: bool = True,
                 norm: _GroupNorm | None = None):
        self.cin, self.cout, self.kernel = w.shape
        self.stride, self.causal, self.norm = stride, causal, norm
        taps = -(-self.kernel // stride)
        wz = np.zeros((self.cin, self.cout, taps * stride), np.float32)
        wz[:, :, : self.kernel] = w
        # w2[p*Cout + o, c, taps-1-m] = w[c, o, p + m*s]: tap k of the convolution reads input t - (taps-1-k)
        w2 = wz.reshape(self.cin, self.cout, taps, stride)[:, :, ::-1, :].transpose(3, 1, 0, 2)
        self.taps = taps
        self.packed = kern.pack_conv(np.ascontiguousarray(w2.reshape(stride * self.cout, self.cin, taps)),
                                     np.tile(np.asarray(b, np.float32), stride))
        padding = self.kernel - stride
        self.trim = (0, padding) if causal else (padding - padding // 2, padding // 2)

    def run(self, padded: np.ndarray) -> np.ndarray:
        y = kern.conv1d(padded, self.packed, self.stride * self.cout)
        return y.reshape(-1, self.cout)

    def whole(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] == 0:
            return _empty(self.cout)
        z = np.zeros((self.taps - 1, self.cin), np.float32)
        full = self.run(np.concatenate([z, x, z], axis=0))  # (T + taps - 1) * s rows
        n = (x.shape[0] - 1) * self.stride + self.kernel  # torch's output length
        y = full[:n] if self.norm is None else self.norm(full[:n])  # EnCodec normalises before trimming
        return np.ascontiguousarray(y[self.trim[0] : n - self.trim[1]])

    def stream(self) -> _ConvTrStream:
        if not self.causal or self.norm is not None:
            raise CodecError("only causal transposed convolutions without group norm can stream")
        return _ConvTrStream(self)


class _ConvTrStream:
    """Causal transposed convolution fed in pieces: rows ``t*s .. t*s + s - 1`` are final once input ``t`` is in
    (the right trim drops exactly what later inputs would still add to)."""

    def __init__(self, conv: ConvTr):
        self.conv = conv
        self.prev = np.zeros((conv.taps - 1, conv.cin), np.float32)

    def feed(self, x: np.ndarray) -> np.ndarray:
        c = self.conv
        if x.shape[0] == 0:
            return _empty(c.cout)
        p = np.concatenate([self.prev, x], axis=0)
        self.prev = p[p.shape[0] - (c.taps - 1) :]
        return c.run(p)

    def flush(self) -> np.ndarray:
        return _empty(self.conv.cout)


class Elu:
    def __init__(self, alpha: float, channels: int):
        self.alpha, self.cout = alpha, channels

    def whole(self, x: np.ndarray) -> np.ndarray:
        return kern.elu(x, self.alpha)

    def stream(self) -> _Stateless:
        return _Stateless(self)


class _Stateless:
    def __init__(self, layer: Any):
        self.layer = layer

    def feed(self, x: np.ndarray) -> np.ndarray:
        return self.layer.whole(x)

    def flush(self) -> np.ndarray:
        return _empty(self.layer.cout)


class ResBlock:
    """``SEANetResnetBlock``: ``shortcut(x) + conv(elu(conv(elu(x))))``."""

    def __init__(self, block: list[Any], shortcut: Conv | None):
        self.block, self.shortcut = block, shortcut
        self.cout = block[-1].cout

    def whole(self, x: np.ndarray) -> np.ndarray:
        y = x
        for layer in self.block:
            y = layer.whole(y)
        return (self.shortcut.whole(x) if self.shortcut is not None else x) + y

    def stream(self) -> _ResStream:
        return _ResStream(self)


class _ResStream:
    """The two branches start at different times (their left paddings differ): outputs wait for each other."""

    def __init__(self, res: ResBlock):
        self.block = _Seq([layer.stream() for layer in res.block], res.cout)
        self.short = res.shortcut.stream() if res.shortcut is not None else None
        self.qa = _empty(res.cout)  # outputs of one branch waiting for the other's
        self.qb = _empty(res.cout)
        self.cout = res.cout

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.qa.shape[0]:
            a = np.concatenate([self.qa, a], axis=0)
        if self.qb.shape[0]:
            b = np.concatenate([self.qb, b], axis=0)
        n = min(a.shape[0], b.shape[0])
        self.qa, self.qb = a[n:].copy(), b[n:].copy()
        return a[:n] + b[:n]

    def feed(self, x: np.ndarray) -> np.ndarray:
        return self._pair(self.short.feed(x) if self.short is not None else x, self.block.feed(x))

    def flush(self) -> np.ndarray:
        y = self._pair(self.short.flush() if self.short is not None else _empty(self.cout), self.block.flush())
        if self.qa.shape[0] or self.qb.shape[0]:
            raise AssertionError("residual branches ended with different lengths")
        return y


class Lstm:
    """``SLSTM``: stacked LSTM layers plus the skip connection (``lstm(x) + x``)."""

    def __init__(self, weights: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]):
        self.layers = []
        for w_ih, w_hh, b_ih, b_hh in weights:
            bias = (np.asarray(b_ih, np.float32) + np.asarray(b_hh, np.float32)).astype(np.float32)
            self.layers.append((kern.pack_conv(np.asarray(w_ih, np.float32)[:, :, None], bias), kern.pack_lstm(w_hh)))
        self.hidden = weights[0][1].shape[1]
        self.cout = self.hidden

    def run(self, x: np.ndarray, state: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        y = x
        for (wih, whh), (h, c) in zip(self.layers, state, strict=True):
            y = kern.lstm_layer(y, wih, whh, h, c)
        return y + x

    def new_state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(np.zeros(self.hidden, np.float32), np.zeros(self.hidden, np.float32)) for _ in self.layers]

    def whole(self, x: np.ndarray) -> np.ndarray:
        return self.run(x, self.new_state())

    def stream(self) -> _LstmStream:
        return _LstmStream(self)


class _LstmStream:
    def __init__(self, lstm: Lstm):
        self.lstm, self.state = lstm, lstm.new_state()

    def feed(self, x: np.ndarray) -> np.ndarray:
        return self.lstm.run(x, self.state) if x.shape[0] else _empty(self.lstm.cout)

    def flush(self) -> np.ndarray:
        return _empty(self.lstm.cout)


class _Seq:
    """Streams in sequence; flushing one feeds its remainder to the next before flushing that."""

    def __init__(self, streams: list[Any], cout: int):
        self.streams, self.cout = streams, cout

    def feed(self, x: np.ndarray) -> np.ndarray:
        for s in self.streams:
            x = s.feed(x)
        return x

    def flush(self) -> np.ndarray:
        y = None
        for s in self.streams:
            a = s.feed(y) if y is not None else None  # what the previous layer flushed, then this one's end
            z = s.flush()
            y = z if a is None or a.shape[0] == 0 else np.concatenate([a, z], axis=0)
        return y if y is not None else _empty(self.cout)


# ------------------------------------------------------------------------------------------ networks


class _Network:
    """An encoder or decoder: its layers in order, whole or streaming."""

    part = ""

    def __init__(self, cfg: SEANetConfig, weights: dict[str, np.ndarray]):
        self.cfg = cfg
        self.layers = [self._build(s, weights) for s in plan(cfg, self.part)]
        self.cout = self.layers[-1].cout

    def _norm(self, base: str, weights: dict[str, np.ndarray]) -> _GroupNorm | None:
        if self.cfg.norm != "time_group_norm":
            return None
        return _GroupNorm(weights[f"{base}.norm.weight"], weights[f"{base}.norm.bias"], self.cfg.group_norm_eps)

    def _conv(self, base: str, weights: dict[str, np.ndarray], **kw: Any) -> Conv:
        cfg = self.cfg
        return Conv(weights[f"{base}.conv.weight"], weights[f"{base}.conv.bias"], causal=cfg.causal,
                    pad_mode=cfg.pad_mode, norm=self._norm(base, weights), **kw)

    def _build(self, s: LayerSpec, weights: dict[str, np.ndarray]) -> Any:
        cfg = self.cfg
        if s.kind == "conv":
            return self._conv(f"{s.prefix}.conv", weights, stride=s.stride)
        if s.kind == "convtr":
            base = f"{s.prefix}.convtr"
            return ConvTr(weights[f"{base}.convtr.weight"], weights[f"{base}.convtr.bias"], stride=s.stride,
                          causal=cfg.causal, norm=self._norm(base, weights))
        if s.kind == "res":
            block = [Elu(cfg.alpha, s.cin), self._conv(f"{s.prefix}.block.1.conv", weights, dilation=s.dilation),
                     Elu(cfg.alpha, s.cin // cfg.compress), self._conv(f"{s.prefix}.block.3.conv", weights)]
            short = None if cfg.true_skip else self._conv(f"{s.prefix}.shortcut.conv", weights)
            return ResBlock(block, short)
        if s.kind == "lstm":
            p = f"{s.prefix}.lstm"
            return Lstm([(weights[f"{p}.weight_ih_l{n}"], weights[f"{p}.weight_hh_l{n}"],
                          weights[f"{p}.bias_ih_l{n}"], weights[f"{p}.bias_hh_l{n}"]) for n in range(cfg.lstm)])
        if s.kind == "elu":
            return Elu(cfg.alpha, s.cin)
        raise ValueError(s.kind)

    def whole(self, x: np.ndarray) -> np.ndarray:
        """The network on a whole (T, C) sequence."""
        for layer in self.layers:
            x = layer.whole(x)
        return x

    def stream(self) -> _Seq:
        """A fresh stream (causal models only): ``feed(x)`` / ``flush()``."""
        if not self.cfg.causal:
            raise CodecError("this model is not causal: it has no streaming state (it codes whole segments)")
        return _Seq([layer.stream() for layer in self.layers], self.cout)


class Encoder(_Network):
    """Audio (T, channels) -> embeddings (ceil(T / hop), dimension)."""

    part = "encoder"


class Decoder(_Network):
    """Embeddings (F, dimension) -> audio (F * hop, channels)."""

    part = "decoder"
