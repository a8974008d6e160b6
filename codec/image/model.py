"""The integer context networks of ``image-wavelet`` and the model artifact that holds them.

A network is a chain of k x k convolutions (odd k, zero padding, stride 1) on integer feature maps:

- weights int8, per-output-channel integer bias, accumulation in integers;
- every layer but the last: ``a = clamp((acc * mult + 2**(shift-1)) >> shift, 0, 255)`` (ReLU and requantisation
  to 8 bits, one multiplier and shift per output channel);
- the last layer: ``out = clamp((acc * mult + 2**(shift-1)) >> shift, -2**24, 2**24)``: the means (1/16 pixel) and
  the log2 scales (1/256) that choose tables (:mod:`.choice`).

The first layer's bias depends on the group, the pass and the step: ``bias[group, pass] + ((cond * (log2_q8(D) -
1024)) >> 8)`` (``log2_q8(D) - 1024`` is 256 log2 of the step in pixels), clamped to ``[-BIAS_MAX, BIAS_MAX]``.

Loading checks every bound that keeps the arithmetic exact in 32-bit accumulators: per output channel,
``sum |w| * input_max <= 2**30`` (inputs are at most :data:`~.subbands.INPUT_MAX` in magnitude for the first layer
and 255 after) and ``|bias| <= 2**29``, so ``|acc| < 2**31``; ``0 <= mult < 2**31`` and ``1 <= shift <= 62`` keep
``acc * mult`` inside int64. So every implementation (:mod:`.context_ref` in int64, :mod:`.context_numba` in int32)
computes the same integers.

Artifact files (:mod:`nctk.codec.artifacts`): ``weights.safetensors`` (``{net}.{i}.weight`` int8 ``(out, in, k, k)``,
``{net}.{i}.bias`` int32 ``(out,)`` or for layer 0 ``(groups, 2, out)``, ``{net}.{i}.mult`` and ``{net}.{i}.shift``
int32 ``(out,)``, ``{net}.cond`` int32 ``(out0,)``; nets ``low`` and ``detail``), ``tables.ntbl`` (the frozen
table set) and ``model.json`` (the table grid, :class:`~.choice.Grid`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from nctk.codec.artifacts import Artifact, ArtifactError
from nctk.codec.image.choice import LOG2_16_Q8, Grid
from nctk.codec.image.quantiser import log2_q8
from nctk.codec.image.subbands import INPUT_MAX
from nctk.codec.image.transform import LEVELS

__all__ = ["ACC_BOUND", "BIAS_MAX", "OUT_MAX", "Layer", "Model", "Net"]

ACC_BOUND = 1 << 30  # sum |w| * input_max per output channel
BIAS_MAX = 1 << 29
OUT_MAX = 1 << 24
MAX_LAYERS = 8
MAX_CHANNELS = 256
MAX_KERNEL = 7
# network name -> (input channels, output channels, first-layer bias groups)
NETS = {"low": (3, 6, 1), "detail": (12, 18, LEVELS)}


@dataclass(frozen=True)
class Layer:
    """One integer convolution (see the module docstring)."""

    weight: np.ndarray  # int8 (out, in, k, k)
    bias: np.ndarray  # int64 (out,), or for the first layer (groups, 2, out)
    mult: np.ndarray  # int64 (out,)
    shift: np.ndarray  # int64 (out,)
    weight16: np.ndarray  # the weights as int16 (what the Numba kernel multiplies)

    @property
    def radius(self) -> int:
        """Rows (and columns) of context on each side: ``k // 2``."""
        return self.weight.shape[-1] // 2


@dataclass(frozen=True)
class Net:
    """A context network: its layers and the first layer's step conditioning."""

    name: str
    layers: tuple[Layer, ...]
    cond: np.ndarray  # int64 (out0,)

    @property
    def halo(self) -> int:
        """Rows beyond a strip's edges that its outputs depend on (sum of the layers' radii)."""
        return sum(layer.radius for layer in self.layers)

    def first_bias(self, group: int, pass_: int, d: int) -> np.ndarray:
        """int64 ``(out0,)``: the first layer's bias for this group, pass and step ``D``."""
        extra = (self.cond * (log2_q8(d) - LOG2_16_Q8)) >> 8
        return np.clip(self.layers[0].bias[group, pass_] + extra, -BIAS_MAX, BIAS_MAX)


@dataclass(frozen=True)
class Model:
    """A verified model: both networks, the frozen tables and their grid, and the artifact's identity."""

    id: str
    digest: str
    nets: dict[str, Net]
    tables: Any  # nctk.entropy.tables.Tables
    grid: Grid
    meta: dict

    @classmethod
    def from_artifact(cls, art: Artifact) -> Model:
        """Load and check everything the codec needs from ``art``; :class:`ArtifactError` on anything wrong."""
        where = f"model artifact {art.id!r}"
        weights = art.weights()
        try:
            config = json.loads(art.path("model.json").read_bytes())
            grid = Grid.from_json(config.get("grid"))
        except (ValueError, TypeError, AttributeError) as e:
            raise ArtifactError(f"{where}: model.json is not a valid model description ({e})") from None
        nets = {name: _load_net(weights, name, *NETS[name], where) for name in NETS}
        extra = sorted(set(weights) - {k for n in nets.values() for k in _keys(n)})
        if extra:
            raise ArtifactError(f"{where}: unexpected tensors {', '.join(extra[:5])}")
        tables = art.tables()
        if len(tables) != grid.n_scales * grid.n_frac:
            raise ArtifactError(f"{where}: {len(tables)} tables for a grid of {grid.n_scales} x {grid.n_frac}")
        return cls(art.id, art.digest, nets, tables, grid, art.meta)


def _keys(net: Net) -> list[str]:
    keys = [f"{net.name}.cond"]
    for i in range(len(net.layers)):
        keys += [f"{net.name}.{i}.{p}" for p in ("weight", "bias", "mult", "shift")]
    return keys


def _tensor(weights: dict, key: str, dtype: str, where: str) -> np.ndarray:
    if key not in weights:
        raise ArtifactError(f"{where}: missing tensor {key}")
    t = weights[key]
    if t.dtype != np.dtype(dtype):
        raise ArtifactError(f"{where}: {key} is {t.dtype}, expected {dtype}")
    return t


def _load_net(weights: dict, name: str, n_in: int, n_out: int, groups: int, where: str) -> Net:
    layers = []
    channels = n_in
    i = 0
    while f"{name}.{i}.weight" in weights:
        if i >= MAX_LAYERS:
            raise ArtifactError(f"{where}: network {name} has more than {MAX_LAYERS} layers")
        w = _tensor(weights, f"{name}.{i}.weight", "int8", where)
        co = w.shape[0] if w.ndim == 4 else 0
        if (w.ndim != 4 or w.shape[1] != channels or w.shape[2] != w.shape[3] or w.shape[2] % 2 == 0
                or w.shape[2] > MAX_KERNEL or not 1 <= co <= MAX_CHANNELS):
            raise ArtifactError(f"{where}: {name}.{i}.weight has shape {w.shape}; expected (out, {channels}, k, k), "
                                f"k odd <= {MAX_KERNEL}, out <= {MAX_CHANNELS}")
        b = _tensor(weights, f"{name}.{i}.bias", "int32", where).astype(np.int64)
        m = _tensor(weights, f"{name}.{i}.mult", "int32", where).astype(np.int64)
        s = _tensor(weights, f"{name}.{i}.shift", "int32", where).astype(np.int64)
        want_b = (groups, 2, co) if i == 0 else (co,)
        if b.shape != want_b or m.shape != (co,) or s.shape != (co,):
            raise ArtifactError(f"{where}: {name}.{i} bias/mult/shift shapes {b.shape}/{m.shape}/{s.shape}, "
                                f"expected {want_b}/({co},)/({co},)")
        in_max = INPUT_MAX if i == 0 else 255
        wsum = np.abs(w.astype(np.int64)).reshape(co, -1).sum(axis=1) * in_max
        if wsum.max() > ACC_BOUND or np.abs(b).max() > BIAS_MAX or m.min() < 0 or s.min() < 1 or s.max() > 62:
            raise ArtifactError(f"{where}: {name}.{i} exceeds the bounds that keep integer inference exact")
        w16 = w.astype(np.int16)
        for a in (b, m, s, w16):
            a.setflags(write=False)
        layers.append(Layer(w, b, m, s, w16))
        channels = co
        i += 1
    if not layers or channels != n_out:
        raise ArtifactError(f"{where}: network {name} must map {n_in} to {n_out} channels")
    cond = _tensor(weights, f"{name}.cond", "int32", where).astype(np.int64)
    if cond.shape != (layers[0].weight.shape[0],) or np.abs(cond).max() > BIAS_MAX:
        raise ArtifactError(f"{where}: {name}.cond has shape {cond.shape} or is out of bounds")
    return Net(name, tuple(layers), cond)
