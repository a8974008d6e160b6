"""Image files and arrays in and out of ``image-wavelet``: 8-bit RGB or grey pixels, or one clear error.

Files are read with Pillow (PNG, JPEG, BMP, TIFF, WebP and anything else it opens), EXIF orientation applied.
Modes: RGB and L (grey) as they are; 1 (bilevel) becomes grey; P (palette), CMYK, YCbCr, LAB and HSV become RGB;
16-bit grey (I;16) keeps its top byte (Pillow itself reads 16-bit RGB PNGs that way); an alpha channel (RGBA, LA,
PA, palette transparency) is dropped when every pixel is opaque and refused otherwise; 32-bit integer and float
images and multi-frame files (animations, multi-page TIFFs) are refused. Arrays: ``uint8`` ``(H, W)``,
``(H, W, 1)`` or ``(H, W, 3)``.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from nctk.entropy.errors import CodecError

__all__ = ["MAX_PIXELS", "MAX_SIDE", "check_array", "read_image", "sniff", "to_png"]

MAX_SIDE = 1 << 16  # widths and heights up to 65536
MAX_PIXELS = 1 << 28
_TO_RGB = {"P", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA = {"RGBA": "RGBA", "RGBa": "RGBA", "LA": "LA", "La": "LA", "PA": "RGBA"}
_BMP_DIB_SIZES = {12, 40, 52, 56, 64, 108, 124}


def sniff(prefix: bytes) -> str | None:
    """The image format the leading bytes announce (PNG, JPEG, TIFF, WebP, BMP), or None."""
    p = bytes(prefix[:32])
    if p.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if p.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if p[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if p[:4] == b"RIFF" and p[8:12] == b"WEBP":
        return "webp"
    # BMP: "BM", a file size, 4 reserved zero bytes, the pixel offset, then a known DIB header size (a bare "BM"
    # could begin anything, e.g. a safetensors length)
    if (p[:2] == b"BM" and len(p) >= 18 and p[6:10] == b"\x00" * 4
            and int.from_bytes(p[14:18], "little") in _BMP_DIB_SIZES):
        return "bmp"
    return None


def _check_size(h: int, w: int, what: str) -> None:
    if h < 1 or w < 1:
        raise CodecError(f"{what} is empty ({w} x {h} pixels)")
    if h > MAX_SIDE or w > MAX_SIDE or h * w > MAX_PIXELS:
        raise CodecError(f"{what} is {w} x {h} pixels; image-wavelet takes at most {MAX_SIDE} per side and "
                         f"{MAX_PIXELS} pixels")


def check_array(arr: Any) -> np.ndarray:
    """``arr`` as uint8 ``(H, W, C)``, C = 1 or 3; CodecError saying what to pass otherwise."""
    if not isinstance(arr, np.ndarray):
        raise CodecError(f"image-wavelet codes image files and numpy uint8 arrays, not a {type(arr).__name__}")
    if arr.dtype != np.uint8:
        raise CodecError(f"image arrays must be uint8 (8-bit), not {arr.dtype}; e.g. 16-bit: (a >> 8).astype(np.uint8)")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            raise CodecError(f"image array of shape {arr.shape} has an alpha channel, which image-wavelet does not "
                             "code yet; pass the colour channels (a[..., :3] or a[..., :1])")
        raise CodecError(f"image arrays are (H, W), (H, W, 1) or (H, W, 3), not {arr.shape}")
    _check_size(arr.shape[0], arr.shape[1], "the image")
    return np.ascontiguousarray(arr)


def _opaque(arr: np.ndarray, what: str) -> np.ndarray:
    if not (arr[..., -1] == 255).all():
        raise CodecError(f"{what} has transparency (an alpha channel that is not fully opaque), which image-wavelet "
                         "does not code yet; flatten it onto a background first")
    return arr[..., :-1]


def read_image(data: bytes | bytearray | memoryview, name: str | None = None) -> tuple[np.ndarray, str]:
    """``(uint8 (H, W, C) pixels, Pillow's format name)`` of an image file's bytes (see the module docstring)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    what = repr(name) if name else "the input"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(data))) as im:
                fmt = (im.format or "unknown").lower()
                _check_size(im.size[1], im.size[0], what)
                if getattr(im, "n_frames", 1) > 1:
                    raise CodecError(f"{what} holds {im.n_frames} frames (an animation or a multi-page file); "
                                     "image-wavelet codes single images: extract one frame first")
                im = ImageOps.exif_transpose(im)
                mode = im.mode
                if mode == "P" and "transparency" in im.info:
                    mode, im = "PA", im.convert("RGBA")
                if mode in _ALPHA:
                    arr = _opaque(np.asarray(im.convert(_ALPHA[mode])), what)
                elif mode in ("RGB", "L"):
                    arr = np.asarray(im)
                elif mode == "1":
                    arr = np.asarray(im.convert("L"))
                elif mode in _TO_RGB:
                    arr = np.asarray(im.convert("RGB"))
                elif mode.startswith("I;16"):
                    arr = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
                else:
                    raise CodecError(f"{what} is a {mode!r}-mode image (32-bit integer or float pixels); image-wavelet "
                                     "codes 8-bit RGB and grey images: convert it first")
    except CodecError:
        raise
    except Image.DecompressionBombError as e:
        raise CodecError(f"{what}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
            KeyError, ZeroDivisionError) as e:  # what Pillow raises on damaged or truncated files
        raise CodecError(f"{what} is not a readable image ({type(e).__name__}: {e})") from None
    return check_array(np.asarray(arr)), fmt


def to_png(pixels: np.ndarray) -> bytes:
    """PNG file bytes of uint8 ``(H, W, 1)`` (grey) or ``(H, W, 3)`` pixels."""
    from PIL import Image

    im = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
