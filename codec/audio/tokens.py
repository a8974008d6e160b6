"""RVQ token files for language-model work: audio to an EnCodec model's integer codes and back (``nctk tokens``).

Token files are numpy files (``allow_pickle=False`` on read):

- ``.npy``: the codes alone, int32. A mono file through the 24 kHz (mono) model gives shape ``(n_q, frames)``;
  a file of ``C > 1`` channels gives ``(C, n_q, frames)``, each channel coded by itself (channels first).
  Decoding gives ``frames * 320`` samples per channel at the model's rate.
- ``.npz``: ``codes`` as above plus what restores the original exactly in length and rate: ``length`` (samples per
  channel of the model-rate signal), ``sample_rate`` (the original's, resampled back on decode),
  ``original_length``, and for the 48 kHz model ``scales`` (one per 1 s segment: its codes mean nothing without
  them, so that model writes ``.npz`` only).

The 48 kHz model is stereo: a mono file is coded as two equal channels and decoded to stereo. Files of another
rate are resampled to the model's rate first (:func:`nctk.codec.audio.resample.resample`). ``block_frames``
encodes through the stream encoder in blocks of that many frames: the codes equal the whole-file codes (the
model's streaming is exact), which tests check.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np

from nctk.codec.audio.encodec import EncodecModel, EncodedAudio
from nctk.codec.audio.resample import resample
from nctk.entropy.errors import CodecError

TOKEN_SUFFIXES = (".npy", ".npz")
AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def read_audio(data: bytes, name: str = "input") -> tuple[np.ndarray, int]:
    """``(samples (channels, T) float32, sample_rate)`` of an audio file's bytes (anything libsndfile reads)."""
    import soundfile as sf

    try:
        x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as e:
        raise CodecError(f"{name} is not an audio file soundfile can read ({e})") from None
    if x.shape[0] == 0:
        raise CodecError(f"{name} holds no samples")
    if not np.isfinite(x).all():
        raise CodecError(f"{name} has NaN or infinite samples")
    return np.ascontiguousarray(x.T), int(rate)


def _fit_channels(model: EncodecModel, x: np.ndarray) -> np.ndarray:
    """Channels the model takes: a mono model codes each channel by itself; stereo takes mono (doubled)."""
    if model.channels == 1 or x.shape[0] == model.channels:
        return x
    if x.shape[0] == 1:
        return np.repeat(x, model.channels, axis=0)
    raise CodecError(f"{model.config.name} takes 1 or {model.channels} channels, not {x.shape[0]}")


def encode(model: EncodecModel, x: np.ndarray, rate: int, kbps: float | None = None,
           block_frames: int | None = None) -> dict[str, Any]:
    """The token file's arrays for audio ``x`` (channels, T) at ``rate`` Hz (see the module docstring)."""
    if block_frames is not None and block_frames < 1:
        raise CodecError("block_frames must be at least 1")
    original_length = x.shape[1]
    x = _fit_channels(model, x)
    y = np.ascontiguousarray(resample(x, rate, model.sample_rate, axis=1), dtype=np.float32)
    if not np.isfinite(y).all():
        raise CodecError("resampling made non-finite samples")
    chans = [y[c : c + 1] for c in range(y.shape[0])] if model.channels == 1 else [y]
    codes, scales = [], None
    for ch in chans:
        if block_frames is None:
            enc = model.encode(ch, kbps)
            codes.append(enc.codes)
            scales = enc.scales
        else:
            c, scales = _encode_blocks(model, ch, kbps, block_frames * model.hop_length)
            codes.append(c)
    out = {"codes": codes[0] if len(codes) == 1 else np.stack(codes), "length": np.int64(y.shape[1]),
           "sample_rate": np.int64(rate), "original_length": np.int64(original_length)}
    if scales is not None:
        out["scales"] = np.asarray(scales, np.float32)
    return out


def _encode_blocks(model: EncodecModel, x: np.ndarray, kbps: float | None,
                   block: int) -> tuple[np.ndarray, np.ndarray | None]:
    s = model.stream_encoder(kbps)
    parts = [s.feed(x[:, i : i + block]) for i in range(0, x.shape[1], block)]
    parts.append(s.flush())
    if model.config.segment is None:
        return np.concatenate(parts, axis=1), None
    segs = [seg for p in parts for seg in p]
    return (np.concatenate([c for c, _ in segs], axis=1) if segs else np.zeros((0, 0), np.int32),
            np.asarray([sc for _, sc in segs], np.float32))


def to_bytes(arrays: dict[str, Any], suffix: str) -> bytes:
    """The ``.npy`` (codes only) or ``.npz`` file of :func:`encode`'s arrays."""
    buf = io.BytesIO()
    if suffix == ".npy":
        if "scales" in arrays:
            raise CodecError("this model's codes need their segment scales: write a .npz token file")
        np.save(buf, np.asarray(arrays["codes"], np.int32), allow_pickle=False)
    elif suffix == ".npz":
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    else:
        raise CodecError(f"token files are .npy or .npz, not {suffix or 'no suffix'!r}")
    return buf.getvalue()


def from_bytes(data: bytes, name: str = "tokens") -> dict[str, Any]:
    """The arrays of a token file (``.npy``: codes only); one CodecError for anything else."""
    try:
        obj = np.load(io.BytesIO(data), allow_pickle=False)
        arrays = {k: obj[k] for k in obj.files} if isinstance(obj, np.lib.npyio.NpzFile) else {"codes": obj}
    except (ValueError, OSError, EOFError, KeyError) as e:
        raise CodecError(f"{name} is not a token file (.npy or .npz without pickles): {e}") from None
    if "codes" not in arrays:
        raise CodecError(f"{name} has no 'codes' array")
    return arrays


def decode(model: EncodecModel, arrays: dict[str, Any]) -> tuple[np.ndarray, int]:
    """``(audio (channels, T) float32, sample_rate)`` of a token file's arrays: the original rate and length when
    the file keeps them (``.npz``), else the model's rate and ``frames * hop`` samples."""
    codes = np.asarray(arrays["codes"])
    scales = arrays.get("scales")
    meta = {k: _scalar(arrays, k) for k in ("length", "sample_rate", "original_length") if k in arrays}
    if codes.ndim == 3 and model.channels == 1:
        per = [codes[c] for c in range(codes.shape[0])]
    elif codes.ndim == 2:
        per = [codes]
    else:
        raise CodecError(f"codes of shape {codes.shape} do not fit {model.config.name} ((n_q, frames)"
                         + (", or (channels, n_q, frames)" if model.channels == 1 else "") + ")")
    outs = []
    for c in per:
        if "length" in meta or scales is not None:
            length = meta.get("length", c.shape[-1] * model.hop_length)
            enc = EncodedAudio(model.check_codes(c), length, model.sample_rate, model.channels,
                               None if scales is None else np.asarray(scales, np.float32))
            outs.append(model.decode(enc))
        else:
            outs.append(model.decode(c))
    y = np.concatenate(outs, axis=0)
    rate = meta.get("sample_rate", model.sample_rate)
    if not 1 <= rate <= 10**6:
        raise CodecError(f"bad sample_rate {rate} in the token file")
    y = resample(y, model.sample_rate, rate, axis=1)
    if "original_length" in meta:
        n = meta["original_length"]
        y = y[:, :n] if y.shape[1] >= n else np.pad(y, ((0, 0), (0, n - y.shape[1])))
    return np.ascontiguousarray(y, dtype=np.float32), rate


def _scalar(arrays: dict[str, Any], key: str) -> int:
    v = np.asarray(arrays[key])
    if v.shape != () or v.dtype.kind not in "iu" or int(v) < 0:
        raise CodecError(f"token file field {key!r} must be a non-negative integer")
    return int(v)


def audio_bytes(y: np.ndarray, rate: int, suffix: str) -> bytes:
    """``y`` (channels, T) as a 16-bit PCM WAV (samples clipped to [-1, 1]), FLAC or OGG Vorbis file."""
    import soundfile as sf

    fmt = AUDIO_FORMATS.get(suffix.lower())
    if fmt is None:
        raise CodecError(f"decoded audio is written as {', '.join(AUDIO_FORMATS)}, not {suffix or 'no suffix'!r}")
    buf = io.BytesIO()
    sf.write(buf, np.clip(y.T, -1.0, 1.0), rate, format=fmt, subtype=None if fmt != "WAV" else "PCM_16")
    return buf.getvalue()


def suffix(path: str) -> str:
    return os.path.splitext(path)[1].lower()


__all__ = ["audio_bytes", "decode", "encode", "from_bytes", "read_audio", "to_bytes"]
