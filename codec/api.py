"""nctk's public Python API: compress files, arrays and tensors into ``.nctk`` bytes, and back.

>>> import numpy as np, nctk
>>> blob = nctk.compress(np.arange(10, dtype=np.int32))
>>> nctk.decompress(blob)
array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=int32)

Decoding is driven only by the file's header (codec id and version), never by arguments. Every error
raised on purpose is an :class:`nctk.NctkError`: :class:`~nctk.CodecError` for input a codec cannot
handle or an unknown codec name, :class:`~nctk.FormatError` subclasses for damaged or unsupported ``.nctk``
data. ``import nctk`` re-exports these functions.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nctk.codec import registry
from nctk.codec.registry import Codec, Encoded, FileItem
from nctk.entropy import container
from nctk.entropy.errors import CodecError, FormatError, NctkError, UnsupportedVersionError

__all__ = [
    "Codec", "CodecError", "Encoded", "FileItem", "FormatError", "NctkError", "UnsupportedVersionError",
    "codecs", "compress", "decompress", "decompress_file", "info",
]


def _is_array(obj: Any) -> bool:
    from nctk.codec.tensor.formats import is_torch_tensor

    return isinstance(obj, (np.ndarray, np.generic)) or is_torch_tensor(obj)


def _pick(codec: str | None) -> Codec | None:
    if codec is None:
        return None
    if not isinstance(codec, str):
        raise CodecError(f"codec must be a codec id string, not {type(codec).__name__}")
    return registry.get(codec)


def _check_quality(c: Codec, quality: float | None) -> None:
    if quality is None:
        return
    if c.quality_range is None:
        raise CodecError(f"codec {c.id!r} takes no quality setting (it is "
                         f"{'lossless' if c.lossless else 'fixed-rate'}); omit quality")
    lo, hi = c.quality_range
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not lo <= quality <= hi:
        raise CodecError(f"quality {quality!r} is outside codec {c.id!r}'s range [{lo}, {hi}]")


def compress(obj: Any, *, codec: str | None = None, quality: float | None = None,
             name: str | None = None) -> bytes:
    """Compress ``obj`` into the bytes of an ``.nctk`` file.

    ``obj`` is one of:

    - a path (``str`` or :class:`os.PathLike`): the file is read and compressed in *file mode*
      (decompression gives back its exact bytes); its base name is recorded unless ``name`` is given;
    - ``bytes`` (or bytearray/memoryview): a file's content, file mode; the codec is chosen by sniffing
      the content, then by the extension of ``name`` (also recorded as the original name);
    - a numpy array or torch tensor: *array mode*; decompression gives back the same type, dtype and
      shape (torch tensors come back on the CPU).

    ``codec`` forces a codec by id (see :func:`codecs`); ``quality`` is for lossy codecs only.
    Raises :class:`CodecError` for input no codec handles, an unknown codec id, or a quality the codec
    does not take; :class:`OSError` if a path cannot be read.
    """
    chosen = _pick(codec)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        with open(path, "rb") as fh:
            data = fh.read()
        item: Any = FileItem(data, name if name is not None else os.path.basename(path))
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        item = FileItem(bytes(obj), name)
    elif _is_array(obj):
        if name is not None:
            raise CodecError("name applies to files only; arrays and tensors carry no file name")
        item = obj
    else:
        raise CodecError(f"cannot compress a {type(obj).__name__}; pass a path, a file's bytes, "
                         "a numpy array or a torch tensor")
    if chosen is None:
        if isinstance(item, FileItem):
            chosen = registry.for_input(item.data[: registry.SNIFF_BYTES], item.name)
        else:
            chosen = registry.for_array(item)
    _check_quality(chosen, quality)
    enc = chosen.encode(item, quality=quality)
    return container.dumps(enc.header, enc.sections)


def _codec_for(header: dict) -> Codec:
    cid, version = header.get("codec"), header.get("codec_version")
    try:
        c = registry.get(cid)
    except CodecError:
        known = ", ".join(k.id for k in registry.all_codecs())
        raise UnsupportedVersionError(
            f"this file was written by codec {cid!r}, which this build does not have (known: {known})"
        ) from None
    if isinstance(version, bool) or not isinstance(version, int) or version > c.version:
        raise UnsupportedVersionError(
            f"this file was written by {cid} version {version!r}; this build reads up to version "
            f"{c.version}: upgrade nctk")
    return c


def _decode(data: bytes | bytearray | memoryview) -> tuple[dict, Any]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"decompress takes the bytes of an .nctk file, not a {type(data).__name__}")
    box = container.loads(data)
    c = _codec_for(box.header)
    return box.header, c.decode(Encoded(box.header, list(box.sections.values())))


def decompress(data: bytes | bytearray | memoryview) -> Any:
    """Decode ``.nctk`` bytes: file mode gives the original file's exact bytes, array mode the numpy
    array or torch tensor. Raises :class:`FormatError` subclasses for damaged, truncated or unsupported
    data (:class:`UnsupportedVersionError` for an unknown codec or a newer version)."""
    _, item = _decode(data)
    return item.data if isinstance(item, FileItem) else item


def decompress_file(data: bytes | bytearray | memoryview) -> tuple[str | None, bytes]:
    """``(original base name or None, exact file bytes)``; :class:`CodecError` if ``data`` holds an
    array or tensor rather than a file."""
    header, item = _decode(data)
    if not isinstance(item, FileItem):
        raise CodecError(f"this .nctk holds a {header.get('kind', 'non-file')} item, not a file; "
                         "use decompress()")
    return item.name, item.data


def codecs() -> list[dict]:
    """One dict per available codec: id, version, modality, lossless, quality_range, extensions,
    description."""
    return [{"id": c.id, "version": c.version, "modality": c.modality, "lossless": c.lossless,
             "quality_range": list(c.quality_range) if c.quality_range is not None else None,
             "extensions": list(c.extensions), "description": c.description}
            for c in registry.all_codecs()]


def info(data: bytes | bytearray | memoryview) -> dict:
    """What an ``.nctk`` file holds, without decoding it (payload checksums are not verified).

    Returns the header's fields plus ``file_size``, ``sections`` (``name``, ``chunks``, ``bytes``,
    ``count`` each), ``payload_bytes`` and, when the header records ``original_size``, ``ratio``.
    Raises :class:`FormatError` subclasses for damaged data.
    """
    header, infos = container.read_header(data)
    size = memoryview(data).nbytes
    out = dict(header)
    out["file_size"] = size
    out["sections"] = [{"name": s.name, "chunks": s.chunk_count, "bytes": s.total_bytes,
                        "count": s.total_count} for s in infos]
    out["payload_bytes"] = sum(s.total_bytes for s in infos)
    orig = header.get("original_size")
    if isinstance(orig, int) and not isinstance(orig, bool) and size:
        out["ratio"] = orig / size
    return out
