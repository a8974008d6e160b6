"""image-wavelet's integer transforms and quantiser: exact round trips, and the constants the format fixes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nctk.codec.image import quantiser as Q
from nctk.codec.image import subbands as S
from nctk.codec.image import transform as T


def random_image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


@pytest.mark.parametrize("c", [1, 3])
def test_colour_round_trip_exact(c):
    x = random_image(37, 53, c)
    x[0, :, :] = 0
    x[1, :, :] = 255
    y = T.colour_forward(x)
    assert y.dtype == np.int64 and y.shape == (3, 37, 53)
    if c == 1:
        assert not y[1:].any()  # grey: no chroma
    assert np.array_equal(T.colour_inverse(y, c), x)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_wavelet_perfect_reconstruction(hm, wm, seed):
    x = T.colour_forward(random_image(32 * hm, 32 * wm, 3, seed))
    ll, details = T.analysis(x)
    assert ll.shape == (3, hm, wm) and [d[0].shape[-1] for d in details] == [16 * wm >> k for k in range(5)]
    assert np.array_equal(T.synthesis(ll, details), x)


def test_wavelet_extremes_and_batches():
    x = np.stack([T.colour_forward(np.full((64, 64, 3), v, np.uint8)) for v in (0, 255)])
    x[1, :, ::2, ::2] = -x[1, :, ::2, ::2]  # a worst-case checkerboard
    ll, details = T.analysis(x)  # leading batch axis
    assert np.array_equal(T.synthesis(ll, details), x)
    assert max(np.abs(b).max() for d in details for b in d) < 2**20  # coefficients stay far inside int64


def test_pad_replicates_edges():
    x = random_image(33, 1)
    p = T.pad(x)
    assert p.shape == (64, 32, 3)
    assert np.array_equal(p[:33, :1], x) and (p[40, 20] == x[32, 0]).all()
    assert T.pad(random_image(32, 64)).shape == (32, 64, 3)


def test_lossless_step_is_exact():
    """At step D = 1 every band's step is one unit: indices are the coefficients, reconstruction is exact."""
    x = T.colour_forward(random_image(64, 96))
    ll, details = T.analysis(x)
    d = 1
    assert (Q.low_steps(d) == 1 << 16).all() and all((Q.detail_steps(d, k) == 1 << 16).all() for k in range(1, 6))
    qll = Q.quantise(ll, Q.low_steps(d))
    rec = Q.dequantise(qll, Q.low_steps(d))
    for k in range(5, 0, -1):
        q = Q.quantise(np.concatenate(details[k - 1]), Q.detail_steps(d, k))
        c = Q.dequantise(q, Q.detail_steps(d, k))
        rec = T.synthesis_level(rec, c[0:3], c[3:6], c[6:9])
    assert np.array_equal(rec, x)


def test_quantiser_rounds_half_away_and_is_odd():
    steps = np.array([3 << 15, 1 << 16, 5 << 16])  # 1.5, 1 and 5 units
    c = np.arange(-20, 21).reshape(1, 1, -1).repeat(3, axis=0)
    q = Q.quantise(c, steps)
    assert np.array_equal(q, -Q.quantise(-c, steps))
    expect = np.sign(c) * np.floor(np.abs(c) / (steps.reshape(3, 1, 1) / 65536) + 0.5)
    assert np.array_equal(q, expect.astype(np.int64))
    assert np.array_equal(Q.dequantise(Q.quantise(c, steps), steps)[1], c[1])


def test_step_constants_match_the_gains():
    """IG and CTX_MUL are round(...) of the float synthesis gains (how they were made); decoders use the integers."""
    g, cg = T.band_gains(), T.COLOUR_GAIN
    assert Q.IG_LOW == tuple(round(2**23 / (g["L5"] ** 2 * c)) for c in cg)
    for k in range(1, 6):
        pairs = ((f"L{k}", f"H{k}"), (f"H{k}", f"L{k}"), (f"H{k}", f"H{k}"))
        assert Q.IG_DETAIL[k - 1] == tuple(tuple(round(2**23 / (g[a] * g[b] * c)) for c in cg) for a, b in pairs)
        assert S.CTX_MUL[k - 1] == tuple(round(g[f"L{k}"] ** 2 * c * 4 / 2**k * 256) for c in cg)
    assert min(g[f"{a}1"] * g[f"{b}1"] * min(cg) for a in "LH" for b in "LH") > 0.5  # why D = 1 is lossless


def test_steps_are_mse_balanced():
    """One step D: quantisation noise in pixels is about (D/16)**2 / 12 per pixel and channel at fine steps."""
    x = random_image(128, 128, 3, seed=4)
    d = 128  # 8 pixels (finer steps add the final rounding to whole pixels, 1/12)
    ll, details = T.analysis(T.colour_forward(x))
    rec = Q.dequantise(Q.quantise(ll, Q.low_steps(d)), Q.low_steps(d))
    for k in range(5, 0, -1):
        c = Q.dequantise(Q.quantise(np.concatenate(details[k - 1]), Q.detail_steps(d, k)), Q.detail_steps(d, k))
        rec = T.synthesis_level(rec, c[0:3], c[3:6], c[6:9])
    mse = np.mean((T.colour_inverse(rec).astype(float) - x) ** 2)
    assert 0.9 < mse / ((d / 16) ** 2 / 12) < 1.15


def test_log2_q8_is_exact():
    for d in list(range(1, 5000)) + [65535, 2**16 - 2, 1 << 15]:
        v = Q.log2_q8(d)
        assert 2**v <= d**256 < 2 ** (v + 1)
        assert abs(v - 256 * math.log2(d)) <= 1
    with pytest.raises(ValueError):
        Q.log2_q8(0)


def test_quality_scale():
    assert Q.step_for_quality(1) == 4096 and Q.step_for_quality(8) == 128
    steps = [Q.step_for_quality(q / 4) for q in range(4, 33)]
    assert steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps)
