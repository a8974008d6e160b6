"""The design-study scripts' building blocks: exact transforms and real bitstreams that decode.

The studies themselves (training, Kodak / eval-set numbers) are long benchmarks, never in this suite;
these checks use tiny synthetic inputs and untrained models, so they need no data and take seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studies"))

image_study = pytest.importorskip("image_study")
audio_study = pytest.importorskip("audio_study")


@pytest.mark.parametrize("learned", [False, True])
def test_wavelet_is_invertible(learned: bool) -> None:
    torch.manual_seed(0)
    wt = image_study.Wavelet2D(learned)
    if learned:  # make the learned parts non-trivial: invertibility must not depend on their values
        for p in wt.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(2, 3, 64, 96)
    ll, bands = wt.analysis(x)
    rec = ll
    for lev in reversed(range(image_study.LEVELS)):
        rec = wt.synth_level(lev, rec, *bands[lev])
    assert torch.allclose(image_study.Wavelet2D.to_rgb(rec), x, atol=1e-5)


def test_wavelet_subband_gains_make_it_mse_preserving() -> None:
    """Uniform quantisation noise of variance v in every subband gives pixel MSE ~ v."""
    torch.manual_seed(1)
    wt = image_study.Wavelet2D(False)
    ll, bands = wt.analysis(torch.rand(1, 3, 256, 256))
    step = 0.01
    rec = ll + step * (torch.rand_like(ll) - 0.5)
    for lev in reversed(range(image_study.LEVELS)):
        rec = wt.synth_level(lev, rec, *(b + step * (torch.rand_like(b) - 0.5) for b in bands[lev]))
    mse = float((image_study.Wavelet2D.to_rgb(rec) - image_study.Wavelet2D.to_rgb(
        _synth(wt, ll, bands))).pow(2).mean())
    assert mse == pytest.approx(step**2 / 12, rel=0.1)


def _synth(wt, ll, bands):
    rec = ll
    for lev in reversed(range(image_study.LEVELS)):
        rec = wt.synth_level(lev, rec, *bands[lev])
    return rec


def test_wavelet_codec_bitstream_round_trip() -> None:
    torch.manual_seed(2)
    model = image_study.WaveletCodec(learned=False, enhance=False).eval()
    x = torch.rand(1, 3, 64, 64)
    step = 0.3
    streams = image_study.wavelet_encode(model, x, step)
    _, expected = model.quantise(x, step, noisy=False)
    out = image_study.wavelet_decode(model, streams, (64, 64), step, enhance=False)
    assert torch.equal(out, expected.clamp(0, 1))


def test_hyperprior_bitstream_round_trip() -> None:
    pytest.importorskip("compressai")
    torch.manual_seed(3)
    model = image_study.build("hyperprior").eval()
    x = torch.rand(1, 3, 64, 64)
    streams = image_study.hyper_encode(model, x, 1.0)
    out = image_study.hyper_decode(model, streams, 1.0)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_bd_rate_of_a_curve_against_itself_scaled() -> None:
    r = [0.25, 0.5, 1.0, 2.0]
    p = [26.0, 29.0, 32.5, 36.0]
    assert image_study.bd_rate(r, p, r, p) == pytest.approx(0.0, abs=1e-9)
    assert image_study.bd_rate(r, p, [v * 0.7 for v in r], p) == pytest.approx(-30.0, abs=1e-6)


def test_mdct_is_perfect_reconstruction() -> None:
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    c = audio_study.mdct(x)
    assert np.abs(audio_study.imdct(c, len(x)) - x).max() < 1e-4


def test_mdct_rvq_bitstream_round_trip() -> None:
    """An untrained model (codebooks from one batch) still codes and decodes real streams."""
    rng = np.random.default_rng(1)
    t = np.arange(48000) / audio_study.SR
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    model = audio_study.MdctRvq(env_stages=2, shape_stages=2)
    model.train()
    model.train_step([torch.from_numpy(np.tile(x, 12))])
    model.eval()
    model.fit_tables([x])
    for env, shape in ((1, 0), (2, 2)):
        streams = model.encode(x, env, shape)
        assert len(streams) == env + shape
        y = model.decode(streams, len(x), env)
        assert y.shape == x.shape
        assert np.array_equal(y, model.decode(streams, len(x), env))  # seeded noise: repeatable
        assert audio_study.logmel_distance(x, y) < 1.0


def test_logmel_distance_zero_for_identical_and_large_for_silence() -> None:
    x = np.random.default_rng(2).standard_normal(24000).astype(np.float32) * 0.1
    assert audio_study.logmel_distance(x, x) == 0.0
    assert audio_study.logmel_distance(x, np.zeros_like(x)) > 2.0


def test_lowband_lsd_sees_harmonics_and_ignores_a_4khz_low_pass() -> None:
    """Noise on a harmonic tone's smoothed envelope is far from it below 4 kHz; a 4.5 kHz low-pass of a
    broadband signal costs the low-band distance almost nothing while the log-mel distance punishes it."""
    sr = audio_study.SR
    t = np.arange(sr * 2) / sr
    rng = np.random.default_rng(0)
    tone = (sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 20)) * 0.1).astype(np.float32)
    spec = np.fft.rfft(tone)
    smooth = np.convolve(np.abs(spec), np.ones(1200) / 1200, mode="same")  # 600 Hz box: no harmonics left
    noise = np.fft.irfft(smooth * np.exp(2j * np.pi * rng.random(spec.shape)), len(tone)).astype(np.float32)
    assert audio_study.lowband_lsd(tone, tone) == 0.0
    assert audio_study.lowband_lsd(tone, noise) > 0.5
    broad = tone + (rng.standard_normal(len(tone)) * 0.05).astype(np.float32)
    f = np.fft.rfftfreq(len(broad), 1 / sr)
    lowpassed = np.fft.irfft(np.where(f < 4500, np.fft.rfft(broad), 0), len(broad)).astype(np.float32)
    assert audio_study.lowband_lsd(broad, lowpassed) < 0.05
    assert audio_study.logmel_distance(broad, lowpassed) > 0.3
