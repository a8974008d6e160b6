"""Classical image codecs (JPEG, WebP, JPEG 2000, AVIF, JPEG XL) behind one small protocol, for RD sweeps.

These are harness codecs: bytes in memory for measuring rate and distortion, not ``.nctk`` file codecs. All go
through Pillow (its built-in codecs, or a plugin such as ``pillow_jxl`` that registers a format when imported),
with every encoder setting pinned here so a sweep is reproducible and its "codec_version" says what ran. A codec
whose library is missing stays in the registry with ``available()`` False; nothing is installed on demand.
Nothing heavy is imported at module load: numpy and Pillow are loaded by the first call that needs them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from nctk.entropy.errors import CodecError
from nctk.rd.metrics import check_rgb8

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class ImageCodec(Protocol):
    """What a sweep needs from an image codec: a stable id, a default quality sweep and a byte round trip.

    ``qualities`` is the default sweep, ascending, so rate grows along it; ``quality_range`` bounds what
    ``encode`` accepts (inclusive). ``decode`` returns an (H, W, 3) uint8 array like the one encoded.
    """

    id: str
    description: str
    modality: str  # "image"
    lossless: bool
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]

    def available(self) -> bool: ...

    def version(self) -> str: ...

    def encode(self, img: np.ndarray, quality: int) -> bytes: ...

    def decode(self, data: bytes) -> np.ndarray: ...


def _pillow_has(feature: str) -> bool:
    from PIL import features

    known = set(features.modules) | set(features.codecs) | set(features.features)
    return feature in known and bool(features.check(feature))  # check() warns on names it does not know


def _import(module: str) -> Any | None:
    import importlib

    try:
        return importlib.import_module(module)
    except Exception:  # a broken plugin (ImportError, OSError from a missing .so) just means "not available"
        return None


@dataclass(frozen=True)
class PillowCodec:
    """An :class:`ImageCodec` that saves and opens one Pillow format with fixed options plus ``quality``.

    ``feature`` is the Pillow build feature that provides the format natively; ``plugins`` are modules that
    register it when imported (tried in order when the feature is absent).
    """

    id: str
    description: str
    format: str
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    feature: str | None = None
    plugins: tuple[str, ...] = ()
    modality: ClassVar[str] = "image"
    lossless: ClassVar[bool] = False

    def _provider(self) -> str | None:
        """``"pillow"`` when Pillow has the format natively, the plugin module's name when a plugin gives it."""
        if _import("PIL.Image") is None:
            return None
        from PIL import Image

        if self.feature is not None and _pillow_has(self.feature):
            return "pillow"
        for plugin in self.plugins:
            if _import(plugin) is not None:
                Image.init()
                if self.format in Image.SAVE and self.format in Image.OPEN:
                    return plugin
        return None

    def available(self) -> bool:
        """Whether this environment can encode and decode the format (imports Pillow and plugins, installs nothing)."""
        return self._provider() is not None

    def version(self) -> str:
        """The libraries that produce the bytes, e.g. ``"Pillow 13.0.0, libwebp 1.6.0"``; recorded in sweep metadata."""
        import PIL
        from PIL import features

        provider = self._provider()
        if provider is None:
            raise CodecError(f"image baseline {self.id!r} is not available here: it needs {self.requires}")
        parts = [f"Pillow {PIL.__version__}"]
        if provider != "pillow":
            parts.append(f"{provider} {_plugin_version(provider)}")
        elif self.feature == "jpg" and _pillow_has("libjpeg_turbo"):
            parts.append(f"libjpeg-turbo {features.version('libjpeg_turbo')}")
        else:
            parts.append(f"{_LIBRARY_NAMES.get(self.feature, self.feature)} {features.version(self.feature)}")
            if self.feature == "avif":
                avif = _import("PIL._avif")  # which AV1 encoder libavif chose matters as much as its version
                if avif is not None and hasattr(avif, "codec_versions"):
                    parts[-1] += f" ({avif.codec_versions()})"
        return ", ".join(parts)

    def _check_quality(self, quality: int) -> None:
        lo, hi = self.quality_range
        if isinstance(quality, bool) or not isinstance(quality, int) or not lo <= quality <= hi:
            raise CodecError(f"{self.id}: quality must be an integer in [{lo}, {hi}], got {quality!r}")

    def save_options(self, img: np.ndarray, quality: int) -> dict[str, Any]:
        """The keyword arguments given to ``Image.save`` for this image and quality."""
        return {**self.options, "quality": quality}

    def encode(self, img: np.ndarray, quality: int) -> bytes:
        """Compress an (H, W, 3) uint8 image at ``quality`` (within ``quality_range``) to the format's bytes."""
        check_rgb8(img)
        self._check_quality(quality)
        if not self.available():
            raise CodecError(f"image baseline {self.id!r} is not available here: it needs {self.requires}")
        from PIL import Image

        buf = io.BytesIO()
        try:
            Image.fromarray(img).save(buf, format=self.format, **self.save_options(img, quality))
        except (OSError, ValueError) as e:
            raise CodecError(f"{self.id}: encoding a {img.shape[0]}x{img.shape[1]} image failed: {e}") from e
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        """Decompress bytes made by :meth:`encode` to an (H, W, 3) uint8 array; other formats are refused."""
        import numpy as np
        from PIL import Image

        if not self.available():
            raise CodecError(f"image baseline {self.id!r} is not available here: it needs {self.requires}")
        try:
            with Image.open(io.BytesIO(data), formats=[self.format]) as im:
                im.load()
                return np.array(im.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as e:  # Pillow's parsers raise all three on bad bytes
            raise CodecError(f"{self.id}: cannot decode {len(data)} bytes as {self.format}: {e}") from e


@dataclass(frozen=True)
class Jpeg2000Codec(PillowCodec):
    """JPEG 2000 (OpenJPEG through Pillow) where quality is a target PSNR in dB.

    OpenJPEG's fixed-quality mode (``quality_mode="dB"``) keeps coding passes, in rate-distortion order, until
    the layer reaches the target, so a higher target never gives fewer bytes: the sweep is monotone and its
    numbers read directly (about 24 dB to 44 dB covers 0.15 to 3 bpp on Kodak). Lossy settings: the
    irreversible 9/7 wavelet with the irreversible colour transform, a raw codestream (no JP2 boxes), one
    layer, and up to 6 resolution levels (fewer for images too small for them, which OpenJPEG would refuse).
    """

    def save_options(self, img: np.ndarray, quality: int) -> dict[str, Any]:
        """OpenJPEG settings for a dB target; the number of resolution levels follows the image's short side."""
        levels = min(6, 1 + int(math.log2(min(img.shape[0], img.shape[1]))))
        return {**self.options, "quality_mode": "dB", "quality_layers": [quality], "num_resolutions": levels}


@dataclass(frozen=True)
class NctkImageCodec:
    """nctk's own learned image codec through :func:`nctk.compress` / :func:`nctk.decompress`, measured beside
    the classical ones in the same run; the bytes are the whole ``.nctk`` file, header and checksums included."""

    id: str
    description: str
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str = "nctk itself"
    modality: ClassVar[str] = "image"
    lossless: ClassVar[bool] = False

    def available(self) -> bool:
        """Whether the codec and its shipped model can be loaded here."""
        try:
            from nctk.codec import registry

            registry.get(self.id)
            return True
        except Exception:  # a missing artifact or a broken install: not runnable here
            return False

    def version(self) -> str:
        """nctk's version, the codec's format version and the digest of the model artifact it encodes with."""
        from nctk.codec import registry

        codec = registry.get(self.id)
        model = codec.model() if hasattr(codec, "model") else None  # the digest pins the weights and tables
        pinned = f", model {getattr(model, 'digest', '?')[:16]}" if model is not None else ""
        if getattr(codec, "rdoq", None) is not None:  # an encoder setting: same decoder, other bytes
            pinned += f", rdoq {codec.rdoq:g}"
        return f"nctk {_nctk_version()} ({self.id} v{codec.version}{pinned})"

    def encode(self, img: np.ndarray, quality: int) -> bytes:
        """The ``.nctk`` file of ``img`` at ``quality`` (the codec's own scale)."""
        from nctk.codec.api import compress

        check_rgb8(img)
        lo, hi = self.quality_range
        if isinstance(quality, bool) or not isinstance(quality, int) or not lo <= quality <= hi:
            raise CodecError(f"{self.id}: quality must be an integer in [{lo}, {hi}], got {quality!r}")
        return compress(img, codec=self.id, quality=quality)

    def decode(self, data: bytes) -> np.ndarray:
        """The decoded (H, W, 3) uint8 image."""
        from nctk.codec.api import decompress
        from nctk.entropy.errors import NctkError

        try:
            out = decompress(data)
        except NctkError as e:  # not an .nctk file, damaged, or another codec's
            raise CodecError(f"{self.id}: cannot decode {len(data)} bytes: {e}") from e
        if not (hasattr(out, "dtype") and out.dtype == "uint8" and out.ndim == 3):
            raise CodecError(f"{self.id}: cannot decode {len(data)} bytes as an RGB image (got {type(out).__name__})")
        return out


def _nctk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nctk")
    except PackageNotFoundError:
        return "?"


def _plugin_version(module: str) -> str:
    """A Pillow plugin's version: its ``__version__``, else its distribution's (pillow_jxl has no attribute)."""
    found = getattr(_import(module), "__version__", None)
    if found:
        return str(found)
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    for dist in packages_distributions().get(module, []):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "?"


_LIBRARY_NAMES = {"jpg": "libjpeg", "webp": "libwebp", "jpg_2000": "OpenJPEG", "avif": "libavif"}

_STEP5 = tuple(range(5, 100, 5))  # 5, 10, ..., 95: the 19 points of CompressAI's published JPEG and WebP curves
_STEP10 = tuple(range(5, 100, 10))  # 5, 15, ..., 95: fewer points for the slow encoders

IMAGE_BASELINES: dict[str, ImageCodec] = {
    c.id: c
    for c in (
        PillowCodec("jpeg-420", "JPEG, 4:2:0 chroma, Pillow's default (standard) Huffman tables", "JPEG", _STEP5,
                    (1, 100), "Pillow built with libjpeg", {"subsampling": 2}, feature="jpg"),
        PillowCodec("jpeg-444", "JPEG, 4:4:4 (no chroma subsampling), standard Huffman tables", "JPEG", _STEP5,
                    (1, 100), "Pillow built with libjpeg", {"subsampling": 0}, feature="jpg"),
        PillowCodec("webp", "WebP lossy (libwebp, method 4, 4:2:0)", "WEBP", _STEP5, (0, 100),
                    "Pillow built with libwebp", {"lossless": False, "method": 4}, feature="webp"),
        Jpeg2000Codec("jpeg2000", "JPEG 2000 (OpenJPEG), 9/7 wavelet, quality = target PSNR in dB", "JPEG2000",
                      tuple(range(24, 46, 2)), (10, 70), "Pillow built with OpenJPEG",
                      {"irreversible": True, "mct": 1, "no_jp2": True}, feature="jpg_2000"),
        PillowCodec("avif", "AVIF (libavif), 4:4:4, speed 6, one thread", "AVIF", _STEP10, (0, 100),
                    "Pillow with AVIF support (Pillow >= 11.2 built with libavif) or the pillow_avif plugin",
                    {"subsampling": "4:4:4", "speed": 6, "max_threads": 1}, feature="avif",
                    plugins=("pillow_avif",)),
        PillowCodec("jpegxl", "JPEG XL (libjxl), effort 7, one thread", "JXL", _STEP10, (0, 100),
                    "the pillow_jxl plugin (pillow-jpegxl-plugin)", {"effort": 7, "num_threads": 1},
                    plugins=("pillow_jxl",)),
        NctkImageCodec("image-wavelet", "nctk image-wavelet (integer wavelet + learned integer context model)",
                       (1, 2, 3, 4, 5, 6, 7, 8), (1, 8)),
    )
}

