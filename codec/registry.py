"""The Codec protocol, the catalogue of codecs, and choosing a codec for an input.

A codec turns one item (a file's bytes, an array, an image, ...) into an :class:`Encoded`: a JSON-able
header plus a list of container sections, and back. It never touches the container bytes itself; the
public API in :mod:`nctk.codec.api` does that. Decoding is driven only by the header's ``codec`` id and
``codec_version``, never by flags.

Every codec writes these header keys (:func:`base_header` builds them):

``codec``, ``codec_version``
    which codec and which version of its bytes.
``coder``
    ``{"id", "version", "lanes", "chunk_size"}`` of the entropy coder it used (:func:`check_coder`).
``original_name``
    the input file's base name, or ``null``.
``kind``
    ``"file"`` (decoding gives back the file's exact bytes), ``"array"`` (a numpy array) or
    ``"tensor"`` (a torch tensor).
``original_size``
    bytes of the decoded item: :func:`nctk.decompress` checks it against its output limit before any
    decoding, so a codec that omits it is not protected from decompression bombs.

Each built-in codec is described by static metadata, a :class:`CodecInfo` that its modality package
defines without importing anything heavy; the codec itself (numpy, Numba, torch, model weights) is
imported only when it is used. So listing codecs, ``nctk codecs`` and ``nctk --help`` stay instant.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nctk.entropy.errors import CodecError, FormatError, UnsupportedVersionError

if TYPE_CHECKING:
    from nctk.entropy.container import Section

__all__ = [
    "BUILTINS", "KINDS", "SNIFF_BYTES", "Codec", "CodecInfo", "Encoded", "FileItem", "all_codecs", "base_header",
    "catalogue", "check_codec", "check_coder", "check_kind", "for_array", "for_input", "get", "register",
]

SNIFF_BYTES = 512  # how many leading bytes of an input :func:`for_input` looks at
KINDS = ("file", "array", "tensor")
MAX_CHUNK_SIZE = 1 << 20  # largest per-chunk symbol count a reader accepts from a header

MODALITIES = ("tensor", "image", "audio")

# Static metadata of the codecs that ship with nctk, as "module:attribute" of a light module (a package
# __init__ that imports nothing heavy) holding a CodecInfo.
BUILTINS = (
    "nctk.codec.tensor:LOSSLESS",
    "nctk.codec.tensor:BOUNDED",
    "nctk.codec.image:WAVELET",
)


@dataclass(frozen=True)
class FileItem:
    """A file's exact bytes and, if known, its base name (what file-mode codecs take and give back).

    Any bytes-like object, used in place (an input is never copied just to be wrapped); decoders return
    their own ``bytearray``."""

    data: bytes | bytearray | memoryview
    name: str | None = None


@dataclass(frozen=True)
class CodecInfo:
    """What is known of a codec without importing it: what ``nctk codecs`` lists and what ``entry`` names
    (``"module:Class"``, imported on first use). Built-in codec classes take their attributes from it."""

    id: str  # stable string written into files, e.g. "tensor-lossless"
    version: int  # bumps when the bytes change
    modality: str  # "tensor" | "image" | "audio"
    lossless: bool
    quality_range: tuple[float, float] | None  # None: the codec takes no quality setting
    extensions: tuple[str, ...]  # lower-case, with the dot
    description: str
    entry: str = ""  # "module:attribute" of the Codec class or instance; "" for codecs registered at run time

    def as_dict(self) -> dict:
        """The JSON-able row :func:`nctk.codecs` returns."""
        return {"id": self.id, "version": self.version, "modality": self.modality, "lossless": self.lossless,
                "quality_range": list(self.quality_range) if self.quality_range is not None else None,
                "extensions": list(self.extensions), "description": self.description}

    @classmethod
    def of(cls, codec: Codec) -> CodecInfo:
        """The metadata of a codec instance (for codecs registered at run time)."""
        return cls(codec.id, codec.version, codec.modality, codec.lossless, codec.quality_range,
                   tuple(codec.extensions), codec.description)


@dataclass
class Encoded:
    """What a codec produces and consumes: a JSON-able header and the sections it refers to."""

    header: dict
    sections: list[Section] = field(default_factory=list)

    def section(self, name: str) -> Section:
        """The section called ``name``; :class:`FormatError` naming it if absent."""
        for sec in self.sections:
            if sec.name == name:
                return sec
        have = ", ".join(repr(s.name) for s in self.sections) or "none"
        raise FormatError(f"missing section {name!r} (the file has: {have})")

    def names(self) -> list[str]:
        """Section names in order."""
        return [s.name for s in self.sections]


@runtime_checkable
class Codec(Protocol):
    """What every codec provides. Instances are stateless and safe to share between threads."""

    id: str  # stable string written into files, e.g. "tensor-lossless"
    version: int  # bumps when the bytes change; older files stay decodable or fail clearly
    modality: str  # "tensor" | "image" | "audio"
    lossless: bool
    quality_range: tuple[float, float] | None  # None: the codec takes no quality setting
    extensions: tuple[str, ...]  # lower-case, with the dot: (".npy", ".safetensors")
    description: str

    def sniff(self, prefix: bytes, name: str | None) -> bool:
        """True if the first bytes of an input (at least :data:`SNIFF_BYTES` when the input is that
        long) identify a format this codec handles. ``name`` is a hint only."""
        ...

    def encode(self, item: Any, *, quality: float | None = None) -> Encoded:
        """Encode ``item``; raises :class:`CodecError` for input it does not support."""
        ...

    def decode(self, encoded: Encoded) -> Any:
        """Decode: a :class:`FileItem` for kind "file", else the array/tensor/image/... item.
        Raises :class:`FormatError` subclasses for anything malformed."""
        ...


_REGISTRY: dict[str, Codec] = {}  # codecs imported (built-ins on first use) or registered at run time
_CATALOGUE: dict[str, CodecInfo] | None = None  # every known codec's metadata, by id


def _attribute(spec: str) -> Any:
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def _catalogue() -> dict[str, CodecInfo]:
    global _CATALOGUE
    if _CATALOGUE is None:
        infos = [_attribute(spec) for spec in BUILTINS]
        _CATALOGUE = {i.id: i for i in infos}
    return _CATALOGUE


def catalogue() -> list[CodecInfo]:
    """Every known codec's static metadata, sorted by id, without importing any codec."""
    cat = _catalogue()
    return [cat[k] for k in sorted(cat)]


def register(codec: Codec) -> Codec:
    """Add a codec instance (or a class, which is instantiated); returns the instance.

    Raises :class:`CodecError` if another codec already uses the id or the codec lacks an attribute.
    """
    if isinstance(codec, type):
        codec = codec()
    for attr in ("id", "version", "modality", "lossless", "quality_range", "extensions", "description",
                 "sniff", "encode", "decode"):
        if not hasattr(codec, attr):
            raise CodecError(f"codec {codec!r} lacks the Codec attribute {attr!r}")
    if not isinstance(codec.id, str) or not codec.id:
        raise CodecError("a codec id must be a non-empty string")
    if isinstance(codec.version, bool) or not isinstance(codec.version, int) or codec.version < 1:
        raise CodecError(f"codec {codec.id!r}: version must be an integer >= 1")
    if codec.modality not in MODALITIES:
        raise CodecError(f"codec {codec.id!r}: modality must be one of {', '.join(MODALITIES)}")
    if codec.id in _catalogue():
        if _REGISTRY.get(codec.id) is codec:
            return codec
        raise CodecError(f"codec id {codec.id!r} is already registered")
    _REGISTRY[codec.id] = codec
    _catalogue()[codec.id] = CodecInfo.of(codec)
    return codec


def _load_builtin(info: CodecInfo) -> Codec:
    codec = _REGISTRY.get(info.id)
    if codec is None:
        obj = _attribute(info.entry)
        codec = obj() if isinstance(obj, type) else obj
        if CodecInfo.of(codec) != replace(info, entry=""):
            raise CodecError(f"built-in codec {info.id!r} disagrees with its catalogue entry")
        _REGISTRY[info.id] = codec
    return codec


def all_codecs() -> list[Codec]:
    """Every codec, imported, sorted by id."""
    return [get(info.id) for info in catalogue()]


def get(codec_id: str) -> Codec:
    """The codec called ``codec_id`` (imported on first use); :class:`CodecError` listing the known ids."""
    info = _catalogue().get(codec_id) if isinstance(codec_id, str) else None
    if info is None:
        known = ", ".join(sorted(_catalogue())) or "none"
        raise CodecError(f"unknown codec {codec_id!r}; known codecs: {known}") from None
    return _REGISTRY[codec_id] if codec_id in _REGISTRY else _load_builtin(info)


def _supported_extensions() -> list[str]:
    exts: list[str] = []
    for c in catalogue():
        exts.extend(e for e in c.extensions if e not in exts)
    return exts


def _extension(name: str | None) -> str:
    if not name:
        return ""
    return os.path.splitext(os.path.basename(name))[1].lower()


def for_input(prefix: bytes, name: str | None = None) -> Codec:
    """Choose the codec for a file: by content first (``prefix`` = its leading bytes), then by the
    extension of ``name``. Raises :class:`CodecError` listing the supported extensions."""
    codecs = all_codecs()
    prefix = bytes(prefix[:SNIFF_BYTES])
    for c in codecs:
        if c.sniff(prefix, name):
            return c
    ext = _extension(name)
    if ext:
        for c in codecs:
            if ext in c.extensions:
                return c
    shown = os.path.basename(name) if name else "input without a name"
    supported = ", ".join(_supported_extensions()) or "none"
    raise CodecError(f"no codec handles {shown!r}; supported: {supported}")


def for_array(obj: Any = None) -> Codec:
    """The default codec for a numpy array or torch tensor: the first lossless tensor codec."""
    for info in catalogue():
        if info.modality == "tensor" and info.lossless:
            return get(info.id)
    raise CodecError("no lossless tensor codec is registered")


def base_header(codec: Codec, *, kind: str, original_name: str | None, lanes: int,
                chunk_size: int) -> dict:
    """The header keys every codec writes (see the module docstring)."""
    from nctk.entropy.rans_ref import CODER_ID, CODER_VERSION

    if kind not in KINDS:
        raise CodecError(f"kind must be one of {', '.join(KINDS)}")
    return {
        "codec": codec.id,
        "codec_version": codec.version,
        "coder": {"id": CODER_ID, "version": CODER_VERSION, "lanes": int(lanes),
                  "chunk_size": int(chunk_size)},
        "original_name": original_name,
        "kind": kind,
    }


def check_coder(header: dict) -> tuple[int, int]:
    """Validate the header's ``coder`` entry; returns ``(lanes, chunk_size)``.

    Raises :class:`UnsupportedVersionError` for another coder or a newer coder version and
    :class:`FormatError` for implausible parameters.
    """
    from nctk.entropy.rans_ref import CODER_ID, CODER_VERSION, MAX_LANES

    coder = header.get("coder")
    if not isinstance(coder, dict):
        raise FormatError('header lacks "coder" (an object with id, version, lanes, chunk_size)')
    cid, ver = coder.get("id"), coder.get("version")
    if cid != CODER_ID:
        raise UnsupportedVersionError(f"file uses entropy coder {cid!r}; this build has only {CODER_ID!r}")
    if not _is_int(ver) or not 1 <= ver <= CODER_VERSION:
        raise UnsupportedVersionError(
            f"file uses {CODER_ID} version {ver!r}; this build reads versions 1..{CODER_VERSION}")
    lanes, chunk = coder.get("lanes"), coder.get("chunk_size")
    if not _is_int(lanes) or not 1 <= lanes <= MAX_LANES:
        raise FormatError(f"coder lanes {lanes!r} outside 1..{MAX_LANES}")
    if not _is_int(chunk) or not 1 <= chunk <= MAX_CHUNK_SIZE:
        raise FormatError(f"coder chunk_size {chunk!r} outside 1..{MAX_CHUNK_SIZE}")
    return lanes, chunk


def check_codec(header: dict, codec: Codec, versions: Sequence[int] | None = None) -> int:
    """The header's codec version, one of ``versions`` (default: ``codec.version`` only); FormatError unless
    ``header`` was written by ``codec``, UnsupportedVersionError for another version of it."""
    if header.get("codec") != codec.id:
        raise FormatError(f"not a {codec.id} file (codec {header.get('codec')!r})")
    versions = tuple(versions) if versions is not None else (codec.version,)
    version = header.get("codec_version")
    if not _is_int(version) or version not in versions:
        raise UnsupportedVersionError(
            f"{codec.id} version {version!r} is not supported (this build reads version "
            f"{', '.join(str(v) for v in versions)})")
    return version


def check_kind(header: dict, allowed: Sequence[str]) -> str:
    """The header's ``kind``, which must be one of ``allowed``; :class:`FormatError` otherwise."""
    kind = header.get("kind")
    if kind not in allowed:
        raise FormatError(f"header kind {kind!r} is not one of {', '.join(allowed)}")
    return kind


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
