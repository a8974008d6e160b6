"""nctk.rd.metrics: PSNR and MS-SSIM on 8-bit RGB images, error measures on tensors, and the inputs they refuse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nctk.entropy.errors import CodecError, NctkError
from nctk.rd.metrics import (
    MS_SSIM_MIN_SIDE,
    max_abs_error,
    ms_ssim_rgb,
    ms_ssim_supported,
    psnr_range,
    psnr_rgb,
    relative_frobenius_error,
)


def image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / w, 255 * y / h, 128 + 90 * np.sin(x / 5 + y / 9)], -1)
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def test_psnr_of_a_known_mse():
    ref = np.full((4, 6, 3), 100, np.uint8)
    assert psnr_rgb(ref, ref + 5) == pytest.approx(10 * math.log10(255**2 / 25))  # MSE 25: 34.15 dB
    test = ref.copy()
    test[:2] += 10  # half the values off by 10: MSE 50
    assert psnr_rgb(ref, test) == pytest.approx(10 * math.log10(255**2 / 50))
    assert psnr_rgb(test, ref) == psnr_rgb(ref, test)


def test_psnr_counts_every_channel_and_is_infinite_on_identity():
    ref = image(8, 8)
    test = ref.copy()
    test[..., 2] = np.where(ref[..., 2] > 127, ref[..., 2] - 3, ref[..., 2] + 3)  # blue only, |e| = 3: MSE 3
    assert psnr_rgb(ref, test) == pytest.approx(10 * math.log10(255**2 / 3))
    assert psnr_rgb(ref, ref.copy()) == math.inf


@pytest.mark.parametrize("bad, what", [
    (np.zeros((8, 8, 3), np.float32), "dtype float32"),
    (np.zeros((8, 8), np.uint8), "shape (8, 8)"),
    (np.zeros((8, 8, 4), np.uint8), "shape (8, 8, 4)"),
    (np.zeros((3, 8, 8), np.uint8), "shape (3, 8, 8)"),
    (np.zeros((0, 8, 3), np.uint8), "shape (0, 8, 3)"),
    ([[[0, 0, 0]]], "list"),
])
def test_images_of_the_wrong_kind_are_refused(bad, what):
    with pytest.raises(CodecError, match="test must be") as e:
        psnr_rgb(np.zeros((8, 8, 3), np.uint8), bad)
    assert what in str(e.value) and isinstance(e.value, NctkError)


def test_images_of_different_sizes_are_refused():
    with pytest.raises(CodecError, match=r"same shape, got \(8, 8, 3\) and \(8, 9, 3\)"):
        psnr_rgb(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8))


def test_ms_ssim_identity_degradation_and_minimum_size():
    ref = image(MS_SSIM_MIN_SIDE, 176)
    assert ms_ssim_rgb(ref, ref.copy()) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(ref + np.random.default_rng(1).normal(0, 12, ref.shape), 0, 255).astype(np.uint8)
    assert 0.5 < ms_ssim_rgb(ref, noisy) < 0.99
    assert ms_ssim_supported(161, 500) and not ms_ssim_supported(160, 500)
    small = ref[:160]
    with pytest.raises(CodecError, match="at least 161 pixels on the short side.*got 160x176"):
        ms_ssim_rgb(small, small)


def test_tensor_errors_on_known_values():
    ref = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    test = ref + np.array([[0.5, 0.0], [0.0, -1.5]], np.float32)
    assert max_abs_error(ref, test) == 1.5
    assert relative_frobenius_error(ref, test) == pytest.approx(math.sqrt(0.25 + 2.25) / math.sqrt(30))
    # range 6, MSE (0.25 + 2.25) / 4
    assert psnr_range(ref, test) == pytest.approx(10 * math.log10(36 / 0.625))
    assert psnr_range(ref, ref) == math.inf and max_abs_error(ref, ref) == 0.0


def test_tensor_errors_take_torch_tensors_and_integers():
    t = torch.arange(12, dtype=torch.float32, requires_grad=True).reshape(3, 4)
    assert max_abs_error(t, t + 2) == pytest.approx(2.0)
    assert max_abs_error(np.array([0, 250], np.uint8), np.array([255, 0], np.uint8)) == 255  # no uint8 wraparound
    assert relative_frobenius_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_frobenius_error(np.zeros(3), np.ones(3)) == math.inf


@pytest.mark.parametrize("call, message", [
    (lambda: max_abs_error(np.zeros(3), np.zeros(4)), "same shape"),
    (lambda: relative_frobenius_error(np.array([1.0, np.nan]), np.zeros(2)), "NaN or infinity"),
    (lambda: psnr_range(np.full(5, 2.0), np.zeros(5)), "constant or empty"),
    (lambda: max_abs_error(np.array(["a"]), np.array(["b"])), "real numbers"),
])
def test_tensor_errors_refuse_what_they_cannot_measure(call, message):
    with pytest.raises(CodecError, match=message):
        call()
