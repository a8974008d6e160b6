"""nctk.rd.baselines.audio and nctk.rd.audio_metrics: codec round trips, rates, alignment, metrics, refusals.

Signals are synthetic and a few seconds long (made here, never read from the data folders), so the file runs in
well under a minute on two cores; the slow metrics (ViSQOL) get one short clip each.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from nctk.entropy.errors import CodecError, NctkError
from nctk.rd import audio_metrics as am
from nctk.rd.baselines import available_ids, get
from nctk.rd.baselines.audio import AUDIO_BASELINES, Audio, AudioCodec

LOSSY = [c for c in ("opus", "vorbis", "mp3") if AUDIO_BASELINES[c].available()]
AVAILABLE = available_ids("audio")


def voice(seconds: float, sr: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A speech-like float32 signal: harmonics of a gliding pitch, syllable-rate envelope, a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 220 < sr / 2)
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 0.5  # syllables with pauses between them
    x = 0.25 * envelope * x + 0.01 * rng.standard_normal(len(t))
    out = np.stack([np.roll(x, 37 * c) for c in range(channels)], 1)
    return out.astype(np.float32)


def pcm16(x: np.ndarray) -> np.ndarray:
    """``x`` on the 16-bit grid (integers / 32768), as a 16-bit file reads."""
    return (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)


@pytest.fixture(scope="module")
def clip24() -> Audio:
    return Audio(voice(2.0, 24000), 24000)


def test_modules_import_neither_numpy_nor_codecs():
    code = ("import nctk.rd.baselines.audio, nctk.rd.audio_metrics, sys; "
            "print('numpy' in sys.modules, 'soundfile' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_registry_and_protocol():
    assert list(AUDIO_BASELINES) == ["opus", "vorbis", "mp3", "flac"]
    for c in AUDIO_BASELINES.values():
        assert isinstance(c, AudioCodec) and c.modality == "audio"
        lo, hi = c.quality_range
        assert list(c.qualities) == sorted(set(c.qualities)) and lo <= c.qualities[0] and c.qualities[-1] <= hi
    assert AUDIO_BASELINES["flac"].lossless and not any(AUDIO_BASELINES[c].lossless for c in ("opus", "mp3"))
    with pytest.raises(CodecError, match="unknown rd codec 'aac'; available: "):
        get("aac")


@pytest.mark.parametrize("codec_id", AVAILABLE)
@pytest.mark.parametrize("channels", [1, 2])
def test_round_trip_keeps_channels_and_rate(codec_id, channels):
    codec = get(codec_id)
    audio = Audio(voice(1.0, 24000, channels=channels), 24000)
    q = codec.qualities[len(codec.qualities) // 2] * (channels if codec_id == "opus" else 1)
    out = codec.decode(codec.encode(audio, q), audio)
    assert isinstance(out, Audio) and out.samples.dtype == np.float32
    assert (out.sample_rate, out.channels) == (24000, channels)
    assert abs(out.frames - audio.frames) <= 1152  # MP3 without its gapless header keeps LAME's padding
    assert codec.version().startswith("soundfile ")


@pytest.mark.parametrize("codec_id", LOSSY)
def test_rate_rises_along_the_default_sweep(codec_id, clip24):
    codec = get(codec_id)
    sizes = [len(codec.encode(clip24, q)) for q in codec.qualities]
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False)), sizes


def test_opus_and_mp3_hit_their_nominal_rates(clip24):
    for codec_id, q in (("opus", 24), ("opus", 64), ("mp3", 32), ("mp3", 128)):
        if codec_id in LOSSY:
            kbps = 8 * len(get(codec_id).encode(clip24, q)) / clip24.duration / 1000
            assert q * 0.9 < kbps < q * 1.25 + 2, (codec_id, q, kbps)  # + Ogg pages / one header frame


@pytest.mark.skipif("flac" not in AVAILABLE, reason="libsndfile without FLAC")
def test_flac_is_bit_exact_on_16_bit_input():
    flac = get("flac")
    x = pcm16(voice(1.0, 16000, channels=2))
    x[:5] = [[-1.0, 32767 / 32768]] * 5  # both ends of the 16-bit range
    audio = Audio(x, 16000)
    for level in (0, 8):
        assert np.array_equal(flac.decode(flac.encode(audio, level), audio).samples, x)
    off_grid = Audio(voice(0.5, 16000), 16000)  # float input is rounded to 16 bits: error <= half a step
    err = np.abs(flac.decode(flac.encode(off_grid, 5), off_grid).samples - off_grid.samples).max()
    assert err <= 0.5 / 32768 + 1e-9


@pytest.mark.parametrize("codec_id, quality, message", [
    ("opus", 5, r"quality must be an integer in \[6, 256\], got 5"),
    ("opus", 24.0, "got 24.0"),
    ("opus", True, "got True"),
    ("vorbis", 101, r"\[0, 100\]"),
    ("mp3", 33, "bitrates are 8, 16, 24"),
    ("flac", 9, r"\[0, 8\]"),
])
def test_bad_qualities_are_refused(codec_id, quality, message, clip24):
    if codec_id not in AVAILABLE:
        pytest.skip(f"{codec_id} not available")
    with pytest.raises(CodecError, match=message):
        get(codec_id).encode(clip24, quality)


def test_codec_limits_are_refused_with_the_allowed_values():
    if "opus" in AVAILABLE:
        with pytest.raises(CodecError, match="44100 Hz is not one the format carries .8000, 12000, 16000, 24000, "
                                             "48000 Hz."):
            get("opus").encode(Audio(voice(0.2, 44100), 44100), 24)
        with pytest.raises(CodecError, match=r"6 kbps per channel for 2 channels \(use at least 12\)"):
            get("opus").encode(Audio(voice(0.2, 24000, channels=2), 24000), 8)
    if "mp3" in AVAILABLE:
        with pytest.raises(CodecError, match="at 48000 Hz the MP3 bitrates are 32, 40"):
            get("mp3").encode(Audio(voice(0.2, 48000), 48000), 16)
        with pytest.raises(CodecError, match="96000 Hz is not one"):
            get("mp3").encode(Audio(voice(0.2, 96000), 96000), 128)
        with pytest.raises(CodecError, match="at most 2 channels, got 3"):
            get("mp3").encode(Audio(voice(0.2, 24000, channels=3), 24000), 64)


@pytest.mark.parametrize("make, message", [
    (lambda: Audio(np.zeros((10, 1)), 16000), "dtype float64"),
    (lambda: Audio(np.zeros(10, np.float32), 16000), r"shape \(10,\)"),
    (lambda: Audio(np.zeros((0, 1), np.float32), 16000), r"shape \(0, 1\)"),
    (lambda: Audio(np.full((4, 1), np.nan, np.float32), 16000), "NaN"),
    (lambda: Audio(np.zeros((4, 1), np.float32), 0), "positive integer"),
    (lambda: Audio([[0.0]], 16000), "got list"),
    (lambda: Audio.from_array(np.zeros(4, np.int16), 16000), "dtype int16"),
])
def test_malformed_audio_is_refused(make, message):
    with pytest.raises(CodecError, match=message) as e:
        make()
    assert isinstance(e.value, NctkError)


def test_from_array_takes_mono_and_float64():
    a = Audio.from_array(np.linspace(-1, 1, 8), 8000)
    assert a.samples.shape == (8, 1) and a.samples.dtype == np.float32 and a.duration == 0.001


@pytest.mark.skipif(not {"opus", "flac"} <= set(AVAILABLE), reason="needs Opus and FLAC")
def test_decode_refuses_other_streams(clip24):
    opus, flac = get("opus"), get("flac")
    data = opus.encode(clip24, 24)
    with pytest.raises(CodecError, match="flac: cannot decode .* bytes as FLAC/PCM_16: they are OGG/OPUS"):
        flac.decode(data, clip24)
    with pytest.raises(CodecError, match="opus: cannot decode 7 bytes as OGG/OPUS"):
        opus.decode(b"garbage", clip24)
    with pytest.raises(CodecError, match="the stream is 1-channel 24000 Hz, the reference 1-channel 16000 Hz"):
        opus.decode(data, Audio(voice(0.1, 16000), 16000))
    with pytest.raises(CodecError, match="audio must be an nctk.rd.baselines.audio.Audio, got ndarray"):
        opus.encode(clip24.samples, 24)


# ---------------------------------------------------------------------------------------------- alignment

@pytest.mark.parametrize("lag", [0, 1, 37, 1105, -1, -250])
@pytest.mark.parametrize("channels", [1, 2])
def test_align_recovers_a_known_delay_exactly(lag, channels):
    rng = np.random.default_rng(lag & 0xFFFF)
    src = rng.standard_normal((9000, channels)).astype(np.float32)
    ref = src[2000:7000]
    test = src[2000 - lag:7000 - lag + 700]  # test[n + lag] == ref[n], plus 700 frames of trailing "padding"
    if channels == 1:
        ref, test = ref[:, 0], test[:, 0]
    r, t, found = am.align(ref, test, 16000)
    assert found == lag
    assert r.shape == t.shape and np.array_equal(r, t) and len(r) == min(5000 - max(-lag, 0), 5700 - max(lag, 0))


def test_align_stays_within_max_lag_and_gives_zero_on_silence():
    x = np.random.default_rng(1).standard_normal(4000)
    _, _, lag = am.align(x[:3000], x[:3000], 8000, max_lag_s=0.0)
    assert lag == 0
    _, _, lag = am.align(x[500:3500], x[:3000], 8000, max_lag_s=0.01)  # true lag 500 > 80 allowed
    assert abs(lag) <= 80
    _, _, lag = am.align(np.zeros(1000), np.zeros(1200), 8000)
    assert lag == 0
    with pytest.raises(CodecError, match="max_lag_s must be a finite number"):
        am.align(x, x, 8000, max_lag_s=-1)
    with pytest.raises(CodecError, match="same channels"):
        am.align(x[:, None], np.stack([x, x], 1), 8000)


# ------------------------------------------------------------------------------------------------ metrics

@pytest.fixture(scope="module")
def speech16() -> tuple[np.ndarray, np.ndarray]:
    """A 3 s speech-like clip at 16 kHz and the same with white noise at about 10 dB SNR."""
    x = voice(3.0, 16000)[:, 0].astype(np.float64)
    noise = np.random.default_rng(5).standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10)
    return x, x + noise


def test_fast_metrics_are_best_on_identity_and_drop_with_noise(speech16):
    x, noisy = speech16
    assert am.si_snr(x, x.copy()) > 100
    assert am.log_mel_distance(x, x.copy(), 16000) == 0.0 and am.lsd_4k(x, x.copy(), 16000) == 0.0
    assert am.stoi(x, x.copy(), 16000) > 0.999
    assert 9 < am.si_snr(x, noisy) < 11
    assert am.log_mel_distance(x, noisy, 16000) > 0.1 and am.lsd_4k(x, noisy, 16000) > 0.1
    assert am.stoi(x, noisy, 16000) < 0.95


def test_si_snr_ignores_scale_and_downmixes():
    x = np.random.default_rng(2).standard_normal((2000, 2))
    assert am.si_snr(x, 0.5 * x) > 100
    assert am.si_snr(x, x[:, ::-1]) == pytest.approx(am.si_snr(x.mean(1), x[:, ::-1].mean(1)))


def test_pesq_and_visqol_speech_rank_noise_below_the_clean_clip(speech16):
    pytest.importorskip("pesq")
    pytest.importorskip("visqol")
    x, noisy = speech16
    clean, dirty = am.pesq_wb(x, x.copy(), 16000), am.pesq_wb(x, noisy, 16000)
    assert clean > 4.5 and dirty < clean - 1
    clean, dirty = am.visqol_speech(x, x.copy(), 16000), am.visqol_speech(x, noisy, 16000)
    assert clean > 4.5 and dirty < clean - 0.5
    assert am.visqol_speech(x, noisy, 16000) == dirty  # deterministic


def test_visqol_audio_ranks_noise_below_the_clean_clip():
    pytest.importorskip("visqol")
    x = voice(2.0, 24000, seed=3)[:, 0].astype(np.float64)
    noisy = x + np.random.default_rng(6).standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10)
    clean, dirty = am.visqol_audio(x, x.copy(), 24000), am.visqol_audio(x, noisy, 24000)
    assert clean > 4.5 and dirty < clean - 0.5


def test_metrics_refuse_unusable_input(speech16):
    x, _ = speech16
    with pytest.raises(CodecError, match=r"same shape, got \(48000,\) and \(47999,\) \(align\(\) them first\)"):
        am.si_snr(x, x[:-1])
    with pytest.raises(CodecError, match="test must be a non-empty float array"):
        am.log_mel_distance(x, x.astype(np.int16), 16000)
    with pytest.raises(CodecError, match="sample_rate must be a positive integer"):
        am.lsd_4k(x, x, 16000.0)
    with pytest.raises(CodecError, match="pesq-wb: the reference is silent"):
        am.pesq_wb(np.zeros(16000), x[:16000], 16000)
    with pytest.raises(CodecError, match="stoi: the 0.20 s clip is too short"):
        am.stoi(x[:3200], x[:3200], 16000)


def test_metric_names_resolve_or_are_refused():
    assert am.resolve_metrics("fast") == ("stoi", "si-snr", "log-mel", "lsd-4k")
    assert am.resolve_metrics("stoi") == ("stoi",)
    assert am.resolve_metrics(["si-snr", "log-mel", "si-snr"]) == ("si-snr", "log-mel")
    assert am.resolve_metrics("all") == am.METRICS
    for bad in ("psnr", ["stoi", "mos"], [], 3):
        with pytest.raises(CodecError, match="known: visqol-speech, visqol-audio, pesq-wb, stoi, si-snr, log-mel, "
                                             "lsd-4k"):
            am.resolve_metrics(bad)


@pytest.mark.skipif("mp3" not in AVAILABLE, reason="libsndfile without MP3")
def test_measure_audio_aligns_a_delayed_decoder_output(clip24):
    mp3 = get("mp3")
    out = mp3.decode(mp3.encode(clip24, 32), clip24)  # no gapless header at 32 kbps: LAME's delay stays
    m = am.measure_audio(clip24, out, "fast")
    assert list(m) == ["delay_samples", "stoi", "si-snr", "log-mel", "lsd-4k"]
    assert m["delay_samples"] == 1105 and m["si-snr"] > 5
    with pytest.raises(CodecError, match="unknown audio metric 'mos'"):
        am.measure_audio(clip24, out, ["si-snr", "mos"])
    with pytest.raises(CodecError, match="ref is 1-channel 24000 Hz but test is 1-channel 16000 Hz"):
        am.measure_audio(clip24, Audio(voice(1.0, 16000), 16000), "fast")
    with pytest.raises(CodecError, match="test must be an nctk.rd.baselines.audio.Audio"):
        am.measure_audio(clip24, out.samples, "fast")
