"""The .nctk container: a JSON header plus named sections of independently checksummed chunks.

Byte layout (docs/FORMAT.md, section "Container"), all integers little-endian::

    magic 89 4E 43 54 4B 0D 0A 1A | version u16 | flags u16 | header length H u32
    header: H bytes of canonical UTF-8 JSON (an object with "codec" and "codec_version")
    section count S u32 | CRC32 of bytes [8, 20+H)
    S sections, each: name length u8 | name | chunk count C u32 | C x (length u32, count u32, CRC32 u32)
                      | CRC32 of the section table | the C chunk payloads back to back

The reader validates every declared length against hard limits and against the bytes actually present
*before* using it, so hostile input fails fast with a :class:`~entropy.errors.FormatError` subclass and
never makes it allocate more than a small multiple of the input's size. :func:`loads` returns chunk
payloads as zero-copy ``memoryview`` slices of the input, made on access (:class:`ChunkViews`): a file of
millions of empty chunks costs 8 bytes of offsets per chunk, not a Python object each.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple

from nctk.entropy.errors import (
    ChecksumError,
    FormatError,
    LimitError,
    NotNctkError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "FORMAT_VERSION", "MAGIC", "MAX_CHUNKS", "MAX_CHUNK_BYTES", "MAX_COUNT", "MAX_HEADER", "MAX_HEADER_DEPTH",
    "MAX_NAME", "MAX_SECTIONS", "ChunkViews", "Container", "Section", "SectionInfo", "byte_view", "dumps", "is_nctk",
    "loads", "read_header", "write",
]

MAGIC = b"\x89NCTK\r\n\x1a"
FORMAT_VERSION = 1
MAX_HEADER = 1 << 20  # bytes of header JSON
MIN_HEADER = 2  # "{}"
MAX_SECTIONS = 1 << 16
MAX_CHUNKS = 1 << 24  # per section
MAX_CHUNK_BYTES = (1 << 32) - 1
MAX_COUNT = (1 << 32) - 1
MAX_NAME = 64
MAX_HEADER_DEPTH = 32  # the header object itself is depth 1

_PREAMBLE = struct.Struct("<8sHHI")  # magic, version, flags, header length
_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")  # section count + header CRC
_ENTRY = 12  # bytes per chunk-table entry
_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_NAME_RE_BYTES = re.compile(rb"[A-Za-z0-9_.\-]{1,64}")

# Chunk tables are decoded into a compact uint32 array (4 bytes per entry, not a tuple of Python ints).
_U32_CODE = next(code for code in "ILH" if array(code).itemsize == 4)

# A JSON string runs to its closing quote or, if unterminated, to the end of the input. Written so that it
# can never fail once started: linear time on any input (no backtracking blow-up on hostile headers).
_JSON_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


# --------------------------------------------------------------------------------------------- data types


class ChunkViews(Sequence):
    """A parsed section's chunk payloads: zero-copy ``memoryview`` slices of the file, each made when it is
    read. Holds only the chunk offsets (8 bytes per chunk). Slicing returns a list of views."""

    __slots__ = ("_mv", "_offsets")

    def __init__(self, mv: memoryview, offsets: array) -> None:
        self._mv = mv
        self._offsets = offsets  # len(self) + 1 absolute byte offsets into mv

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("chunk index out of range")
        return self._mv[self._offsets[i] : self._offsets[i + 1]]

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same payloads (as a list of the views would be)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ChunkViews({len(self)} chunks)"


@dataclass
class Section:
    """One named section: chunk payloads and an opaque item count per chunk (same length)."""

    name: str
    chunks: Sequence[bytes | memoryview] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Sum of the payload sizes in bytes."""
        return sum(_nbytes(c) for c in self.chunks)

    @property
    def total_count(self) -> int:
        """Sum of the per-chunk item counts."""
        return sum(int(n) for n in self.counts)


@dataclass
class Container:
    """A parsed .nctk file: its header object and its sections by name, in file order."""

    header: dict
    sections: dict[str, Section]

    def section(self, name: str) -> Section:
        """The section called ``name``; raises :class:`FormatError` naming it if the file lacks it."""
        try:
            return self.sections[name]
        except KeyError:
            have = ", ".join(repr(n) for n in self.sections) or "none"
            raise FormatError(f"missing section {name!r} (the file has: {have})") from None


class SectionInfo(NamedTuple):
    """What :func:`read_header` reports per section, without touching the payloads."""

    name: str
    chunk_count: int
    total_bytes: int
    total_count: int


# ------------------------------------------------------------------------------------------------- header


def _check_depth(raw: bytes) -> None:
    """Reject nesting deeper than MAX_HEADER_DEPTH before json ever recurses into it."""
    brackets = _JSON_STRING_RE.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = 0
    for b in brackets:
        if b == 0x5B or b == 0x7B:  # [ {
            depth += 1
            if depth > MAX_HEADER_DEPTH:
                raise FormatError(f"header JSON nests deeper than {MAX_HEADER_DEPTH} levels")
        elif depth:  # an unmatched closer is a JSON error anyway; never let it hide later nesting
            depth -= 1


def _reject_constant(name: str) -> Any:
    raise FormatError(f"header JSON contains {name}; only finite numbers are allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FormatError(f"header JSON number {text[:40]!r} is out of range (not finite)")
    return value


def _unique_object(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise FormatError(f"header JSON has duplicate key {key[:64]!r}")
            seen.add(key)
    return obj


def _check_header_fields(header: Any) -> dict:
    if not isinstance(header, dict):
        raise FormatError(f"header must be a JSON object, not {type(header).__name__}")
    codec = header.get("codec")
    if not isinstance(codec, str) or not codec:
        raise FormatError('header lacks "codec" (a non-empty string)')
    version = header.get("codec_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise FormatError('header lacks "codec_version" (an integer >= 0)')
    return header


def _parse_header(raw: bytes) -> dict:
    """Decode and validate header bytes (UTF-8 JSON object, no NaN, no duplicate keys, depth <= 32)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"header is not valid UTF-8 (byte {e.start} of the header)") from None
    _check_depth(raw)
    try:
        obj = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_reject_constant,
                         parse_float=_finite_float)
    except FormatError:
        raise
    except RecursionError:  # unreachable after _check_depth; kept so no input can escape as one
        raise FormatError("header JSON nests too deeply") from None
    except ValueError as e:  # JSONDecodeError, or an integer with too many digits
        raise FormatError(f"header is not valid JSON: {str(e)[:200]}") from None
    return _check_header_fields(obj)


def _encode_header(header: dict) -> bytes:
    """Canonical header bytes, validated by the same rules the reader applies."""
    _check_header_fields(header)
    try:
        raw = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                         allow_nan=False).encode("ascii")
    except RecursionError:
        raise FormatError("header nests too deeply to encode") from None
    except (TypeError, ValueError) as e:
        raise FormatError(f"header is not JSON-encodable: {e}") from None
    if len(raw) > MAX_HEADER:
        raise LimitError(f"header is {len(raw)} bytes of JSON; the limit is {MAX_HEADER}")
    _parse_header(raw)  # depth, duplicate keys after key conversion, ...
    return raw


# ------------------------------------------------------------------------------------------------- writer


def _nbytes(chunk: Any) -> int:
    return len(chunk) if isinstance(chunk, bytes) else memoryview(chunk).nbytes


def _byte_view(chunk: Any, where: str) -> bytes | memoryview:
    if isinstance(chunk, bytes):
        return chunk
    try:
        view = memoryview(chunk)
    except TypeError:
        raise FormatError(f"{where} is not bytes-like ({type(chunk).__name__})") from None
    if not view.c_contiguous:
        raise FormatError(f"{where} is not a contiguous buffer")
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _plan(header: dict, sections: Sequence[Section]) -> list[bytes | memoryview]:
    """Validate everything, then return the file as a list of pieces (payloads are not copied)."""
    raw_header = _encode_header(header)
    sections = list(sections)
    if len(sections) > MAX_SECTIONS:
        raise LimitError(f"{len(sections)} sections; the limit is {MAX_SECTIONS}")
    head = _PREAMBLE.pack(MAGIC, FORMAT_VERSION, 0, len(raw_header)) + raw_header + _U32.pack(len(sections))
    pieces: list[bytes | memoryview] = [head, _U32.pack(zlib.crc32(memoryview(head)[8:]))]
    seen: set[str] = set()
    for sec in sections:
        if not isinstance(sec, Section):
            raise FormatError(f"sections must be Section objects, not {type(sec).__name__}")
        name = sec.name
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise FormatError(f"bad section name {name!r}: need 1..{MAX_NAME} characters of [A-Za-z0-9_.-]")
        if name in seen:
            raise FormatError(f"duplicate section name {name!r}")
        seen.add(name)
        chunks, counts = list(sec.chunks), list(sec.counts)
        if len(chunks) != len(counts):
            raise FormatError(f"section {name!r} has {len(chunks)} chunks but {len(counts)} counts")
        if len(chunks) > MAX_CHUNKS:
            raise LimitError(f"section {name!r} has {len(chunks)} chunks; the limit is {MAX_CHUNKS}")
        table = bytearray()
        table += bytes([len(name)]) + name.encode("ascii") + _U32.pack(len(chunks))
        views = []
        for i, (chunk, count) in enumerate(zip(chunks, counts, strict=True)):
            where = f"section {name!r} chunk {i}"
            view = _byte_view(chunk, where)
            size = _nbytes(view)
            if size > MAX_CHUNK_BYTES:
                raise LimitError(f"{where} is {size} bytes; the limit is {MAX_CHUNK_BYTES}")
            if isinstance(count, bool):
                raise FormatError(f"{where} item count must be an integer, not bool")
            try:
                count = operator.index(count)
            except TypeError:
                kind = type(count).__name__
                raise FormatError(f"{where} item count must be an integer, not {kind}") from None
            if not 0 <= count <= MAX_COUNT:
                raise LimitError(f"{where} item count {count} is outside 0..{MAX_COUNT}")
            table += struct.pack("<III", size, count, zlib.crc32(view))
            views.append(view)
        pieces.append(bytes(table) + _U32.pack(zlib.crc32(table)))
        pieces.extend(v for v in views if _nbytes(v))
    return pieces


def dumps(header: dict, sections: Sequence[Section]) -> bytes:
    """The complete .nctk file for ``header`` and ``sections`` (in that order) as bytes.

    Raises :class:`FormatError` (:class:`LimitError` for size limits) if the input cannot be written:
    bad header, bad or duplicate section names, chunk/count length mismatch, oversized values.
    """
    return b"".join(_plan(header, sections))


def size(header: dict, sections: Sequence[Section]) -> int:
    """The length in bytes of the file :func:`dumps` would return, without joining it (rate control measures
    candidates this way); validates as :func:`dumps` does."""
    return sum(_nbytes(piece) for piece in _plan(header, sections))


def write(fp: BinaryIO, header: dict, sections: Sequence[Section]) -> int:
    """Stream the file :func:`dumps` would return to the open binary file ``fp``; returns bytes written.

    Everything is validated before the first byte is written, so an invalid input leaves ``fp`` untouched.
    Payloads are written straight from their buffers, without being copied into one large string.
    """
    total = 0
    for piece in _plan(header, sections):
        view = memoryview(piece)
        while view.nbytes:
            n = fp.write(view)
            if n is None:  # non-blocking raw stream that could not take anything; no sane way to wait
                raise OSError("write() accepted no bytes (non-blocking stream?)")
            total += n
            view = view[n:]
    return total


# ------------------------------------------------------------------------------------------------- reader


def is_nctk(prefix: bytes) -> bool:
    """True if ``prefix`` (at least the first 8 bytes of a file) starts with the .nctk magic."""
    return bytes(prefix[: len(MAGIC)]) == MAGIC


def _need(mv: memoryview, pos: int, n: int, what: str) -> None:
    left = len(mv) - pos
    if n > left:
        raise TruncatedError(f"truncated: {what} needs {n} bytes at offset {pos}, {max(left, 0)} left")


def _parse_preamble(mv: memoryview) -> tuple[dict, int, int]:
    """Validate magic .. header CRC and the header JSON; returns (header, section count, offset)."""
    size = len(mv)
    if size < len(MAGIC):
        if MAGIC.startswith(bytes(mv)):
            raise TruncatedError(f"truncated: {size} bytes, shorter than the {len(MAGIC)}-byte magic")
        raise NotNctkError("not an .nctk file (bad magic)")
    if bytes(mv[:8]) != MAGIC:
        raise NotNctkError("not an .nctk file (bad magic)")
    _need(mv, 8, 2, "format version")
    (version,) = struct.unpack_from("<H", mv, 8)
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"format version {version} is not supported (this build reads version {FORMAT_VERSION})")
    _need(mv, 10, 2, "flags")
    (flags,) = struct.unpack_from("<H", mv, 10)
    if flags:
        raise FormatError(f"reserved flags are 0x{flags:04x}; must be 0 in format version {FORMAT_VERSION}")
    _need(mv, 12, 4, "header length")
    (hlen,) = _U32.unpack_from(mv, 12)
    if not MIN_HEADER <= hlen <= MAX_HEADER:
        raise LimitError(f"header length {hlen} is outside {MIN_HEADER}..{MAX_HEADER}")
    _need(mv, 16, hlen + 8, f"header ({hlen} bytes) with section count and CRC")
    count, crc = _U32X2.unpack_from(mv, 16 + hlen)
    actual = zlib.crc32(mv[8 : 20 + hlen])
    if crc != actual:
        raise ChecksumError(f"header checksum mismatch (stored {crc:08x}, computed {actual:08x})")
    header = _parse_header(bytes(mv[16 : 16 + hlen]))
    if count > MAX_SECTIONS:
        raise LimitError(f"section count {count} exceeds the limit {MAX_SECTIONS}")
    return header, count, 24 + hlen


def _iter_sections(mv: memoryview, pos: int, count: int,
                   check_payloads: bool) -> Iterator[tuple[str, array, array, int]]:
    """Yield (name, lengths, counts, payload offset) per section, validating as described in the spec."""
    seen: set[str] = set()
    for index in range(count):
        start = pos
        label = f"section {index}"
        _need(mv, pos, 1, f"{label} name length")
        n = mv[pos]
        if not 1 <= n <= MAX_NAME:
            raise LimitError(f"{label} name length {n} is outside 1..{MAX_NAME}")
        _need(mv, pos, 1 + n + 4, f"{label} name and chunk count")
        (chunks,) = _U32.unpack_from(mv, pos + 1 + n)
        if chunks > MAX_CHUNKS:
            raise LimitError(f"{label} chunk count {chunks} exceeds the limit {MAX_CHUNKS}")
        pos += 1 + n + 4
        _need(mv, pos, _ENTRY * chunks + 4, f"{label} chunk table ({chunks} chunks) and CRC")
        table_end = pos + _ENTRY * chunks
        (crc,) = _U32.unpack_from(mv, table_end)
        actual = zlib.crc32(mv[start:table_end])
        if crc != actual:
            raise ChecksumError(f"{label} table checksum mismatch (stored {crc:08x}, computed {actual:08x})")
        raw_name = bytes(mv[start + 1 : start + 1 + n])
        if not _NAME_RE_BYTES.fullmatch(raw_name):
            raise FormatError(f"{label} has a bad name {raw_name!r}: need [A-Za-z0-9_.-]")
        name = raw_name.decode("ascii")
        if name in seen:
            raise FormatError(f"duplicate section name {name!r}")
        seen.add(name)
        entries = array(_U32_CODE)
        entries.frombytes(mv[pos:table_end])
        if sys.byteorder != "little":
            entries.byteswap()
        lengths, counts, crcs = entries[0::3], entries[1::3], entries[2::3]
        pos = table_end + 4
        left = len(mv) - pos
        if sum(lengths) > left:
            offset = 0
            for i, length in enumerate(lengths):
                if length > left - offset:
                    raise TruncatedError(f"truncated: section {name!r} chunk {i} needs {length} bytes, "
                                         f"{left - offset} left")
                offset += length
        if check_payloads:
            offset = pos
            for i, (length, stored) in enumerate(zip(lengths, crcs, strict=True)):
                actual = zlib.crc32(mv[offset : offset + length])
                if stored != actual:
                    raise ChecksumError(f"section {name!r} chunk {i} checksum mismatch "
                                        f"(stored {stored:08x}, computed {actual:08x})")
                offset += length
        yield name, lengths, counts, pos
        pos += sum(lengths)
    if pos != len(mv):
        raise FormatError(f"{len(mv) - pos} trailing bytes after the last section (offset {pos})")


def byte_view(data: Any) -> memoryview:
    """A flat byte view of any bytes-like object (bytes, bytearray, memoryview, mmap, ...), zero-copy for a
    contiguous buffer (a non-contiguous one is copied)."""
    mv = memoryview(data)
    if mv.format == "B" and mv.ndim == 1:
        return mv
    return mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())


def loads(data: bytes | bytearray | memoryview) -> Container:
    """Parse and fully validate a .nctk file, every CRC included.

    Chunk payloads are zero-copy ``memoryview`` slices of ``data``. Raises only :class:`FormatError`
    subclasses on malformed input (``data`` itself must be a contiguous bytes-like object).
    """
    mv = byte_view(data)
    header, count, pos = _parse_preamble(mv)
    sections: dict[str, Section] = {}
    for name, lengths, counts, offset in _iter_sections(mv, pos, count, check_payloads=True):
        offsets = array("q", itertools.accumulate(lengths, initial=offset))
        sections[name] = Section(name, ChunkViews(mv, offsets), counts.tolist())
    return Container(header, sections)


def read_header(data: bytes | bytearray | memoryview) -> tuple[dict, list[SectionInfo]]:
    """The header and a summary per section, validating all structure but not the payload CRCs.

    Checks the magic, version, flags, header CRC and JSON, every section table and its CRC, that the
    payloads fit in ``data`` and that nothing trails the last one. For ``nctk info``.
    """
    mv = byte_view(data)
    header, count, pos = _parse_preamble(mv)
    infos = [SectionInfo(name, len(lengths), sum(lengths), sum(counts))
             for name, lengths, counts, _ in _iter_sections(mv, pos, count, check_payloads=False)]
    return header, infos
