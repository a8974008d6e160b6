"""Audio in rate-distortion sweeps: reading a file as float samples and measuring one codec on it at one quality.

Rate is kilobits per second of the codec's real bytes (container included) over the clip's duration. The decoded
signal is aligned to the original before scoring (:func:`nctk.rd.audio_metrics.align`: the integer delay that
maximises the cross-correlation, within 100 ms), then scored with the metrics asked for (default
:data:`DEFAULT_METRICS`): ViSQOL v3, PESQ wide-band, STOI, SI-SNR and the audio study's log-mel and LSD<4k.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nctk.entropy.errors import CodecError

if TYPE_CHECKING:
    from nctk.rd.baselines.audio import Audio, AudioCodec

PathLike = str | os.PathLike


def probe(path: PathLike) -> dict[str, int]:
    """``{"frames", "sample_rate", "channels"}`` from the file's header: a bad file fails before a sweep starts."""
    import soundfile as sf

    try:
        info = sf.info(os.fspath(path))
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        raise CodecError(f"cannot read audio {os.fspath(path)!r}: {e}") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise CodecError(f"cannot use audio {os.fspath(path)!r}: it holds no samples")
    return {"frames": int(info.frames), "sample_rate": int(info.samplerate), "channels": int(info.channels)}


def load(path: PathLike) -> Audio:
    """The file's samples as float32 (frames, channels) in [-1, 1] with its sample rate; CodecError if unreadable."""
    import soundfile as sf

    from nctk.rd.baselines.audio import Audio

    try:
        samples, rate = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        raise CodecError(f"cannot read audio {os.fspath(path)!r}: {e}") from e
    return Audio(samples, int(rate))


def resolve_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """Metric names from names and set names ("speech", "music", "fast", "all"; see
    :data:`nctk.rd.audio_metrics.METRIC_SETS`), in order, once each; CodecError listing the known ones."""
    from nctk.rd.audio_metrics import METRIC_SETS
    from nctk.rd.audio_metrics import resolve_metrics as resolve

    return resolve([name for m in metrics for name in METRIC_SETS.get(m, (m,))])


def _metric_names(metrics: tuple[str, ...] | None) -> tuple[str, ...]:
    from nctk.rd.audio_metrics import DEFAULT_METRICS

    return tuple(DEFAULT_METRICS) if metrics is None else metrics


def measure(codec: AudioCodec, audio: Audio, quality: int, metrics: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Encode and decode ``audio``; its ``bytes``, ``kbps``, the metrics (after alignment; ``delay_samples`` is the
    delay found) and the two timings in seconds."""
    from nctk.rd.audio_metrics import measure_audio

    t0 = time.perf_counter()
    data = codec.encode(audio, quality)
    t1 = time.perf_counter()
    decoded = codec.decode(data, audio)
    t2 = time.perf_counter()
    seconds = audio.samples.shape[0] / audio.sample_rate
    scores = measure_audio(audio, decoded, metrics=_metric_names(metrics))
    return {"bytes": len(data), "kbps": 8.0 * len(data) / seconds / 1000.0, **scores,
            "encoding_time": t1 - t0, "decoding_time": t2 - t1}


def required(info: dict[str, Any], codec: Any, metrics: tuple[str, ...] | None = None) -> list[str]:
    """The numbers every audio item holds: what a cached item is checked against."""
    return ["bytes", "kbps", *_metric_names(metrics)]
