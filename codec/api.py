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

import mmap
import os
from collections.abc import Mapping
from typing import Any, BinaryIO

from nctk.codec import rate_control, registry
from nctk.codec.registry import Codec, Encoded, FileItem
from nctk.entropy import container
from nctk.entropy.errors import CodecError, FormatError, LimitError, NctkError, UnsupportedVersionError

__all__ = [
    "DEFAULT_MAX_OUTPUT", "MAX_EXPANSION", "Codec", "CodecError", "Encoded", "FileItem", "FormatError",
    "LimitError", "NctkError", "UnsupportedVersionError", "codecs", "compress", "compress_to", "decompress",
    "decompress_file", "info", "output_limit",
]

BYTES_LIKE = (bytes, bytearray, memoryview, mmap.mmap)
# The default decompression guard (see output_limit): any file may decode to 1 GiB, and larger outputs
# only at up to 1024 times the file's size. Coded data expands far less; only constant runs (all-zero
# tensors) go beyond, which is also all a decompression bomb is, so those take an explicit limit.
DEFAULT_MAX_OUTPUT = 1 << 30
MAX_EXPANSION = 1024
ERROR_BOUNDED = "tensor-bounded"  # the codec an error bound selects when no codec is named
# The lossy codec an error bound or a rate target selects when no codec is named, per modality of the input.
LOSSY_DEFAULT = {"tensor": ERROR_BOUNDED}


def _is_array(obj: Any) -> bool:
    import numpy as np  # here, not at import: listing codecs and the CLI's --help stay free of numpy

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
             name: str | None = None, max_error: float | None = None, rel_error: float | None = None,
             target: tuple[str, float] | None = None, bits: float | None = None,
             sensitivity: Mapping[str, float] | None = None) -> bytes:
    """Compress ``obj`` into the bytes of an ``.nctk`` file.

    ``obj`` is one of:

    - a path (``str`` or :class:`os.PathLike`): the file is read and compressed in *file mode*
      (decompression gives back its exact bytes); its base name is recorded unless ``name`` is given;
    - a file's content as bytes, bytearray, memoryview or mmap (used in place, not copied): file mode;
      the codec is chosen by sniffing the content, then by the extension of ``name`` (also recorded as
      the original name);
    - a numpy array or torch tensor: *array mode*; decompression gives back the same type, dtype and
      shape (torch tensors come back on the CPU).

    Array mode takes only what comes back exactly, and refuses the rest with a :class:`CodecError` that
    says what to pass instead:

    - numpy: exactly ``np.ndarray``, any shape (0-d and empty included), any byte order (kept), C or
      Fortran order (kept; other views come back C-ordered); refused: numpy scalars
      (``np.asarray(x)``), masked arrays, ``np.matrix``, ``np.memmap`` and other subclasses, object
      dtypes, structured dtypes made with ``align=True`` or with overlapping fields;
    - torch: plain ``torch.Tensor`` of any dtype and device (back on the CPU, contiguous, with any
      conjugate/negative view bit resolved); refused: tensors that require grad and ``nn.Parameter``
      (``t.detach()``), subclasses, channels_last / channels_last_3d memory formats (``t.contiguous()``),
      sparse, nested, quantized and meta tensors.

    ``codec`` forces a codec by id (see :func:`codecs`); ``quality`` is for lossy codecs only.
    ``max_error`` (absolute) or ``rel_error`` (times each tensor's value range, max - min) bounds the error of
    every decoded value; a bound without ``codec`` selects the error-bounded codec ``tensor-bounded``, whose
    ``quality`` q means ``rel_error = 2**-q``. Give at most one of the three.
    ``target=(name, value)`` lets a lossy codec search its quality for a rate ceiling (``"bpp"``, ``"kbps"``,
    ``"bits_per_value"``: of the whole file) or a PSNR floor (``"psnr"``, dB), instead of ``quality`` or a bound;
    the header records what was asked and reached (:mod:`nctk.codec.rate_control`). A target on a tensor without a
    codec selects ``tensor-bounded``. ``bits=B`` is short for ``target=("bits_per_value", B)``.
    ``sensitivity={tensor name: s}`` (``.safetensors`` files, ``tensor-bounded``) spreads the bound over the named
    tensors by how much each one's errors matter (:func:`nctk.sensitivity` measures it on a model); tensors it
    does not name stay exact.
    Raises :class:`CodecError` for input no codec handles (or too large or too fragmented for the format:
    the error names the limit), an unknown codec id, or a quality or bound the codec does not take;
    :class:`OSError` if a path cannot be read. :func:`compress_to` writes the same bytes to a file.
    """
    enc = _encode(obj, codec, quality, name, _bounds(max_error, rel_error), _with_bits(target, bits),
                  _options(sensitivity))
    return container.dumps(enc.header, enc.sections)


def compress_to(obj: Any, fileobj: BinaryIO, *, codec: str | None = None, quality: float | None = None,
                name: str | None = None, max_error: float | None = None, rel_error: float | None = None,
                target: tuple[str, float] | None = None, bits: float | None = None,
                sensitivity: Mapping[str, float] | None = None) -> int:
    """Like :func:`compress`, but write the ``.nctk`` file to the binary file object ``fileobj`` (straight
    from the coded sections, without joining them into one bytes object) and return the bytes written.
    Nothing is written if encoding fails."""
    enc = _encode(obj, codec, quality, name, _bounds(max_error, rel_error), _with_bits(target, bits),
                  _options(sensitivity))
    return container.write(fileobj, enc.header, enc.sections)


def _options(sensitivity: Mapping[str, float] | None) -> dict:
    """Codec keywords beyond quality and bounds that were given."""
    return {} if sensitivity is None else {"sensitivity": sensitivity}


def _with_bits(target: tuple[str, float] | None, bits: float | None) -> tuple[str, float] | None:
    """``bits=B`` as the target it abbreviates."""
    if bits is None:
        return target
    if target is not None:
        raise CodecError("give bits or a target, not both")
    return ("bits_per_value", bits)


def _bounds(max_error: float | None, rel_error: float | None) -> dict:
    """The error-bound keywords that were given (codecs that take them list them in ``options``)."""
    return {k: v for k, v in (("max_error", max_error), ("rel_error", rel_error)) if v is not None}


def _encode(obj: Any, codec: str | None, quality: float | None, name: str | None, bounds: dict,
            target: tuple[str, float] | None = None, options: dict | None = None) -> Encoded:
    if target is not None:
        rate_control.check_target(target)
        if quality is not None or bounds:
            raise CodecError("give a target or a quality or an error bound, not several")
    chosen = _pick(codec)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        with open(path, "rb") as fh:
            data = fh.read()
        item: Any = FileItem(data, name if name is not None else os.path.basename(path))
    elif isinstance(obj, BYTES_LIKE):
        item = FileItem(container.byte_view(obj), name)
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
        if (bounds or target is not None) and chosen.lossless:  # asking for a loss picks the lossy codec
            if chosen.modality not in LOSSY_DEFAULT:
                raise CodecError(f"no lossy {chosen.modality} codec takes a target or an error bound yet")
            chosen = registry.get(LOSSY_DEFAULT[chosen.modality])
    _check_quality(chosen, quality)
    options = options or {}
    unknown = [k for k in [*bounds, *options] if k not in getattr(chosen, "options", ())]
    if unknown:
        raise CodecError(f"codec {chosen.id!r} takes no {' or '.join(unknown)}; omit it, or use "
                         f"codec={ERROR_BOUNDED!r}")
    if target is not None:
        return rate_control.encode_to_target(chosen, item, target, options)
    return chosen.encode(item, quality=quality, **bounds, **options)


def _codec_for(header: dict) -> Codec:
    cid, version = header.get("codec"), header.get("codec_version")
    try:
        c = registry.get(cid)
    except CodecError:
        known = ", ".join(k.id for k in registry.catalogue())
        raise UnsupportedVersionError(
            f"this file was written by codec {cid!r}, which this build does not have (known: {known})"
        ) from None
    if isinstance(version, bool) or not isinstance(version, int) or version > c.version:
        raise UnsupportedVersionError(
            f"this file was written by {cid} version {version!r}; this build reads up to version "
            f"{c.version}: upgrade nctk")
    return c


def output_limit(file_size: int, max_output_size: int | None = None) -> int:
    """The most bytes a file of ``file_size`` bytes may decode to: ``max_output_size``, or by default
    ``max(DEFAULT_MAX_OUTPUT, MAX_EXPANSION * file_size)`` (1 GiB, or 1024 times the file)."""
    if max_output_size is None:
        return max(DEFAULT_MAX_OUTPUT, MAX_EXPANSION * file_size)
    if isinstance(max_output_size, bool) or not isinstance(max_output_size, int) or max_output_size < 0:
        raise CodecError(f"max_output_size must be a byte count >= 0 or None, not {max_output_size!r}")
    return max_output_size


def _decode(data: bytes | bytearray | memoryview, max_output_size: int | None) -> tuple[dict, Any]:
    if not isinstance(data, BYTES_LIKE):
        raise CodecError(f"decompress takes the bytes of an .nctk file, not a {type(data).__name__}")
    data = container.byte_view(data)
    limit = output_limit(len(data), max_output_size)
    box = container.loads(data)
    size = box.header.get("original_size")
    if isinstance(size, int) and size > limit:
        how = "" if max_output_size is not None else (
            f" (the default: the larger of {DEFAULT_MAX_OUTPUT} and {MAX_EXPANSION} times the file's "
            f"{len(data)} bytes)")
        raise LimitError(f"this file decodes to {size} bytes, over the limit of {limit} bytes{how}; if you "
                         f"trust it, raise the limit: max_output_size={size} (nctk decompress "
                         f"--max-output-size {size})")
    c = _codec_for(box.header)
    return box.header, c.decode(Encoded(box.header, list(box.sections.values())))


def decompress(data: bytes | bytearray | memoryview, *, max_output_size: int | None = None) -> Any:
    """Decode ``.nctk`` bytes: file mode gives the original file's exact bytes (a ``bytearray``), array
    mode the numpy array or torch tensor.

    ``max_output_size`` bounds what the file may decode to, checked before anything is allocated;
    None is the default guard against decompression bombs (:func:`output_limit`: 1 GiB, or 1024 times
    the file's size if that is more). Raises :class:`LimitError` over the limit, :class:`FormatError`
    subclasses for damaged, truncated or unsupported data (:class:`UnsupportedVersionError` for an
    unknown codec or a newer version)."""
    _, item = _decode(data, max_output_size)
    return item.data if isinstance(item, FileItem) else item


def decompress_file(data: bytes | bytearray | memoryview, *,
                    max_output_size: int | None = None) -> tuple[str | None, bytearray]:
    """``(original base name or None, exact file bytes)``; the bytes are a ``bytearray`` (the decoder's
    own buffer, handed over without a copy). ``max_output_size`` as for :func:`decompress`.
    :class:`CodecError` if ``data`` holds an array or tensor rather than a file."""
    header, item = _decode(data, max_output_size)
    if not isinstance(item, FileItem):
        raise CodecError(f"this .nctk holds a {header.get('kind', 'non-file')} item, not a file; "
                         "use decompress()")
    return item.name, item.data


def codecs() -> list[dict]:
    """One dict per available codec: id, version, modality, lossless, quality_range, extensions,
    description. From the static catalogue: no codec is imported."""
    return [info.as_dict() for info in registry.catalogue()]


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
