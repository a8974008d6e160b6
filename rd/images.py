"""Images in rate-distortion sweeps: reading a file as 8-bit RGB and measuring one codec on it at one quality.

Rate is bits per pixel of the codec's real bytes; distortion is PSNR-RGB and, on images large enough for its five
scales, MS-SSIM-RGB (both as CompressAI computes them, so curves overlay its published results).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from nctk.entropy.errors import CodecError
from nctk.rd.metrics import ms_ssim_rgb, ms_ssim_supported, psnr_rgb

if TYPE_CHECKING:
    import numpy as np

    from nctk.rd.baselines.images import ImageCodec

PathLike = str | os.PathLike

# Pillow modes that convert to 8-bit RGB without losing range; 16-bit and float images would be clipped.
_RGB8_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa"}


def _open_image(path: PathLike) -> Any:
    """The opened (not yet decoded) Pillow image, or CodecError naming the file and why it cannot be used."""
    from PIL import Image

    try:
        im = Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise CodecError(f"cannot read image {os.fspath(path)!r}: {e}") from e
    if im.mode not in _RGB8_MODES:
        im.close()
        raise CodecError(f"cannot use image {os.fspath(path)!r}: mode {im.mode} is not 8-bit "
                         "(sweeps measure 8-bit RGB)")
    return im


def probe(path: PathLike) -> dict[str, int]:
    """``{"height", "width"}`` from the file's header alone: a bad file fails before a sweep starts, not during."""
    with _open_image(path) as im:
        return {"height": im.height, "width": im.width}


def load_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 array (alpha is dropped); CodecError naming the file if it cannot."""
    import numpy as np

    with _open_image(path) as im:
        try:
            return np.array(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt pixel data shows up only here
            raise CodecError(f"cannot read image {os.fspath(path)!r}: {e}") from e


def measure(codec: ImageCodec, img: np.ndarray, quality: int, metrics: Any = None) -> dict[str, Any]:
    """Encode and decode ``img``; its ``bytes``, ``bpp``, ``psnr-rgb``, ``ms-ssim-rgb`` (large enough images
    only) and the two timings in seconds. Images have one fixed metric set, so ``metrics`` must be None."""
    if metrics is not None:
        raise CodecError("image sweeps measure a fixed set (psnr-rgb, ms-ssim-rgb): no metric choice")
    h, w = img.shape[:2]
    t0 = time.perf_counter()
    data = codec.encode(img, quality)
    t1 = time.perf_counter()
    rec = codec.decode(data)
    t2 = time.perf_counter()
    if rec.shape != img.shape:
        raise CodecError(f"{codec.id} decoded a {rec.shape} image from a {img.shape} one")
    out: dict[str, Any] = {"bytes": len(data), "bpp": 8.0 * len(data) / (h * w), "psnr-rgb": psnr_rgb(img, rec)}
    if ms_ssim_supported(h, w):
        out["ms-ssim-rgb"] = ms_ssim_rgb(img, rec)
    out["encoding_time"], out["decoding_time"] = t1 - t0, t2 - t1
    return out


def required(info: dict[str, Any], codec: Any, metrics: Any = None) -> list[str]:
    """The numbers an item for an image of this size must hold (what a cached item is checked against)."""
    return ["bytes", "bpp", "psnr-rgb"] + ["ms-ssim-rgb"] * ms_ssim_supported(info["height"], info["width"])


def meta(names: list[str], infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Sweep metadata about the files: which are too small for MS-SSIM (so the curve has none), and why."""
    from nctk.rd.metrics import MS_SSIM_MIN_SIDE

    omitted = [n for n, i in zip(names, infos, strict=True) if not ms_ssim_supported(i["height"], i["width"])]
    out: dict[str, Any] = {"ms_ssim_min_side": MS_SSIM_MIN_SIDE, "ms_ssim_omitted": omitted}
    if omitted:
        out["ms_ssim_note"] = (f"no ms-ssim-rgb curve: {len(omitted)} of {len(names)} files are smaller than "
                               f"{MS_SSIM_MIN_SIDE} px on the short side (see ms_ssim_omitted)")
    return out


load = load_rgb  # the name every modality module gives its reader (nctk.rd.modality)
