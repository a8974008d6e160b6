"""Audio metrics for rate-distortion sweeps: delay alignment, ViSQOL v3, PESQ-WB, STOI, SI-SNR, log-mel and LSD<4k.

Signals are float numpy arrays, mono (frames,) or (frames, channels). Every metric runs on the mono downmix (the
mean over channels), as the audio study (``studies/audio_study.py``) and ViSQOL's own file reader do, so errors
that cancel in the downmix are not seen. The perceptual metrics come from their maintained packages
(visqol-python, pesq, pystoi), each at the sample rate it is defined for; the three spectral and waveform metrics
are the audio study's, copied here. Where a rate must change, both signals go through
``scipy.signal.resample_poly`` (polyphase, its default Kaiser window with beta 5, zero padding at the ends).
Nothing downloads at run time: ViSQOL's SVR model ships in its wheel, and its speech mode is pinned to the
exponential-fit MOS mapping (visqol-python's "polynomial" fallback), which needs no model. Every function is
deterministic run to run; ViSQOL's audio mode sums in Numba threads, so its score can change in the 14th digit
with NUMBA_NUM_THREADS.

:func:`measure_audio` aligns a decoded clip to its reference and computes the metrics chosen by name, so a sweep
can skip the slow ones (ViSQOL takes seconds per clip; see :data:`METRIC_SETS`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nctk.codec.audio.resample import resample
from nctk.entropy.errors import CodecError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from nctk.rd.baselines.audio import Audio

METRICS = ("visqol-speech", "visqol-audio", "pesq-wb", "stoi", "si-snr", "log-mel", "lsd-4k")
DEFAULT_METRICS = METRICS  # what measure_audio computes unless told otherwise
# Named sets for sweeps. On a 15 s clip at 24 kHz (2-core CPU): "fast" takes about 0.2 s, PESQ 0.2 s, ViSQOL
# speech 1.2 s and audio 3.5 s (its first call in a process 2 s more; the very first, 15 s of Numba compiling).
METRIC_SETS: dict[str, tuple[str, ...]] = {
    "all": METRICS,
    "speech": ("visqol-speech", "pesq-wb", "stoi", "si-snr", "log-mel", "lsd-4k"),
    "music": ("visqol-audio", "si-snr", "log-mel", "lsd-4k"),
    "fast": ("stoi", "si-snr", "log-mel", "lsd-4k"),
}

STUDY_RATE = 24000  # the audio study's rate: its log-mel and LSD<4k are defined on a 24 kHz grid
VISQOL_SPEECH_RATE, VISQOL_AUDIO_RATE, PESQ_RATE = 16000, 48000, 16000


def _mono(x: Any, name: str) -> np.ndarray:
    """``x`` checked (a non-empty, finite, real float array of 1 or 2 dimensions) and downmixed to float64 mono."""
    import numpy as np

    if not isinstance(x, np.ndarray):
        raise CodecError(f"{name} must be a numpy array of shape (frames,) or (frames, channels), "
                         f"got {type(x).__name__}")
    if x.dtype.kind != "f" or x.ndim not in (1, 2) or x.size == 0:
        raise CodecError(f"{name} must be a non-empty float array of shape (frames,) or (frames, channels), "
                         f"got shape {x.shape} and dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise CodecError(f"{name} contains NaN or infinity")
    return x.astype(np.float64) if x.ndim == 1 else x.astype(np.float64).mean(axis=1)


def _pair(ref: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    r, t = _mono(ref, "ref"), _mono(test, "test")
    if ref.shape != test.shape:
        raise CodecError(f"ref and test must have the same shape, got {ref.shape} and {test.shape} "
                         "(align() them first)")
    return r, t


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise CodecError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    return sample_rate


def align(ref: np.ndarray, test: np.ndarray, sample_rate: int,
          max_lag_s: float = 0.1) -> tuple[np.ndarray, np.ndarray, int]:
    """Cut ``ref`` and ``test`` to their common span after removing ``test``'s delay; returns both and the lag.

    The lag is an integer number of samples found on the mono downmixes: c[k] = sum_n test[n + k] * ref[n]
    (``scipy.signal.correlate``, FFT method, float64) for |k| <= round(max_lag_s * sample_rate); the largest c
    wins, ties going to the smallest |k| (silence gives 0). A positive lag means ``test`` is late (``test[n + lag]``
    matches ``ref[n]``) and its first ``lag`` frames are dropped; a negative one drops ``ref``'s first ``-lag``.
    Both are then cut to the shorter remaining length, which removes the padding codecs append. This undoes MP3's
    encoder delay where the decoder cannot (LAME's 1105 samples without its gapless header) and finds 0 or +-1 for
    Opus and Vorbis, whose decoders already drop the Ogg pre-skip. The arrays come back as views, channels kept.
    """
    import numpy as np
    from scipy.signal import correlate, correlation_lags

    r, t = _mono(ref, "ref"), _mono(test, "test")
    if ref.ndim != test.ndim or ref.shape[1:] != test.shape[1:]:
        raise CodecError(f"ref and test must have the same channels, got shapes {ref.shape} and {test.shape}")
    _check_rate(sample_rate)
    if isinstance(max_lag_s, bool) or not isinstance(max_lag_s, int | float) or not 0 <= max_lag_s < math.inf:
        raise CodecError(f"max_lag_s must be a finite number of seconds >= 0, got {max_lag_s!r}")
    c = correlate(t, r, mode="full", method="fft")
    lags = correlation_lags(len(t), len(r), mode="full")
    within = np.abs(lags) <= round(max_lag_s * sample_rate)
    cand, score = lags[within], c[within]
    order = np.lexsort((cand, np.abs(cand)))  # by |k|, then k: argmax's first hit is the smallest |k|
    lag = int(cand[order][np.argmax(score[order])])
    ref_a, test_a = (ref, test[lag:]) if lag >= 0 else (ref[-lag:], test)
    n = min(len(ref_a), len(test_a))  # >= 1: correlate's lags never pass the end of either signal
    return ref_a[:n], test_a[:n], lag


_VISQOL: dict[str, Any] = {}


def _visqol(mode: str, ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 MOS-LQO (visqol-python) in ``mode`` at its rate; one API object per mode, made on first use."""
    r, t = _pair(ref, test)
    sr = _check_rate(sample_rate)
    api = _VISQOL.get(mode)
    if api is None:
        from visqol import VisqolApi  # note: the import sets NUMBA_THREADING_LAYER=workqueue if it is unset

        api = VisqolApi()
        # speech: the polynomial MOS mapping, explicitly: left to None, visqol-python would switch to its lattice
        # model whenever ai-edge-litert happens to be installed, changing every score
        api.create(mode="speech", use_lattice_model=False) if mode == "speech" else api.create(mode="audio")
        _VISQOL[mode] = api
    rate = VISQOL_SPEECH_RATE if mode == "speech" else VISQOL_AUDIO_RATE
    if not r.any():
        raise CodecError(f"visqol-{mode}: the reference is silent")
    try:
        return float(api.measure_from_arrays(resample(r, sr, rate), resample(t, sr, rate), rate).moslqo)
    except (ValueError, IndexError, ZeroDivisionError) as e:  # too short for one analysis patch, and the like
        raise CodecError(f"visqol-{mode} failed on a {len(r) / sr:.2f} s clip: {e}") from e


def visqol_speech(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 speech mode (MOS-LQO, 1 to 5) at 16 kHz, the rate it is defined for (resample_poly from others).

    visqol-python's speech mode (voice-activity patches, 21 bands) with the exponential-fit similarity-to-MOS
    mapping of C++ ViSQOL's ``speech_similarity_to_quality_mapper``, scaled to a maximum of 5 (its default). C++
    ViSQOL v3.3 maps with a lattice model instead; visqol-python ships that model but runs it only with
    ai-edge-litert installed, and warns that the exponential fit can read 1 to 2 points higher, so compare these
    scores with each other, not with published lattice-mode numbers.
    """
    return _visqol("speech", ref, test, sample_rate)


def visqol_audio(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """ViSQOL v3 audio mode (MOS-LQO, 1 to 5) at 48 kHz with its bundled SVR model (resample_poly from others).

    Content above the input's Nyquist frequency is absent from both signals (a 24 kHz clip has none above 12 kHz),
    which the model reads as band limitation of the reference as well, so scores compare between codecs at one
    input rate, not across rates.
    """
    return _visqol("audio", ref, test, sample_rate)


def pesq_wb(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2 MOS-LQO, about 1 to 4.6; the ``pesq`` package) at 16 kHz (resample_poly)."""
    from pesq import PesqError, pesq

    r, t = _pair(ref, test)
    sr = _check_rate(sample_rate)
    if not r.any():
        raise CodecError("pesq-wb: the reference is silent")
    try:
        return float(pesq(PESQ_RATE, resample(r, sr, PESQ_RATE), resample(t, sr, PESQ_RATE), "wb"))
    except PesqError as e:  # no utterances found, buffer too short
        raise CodecError(f"pesq-wb failed on a {len(r) / sr:.2f} s clip: {type(e).__name__}: {e}") from e


def stoi(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """STOI (0 to 1, pystoi, ``extended=False``); pystoi resamples to its 10 kHz itself.

    A clip with fewer than 30 non-silent 25.6 ms frames has no STOI: pystoi would warn and return 1e-5, which
    would drag a curve's mean down unseen, so that raises CodecError instead.
    """
    from pystoi import stoi as pystoi_stoi

    r, t = _pair(ref, test)
    sr = _check_rate(sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            return float(pystoi_stoi(r, t, sr, extended=False))
        except RuntimeWarning as e:
            raise CodecError(f"stoi: the {len(r) / sr:.2f} s clip is too short or too silent ({e})") from e


def si_snr(ref: np.ndarray, test: np.ndarray) -> float:
    """Scale-invariant SNR in dB (zero-mean signals): the audio study's ``si_snr``, on the mono downmix.

    Energies are floored at 1e-20, as in the study, so identical signals give a large finite value (about
    10 log10(energy / 1e-20)), not infinity.
    """
    import numpy as np

    r, d = _pair(ref, test)
    r, d = r - r.mean(), d - d.mean()
    s = (d @ r) / max(r @ r, 1e-20) * r
    e = d - s
    return float(10 * np.log10(max(s @ s, 1e-20) / max(e @ e, 1e-20)))


_MEL = None


def _log_mel(x: np.ndarray) -> torch.Tensor:
    """The audio study's ``log_mel``: 80 mel bins, n_fft 1024, hop 256, log10 magnitude, 1e-5 floor, at 24 kHz."""
    import torch

    global _MEL
    if _MEL is None:
        import torchaudio

        _MEL = torchaudio.transforms.MelSpectrogram(sample_rate=STUDY_RATE, n_fft=1024, hop_length=256, n_mels=80,
                                                    power=1.0)
    return torch.log10(_MEL(torch.as_tensor(x, dtype=torch.float32)).clamp_min(1e-5))


def log_mel_distance(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference of log-mel spectrograms (lower is better): the audio study's ``logmel_distance``.

    Defined at 24 kHz (torchaudio MelSpectrogram, htk mel scale, 0 to 12 kHz, magnitude); other rates are
    resampled to 24 kHz first so the bins are the study's. Above 12 kHz nothing is seen; a 16 kHz clip has floor
    values on both sides above 8 kHz, which lowers its distance, so compare values at one input rate.
    """
    r, t = _pair(ref, test)
    sr = _check_rate(sample_rate)
    return float((_log_mel(resample(r, sr, STUDY_RATE)) - _log_mel(resample(t, sr, STUDY_RATE))).abs().mean())


LSD_FFT = 2048  # 11.7 Hz bins at 24 kHz: speech harmonics (F0 >= 80 Hz) are resolved, unlike on the mel scale
LSD_TOP_HZ = 4000.0


def lsd_4k(ref: np.ndarray, test: np.ndarray, sample_rate: int) -> float:
    """Log-spectral distance below 4 kHz (lower is better): the audio study's ``lowband_lsd``, at 24 kHz.

    log10 STFT magnitude (n_fft 2048, hop 256, Hann, 1e-5 floor), mean absolute difference over the bins up to
    4 kHz: the log-mel metric's form at a resolution that sees pitch harmonics. Other rates are resampled to
    24 kHz first (the band is below every supported Nyquist frequency, so the values compare across rates).
    """
    import numpy as np
    import torch

    r, t = _pair(ref, test)
    sr = _check_rate(sample_rate)
    win = torch.hann_window(LSD_FFT, dtype=torch.float64)

    def spec(x: np.ndarray) -> torch.Tensor:
        s = torch.stft(torch.from_numpy(x.astype(np.float64)), LSD_FFT, 256, window=win, return_complex=True).abs()
        return torch.log10(s[: int(LSD_TOP_HZ * LSD_FFT / STUDY_RATE) + 1].clamp_min(1e-5))

    return float((spec(resample(r, sr, STUDY_RATE)) - spec(resample(t, sr, STUDY_RATE))).abs().mean())


_FUNCTIONS = {
    "visqol-speech": visqol_speech, "visqol-audio": visqol_audio, "pesq-wb": pesq_wb, "stoi": stoi,
    "log-mel": log_mel_distance, "lsd-4k": lsd_4k,
}


def resolve_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """Metric names from a set name in :data:`METRIC_SETS`, one metric name, or a list of names (order kept,
    duplicates dropped); CodecError listing the known names for anything else. Sweeps call it before any work."""
    known = f"known: {', '.join(METRICS)} (or a set: {', '.join(METRIC_SETS)})"
    if isinstance(metrics, str):
        names: tuple[Any, ...] = METRIC_SETS.get(metrics, (metrics,))
    elif isinstance(metrics, Iterable):
        names = tuple(metrics)
    else:
        raise CodecError(f"metrics must be a metric or set name or a list of names, got {type(metrics).__name__}; "
                         f"{known}")
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise CodecError(f"unknown audio metric {unknown[0]!r}; {known}")
    if not names:
        raise CodecError(f"no audio metric chosen; {known}")
    return tuple(dict.fromkeys(names))


def measure_audio(ref: Audio, test: Audio, metrics: str | Iterable[str] = DEFAULT_METRICS, *,
                  max_lag_s: float = 0.1) -> dict[str, float]:
    """Align ``test`` (a decoded clip) to ``ref`` (:func:`align`) and compute the chosen metrics on the common span.

    ``metrics`` is anything :func:`resolve_metrics` takes. Returns ``{"delay_samples": lag, metric: value, ...}``
    with keys from :data:`METRICS` ("log-mel" and "lsd-4k" are distances, lower is better). Both clips must have
    one sample rate and channel count; CodecError (before any work) otherwise or for unknown metric names.
    """
    from nctk.rd.baselines.audio import Audio

    names = resolve_metrics(metrics)
    for name, a in (("ref", ref), ("test", test)):
        if not isinstance(a, Audio):
            raise CodecError(f"{name} must be an nctk.rd.baselines.audio.Audio, got {type(a).__name__}")
    if (ref.sample_rate, ref.channels) != (test.sample_rate, test.channels):
        raise CodecError(f"ref is {ref.channels}-channel {ref.sample_rate} Hz but test is {test.channels}-channel "
                         f"{test.sample_rate} Hz")
    r, t, lag = align(ref.samples, test.samples, ref.sample_rate, max_lag_s)
    out: dict[str, float] = {"delay_samples": lag}
    for name in names:
        out[name] = si_snr(r, t) if name == "si-snr" else _FUNCTIONS[name](r, t, ref.sample_rate)
    return out
