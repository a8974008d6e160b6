"""Distortion metrics for rate-distortion sweeps: PSNR and MS-SSIM on 8-bit RGB images, error measures on tensors.

Images are numpy arrays of shape (H, W, 3) and dtype uint8, the form every baseline decodes to; anything else is
refused with one :class:`~nctk.entropy.errors.CodecError` naming the argument, because a silently converted input
(a float image in [0, 1], a channels-first array) would give plausible but wrong numbers. PSNR-RGB and MS-SSIM-RGB
are computed as CompressAI does (over all channels, peak 255), so curves compare with its published results.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nctk.entropy.errors import CodecError

if TYPE_CHECKING:
    import numpy as np

# pytorch_msssim's 5-scale MS-SSIM with its 11-tap window needs a short side above (11 - 1) * 2**4 = 160 pixels.
MS_SSIM_MIN_SIDE = 161


def check_rgb8(img: Any, name: str = "image") -> np.ndarray:
    """Return ``img`` if it is an (H, W, 3) uint8 numpy array, else raise CodecError saying what it is instead.

    The one gate every image metric and baseline uses, so a wrong input fails with the same clear message.
    """
    import numpy as np

    if not isinstance(img, np.ndarray):
        raise CodecError(f"{name} must be a numpy array of shape (H, W, 3) and dtype uint8, got {type(img).__name__}")
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise CodecError(f"{name} must be an 8-bit RGB array of shape (H, W, 3) and dtype uint8, "
                         f"got shape {img.shape} and dtype {img.dtype}")
    return img


def _image_pair(ref: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, test = check_rgb8(ref, "ref"), check_rgb8(test, "test")
    if ref.shape != test.shape:
        raise CodecError(f"ref and test must have the same shape, got {ref.shape} and {test.shape}")
    return ref, test


def _psnr(mse: float, peak: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def psnr_rgb(ref: np.ndarray, test: np.ndarray) -> float:
    """PSNR in dB of ``test`` against ``ref`` over all pixels and channels, peak 255 (CompressAI's "psnr-rgb").

    Identical images give ``math.inf`` (zero error), which callers averaging curves must expect.
    """
    import numpy as np

    ref, test = _image_pair(ref, test)
    diff = ref.astype(np.float64) - test.astype(np.float64)
    return _psnr(float(np.mean(diff * diff)), 255.0)


def ms_ssim_supported(height: int, width: int) -> bool:
    """Whether an image of this size is large enough for 5-scale MS-SSIM (short side >= MS_SSIM_MIN_SIDE)."""
    return min(height, width) >= MS_SSIM_MIN_SIDE


def ms_ssim_rgb(ref: np.ndarray, test: np.ndarray) -> float:
    """MS-SSIM of ``test`` against ``ref`` (pytorch_msssim, 5 scales, data_range 255, mean over R, G, B).

    Images with a short side under ``MS_SSIM_MIN_SIDE`` (161) pixels raise CodecError: the standard 5 scales do
    not fit them, and fewer scales or a smaller window would give numbers that do not compare with published
    curves, so there is no fallback. Sweeps check :func:`ms_ssim_supported` first and leave the metric out.
    """
    import numpy as np
    import torch
    from pytorch_msssim import ms_ssim

    ref, test = _image_pair(ref, test)
    h, w = ref.shape[:2]
    if not ms_ssim_supported(h, w):
        raise CodecError(f"MS-SSIM needs images at least {MS_SSIM_MIN_SIDE} pixels on the short side "
                         f"(5 scales of an 11-pixel window), got {h}x{w}")

    def to_tensor(a: np.ndarray) -> torch.Tensor:
        # float32 on the CPU as CompressAI computes it: within 1e-6 of float64 and 6x faster (0.1 s at 768x512)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float32).unsqueeze(0)

    with torch.no_grad():
        return float(ms_ssim(to_tensor(ref), to_tensor(test), data_range=255.0, size_average=True))


def _tensor_pair(ref: Any, test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both arguments as float64 arrays of one shape; torch tensors are accepted through ``__array__``."""
    import numpy as np

    out = []
    for name, x in (("ref", ref), ("test", test)):
        if hasattr(x, "detach"):  # a torch tensor: numpy cannot take one on a device or with grad
            x = x.detach().cpu()
        a = np.asarray(x)
        if a.dtype.kind not in "biuf":
            raise CodecError(f"{name} must hold real numbers (bool, int or float), got dtype {a.dtype}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise CodecError(f"{name} contains NaN or infinity; the error measures are undefined")
        out.append(a)
    if out[0].shape != out[1].shape:
        raise CodecError(f"ref and test must have the same shape, got {out[0].shape} and {out[1].shape}")
    return out[0], out[1]


def max_abs_error(ref: Any, test: Any) -> float:
    """Largest absolute elementwise difference (the L-infinity error), for tensors of any shape and real dtype.

    Empty inputs give 0.0. What an error-bounded tensor codec promises, so it is checked exactly, in float64.
    """
    import numpy as np

    ref, test = _tensor_pair(ref, test)
    return float(np.max(np.abs(ref - test))) if ref.size else 0.0


def relative_frobenius_error(ref: Any, test: Any) -> float:
    """``||ref - test||_F / ||ref||_F``: the error relative to the reference's energy, scale-free across tensors.

    A zero reference gives 0.0 when ``test`` is zero too and ``math.inf`` otherwise.
    """
    import numpy as np

    ref, test = _tensor_pair(ref, test)
    num, den = float(np.linalg.norm((ref - test).ravel())), float(np.linalg.norm(ref.ravel()))
    if den == 0:
        return 0.0 if num == 0 else math.inf
    return num / den


def psnr_range(ref: Any, test: Any) -> float:
    """PSNR in dB with the reference's value range (max - min) as the peak, for tensors without a fixed peak.

    Identical inputs give ``math.inf``; a constant (or empty) reference has no range, which raises CodecError.
    """
    import numpy as np

    ref, test = _tensor_pair(ref, test)
    peak = float(ref.max() - ref.min()) if ref.size else 0.0
    if peak == 0:
        raise CodecError("psnr_range needs a reference with a value range (max > min); this one is constant or empty")
    diff = ref - test
    return _psnr(float(np.mean(diff * diff)), peak)
