"""The coding order of ``image-wavelet`` and the integer inputs its context networks see.

Order: the coarsest low band (group ``ll``), then the detail bands of levels 5 (coarsest) down to 1 (groups
``l5`` .. ``l1``). Each group is coded in two checkerboard passes: pass 0 the *anchors* (positions with ``i + j``
even), pass 1 the rest, which see the anchors' values. Within a pass, symbols go channel by channel (the group's
channel order below), each channel's positions in row-major order.

Channels: ``ll`` has Y, Co, Cg; a detail group has LH Y, Co, Cg, HL Y, Co, Cg, HH Y, Co, Cg. Grey images code only
the Y channels (their chroma is zero, known to the decoder).

Network inputs, int64 clamped to ``[-INPUT_MAX, INPUT_MAX]`` (orthonormal values in 1/16 pixel, up to a per-group
power of two; ``D`` is the header step, ``q`` the indices):

- ``ll``, 3 channels: pass 0 zeros; pass 1 ``(q * D) >> 4`` at anchors, 0 elsewhere.
- detail level k, 12 channels: first the reconstructed low band of level k (what the decoder has before the
  group: the dequantised ``ll`` for k = 5, else the synthesis of level k + 1), per colour
  ``(LL * CTX_MUL[k][c] + 128) >> 8``; then the 9 detail channels: pass 0 zeros, pass 1 ``q * D`` at anchors.
"""

from __future__ import annotations

import numpy as np

from nctk.codec.image.transform import LEVELS

__all__ = ["CTX_MUL", "GROUPS", "INPUT_MAX", "anchor_mask", "coded_channels", "detail_inputs", "low_inputs"]

INPUT_MAX = 32767  # network inputs fit int16
# round(256 * g * 4 / 2**k) per colour (Y, Co, Cg) of level k = 1..5, g the synthesis gain of a level-k low
# coefficient: the low band in orthonormal units, divided by its DC growth 2**k, times 4 (as the design study).
CTX_MUL = ((1152, 470, 576), (798, 326, 399), (538, 220, 269), (358, 146, 179), (237, 97, 118))
# (name, network, level) in coding order
GROUPS = (("ll", "low", LEVELS),) + tuple((f"l{k}", "detail", k) for k in range(LEVELS, 0, -1))


def anchor_mask(h: int, w: int) -> np.ndarray:
    """bool ``(h, w)``: True at the anchors (``i + j`` even), coded in pass 0."""
    return (np.add.outer(np.arange(h), np.arange(w)) & 1) == 0


def coded_channels(net: str, channels: int) -> list[int]:
    """The channels a group codes: all, or only the Y channels of a grey (1-channel) image."""
    n = 3 if net == "low" else 9
    return list(range(n)) if channels == 3 else list(range(0, n, 3))


def _clamp(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -INPUT_MAX, INPUT_MAX)


def _anchors(q: np.ndarray, d: int, pass_: int, shift: int) -> np.ndarray:
    if pass_ == 0:
        return np.zeros(q.shape, dtype=np.int64)
    v = (d * q.astype(np.int64)) >> shift
    return _clamp(np.where(anchor_mask(*q.shape[-2:]), v, 0))


def low_inputs(q: np.ndarray, d: int, pass_: int) -> np.ndarray:
    """int64 ``(..., 3, h, w)`` inputs of the ``ll`` network from its indices ``q`` (only anchors are read)."""
    return _anchors(q, d, pass_, 4)


def detail_inputs(ll: np.ndarray, q: np.ndarray, d: int, level: int, pass_: int) -> np.ndarray:
    """int64 ``(..., 12, h, w)`` inputs of the detail network at ``level`` from the reconstructed low band ``ll``
    (``(..., 3, h, w)`` coefficients) and the group's indices ``q`` (``(..., 9, h, w)``; only anchors are read)."""
    mul = np.array(CTX_MUL[level - 1], dtype=np.int64).reshape(3, 1, 1)
    ctx = _clamp((ll.astype(np.int64) * mul + 128) >> 8)
    return np.concatenate([ctx, _anchors(q, d, pass_, 0)], axis=-3)
