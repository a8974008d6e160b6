"""``tensor-lossless`` (version 1): exact compression of ``.safetensors`` / ``.npy`` files and of numpy
arrays and torch tensors.

Input is cut into segments (:mod:`codec.tensor.formats`): raw bytes kept verbatim, and typed tensor
data whose elements are split into symbol fields (:mod:`codec.tensor.fields`: float exponents and
sign+mantissa planes, or byte planes). The values of one field of one scheme, over all segments, form
a *stream* named ``<scheme>.<field>``, e.g. ``f32.e`` (every float32 exponent in the file) or ``x8.b0``
(the low bytes of every 8-byte integer). Per stream, each segment is either coded with an order-0
table (its own, or one pooled table shared by the stream's segments) or stored raw, whichever the
estimated size (table bytes included) says is smaller. Inputs under 64 KiB are stored wholly raw when
that is smaller still, and so are tensors under 128 bytes (``formats.MIN_TYPED_BYTES``).

The encoder refuses (:class:`CodecError`, before any work) what a decoder would refuse: inputs over 4 TiB,
more than 2**20 - 1 typed segments, or a layout that could exceed 64 MiB. Both directions work a block
of elements at a time: the encoder never holds a stream's symbols at once, the decoder writes every
field straight into the one output buffer.

Sections (each present only when not empty; streams are visited in sorted ``(scheme, field index)``
order wherever order matters):

``layout``
    one chunk of compact JSON ``{"segments": [...]}``; each entry is ``["raw", nbytes]`` or
    ``["t", scheme, byteorder, nelems, [one per field: table id, -1 = stored raw, or -2 - v = every
    symbol is v]]``. The decoded item is the segments' bytes in this order.
``raw``
    the raw segments' bytes back to back (chunks of 16 MiB; count = bytes).
``tables``
    one chunk per coded stream: its :class:`~entropy.tables.Tables` (``to_bytes``); count = tables.
``<scheme>.<field>``
    one per coded stream: its coded segments' symbols back to back, in layout order, each segment
    with its table; rANS chunks of ``coder.chunk_size`` symbols (count = symbols).
``planes``
    the raw-stored symbols of each stream back to back, bit-packed (:func:`~codec.tensor.fields.pack`),
    in chunks of 2**24 symbols that never span two streams (count = symbols).

Header, beside the common keys (``kind`` "file", "array" or "tensor"): ``format`` ("npy",
"safetensors" or null), ``original_size`` (bytes of the file, or of the array data), for arrays and
tensors ``array`` = ``{"dtype", "shape"[, "order"]}``, and for files a short ``summary``.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from nctk.codec.registry import MAX_CHUNK_SIZE, Encoded, FileItem, base_header, check_codec, check_coder, check_kind
from nctk.codec.tensor import LOSSLESS, formats
from nctk.codec.tensor import fields as F
from nctk.codec.tensor.formats import Segment
from nctk.entropy.coder import DEFAULT_CHUNK, DEFAULT_LANES, chunk_counts, decode_chunks, encode_chunks
from nctk.entropy.container import MAX_CHUNKS, Section, byte_view
from nctk.entropy.errors import (
    CodecError,
    CorruptStreamError,
    FormatError,
    LimitError,
    NctkError,
)
from nctk.entropy.tables import PRECISION_MAX, PRECISION_MIN, Tables, from_counts

RAW_CHUNK_BYTES = 1 << 24  # verbatim bytes per chunk of the "raw" section
RAW_CHUNK_SYMBOLS = 1 << 24  # symbols per chunk of the "planes" section (a multiple of 8)
# Chunks handed to the coder per call: enough for every core, few enough to bound its 4-byte-per-symbol
# working arrays (the bytes do not depend on it: chunks are independent).
CODER_BATCH_CHUNKS = max(8, os.cpu_count() or 1)
BLOCK_ELEMENTS = 1 << 20  # elements split into fields at a time: bounds the encoder's temporaries
SMALL_INPUT = 1 << 16  # below this many bytes, one rANS lane (less per-chunk state overhead)
MAX_LAYOUT_BYTES = 64 << 20  # the largest layout section a decoder accepts (and so the encoder writes)
MAX_TYPED_SEGMENTS = (1 << 20) - 1  # each may need its own table; a stream's table set holds at most 2**20
MAX_ORIGINAL_SIZE = 1 << 42  # 4 TiB: a header claiming more is refused before any allocation


class TensorLossless:
    """Exact float/integer tensor compression (see the module docstring for the format)."""

    # The static metadata (codec/tensor/__init__.py) is the one definition; version 1 is the format above.
    id, version, modality = LOSSLESS.id, LOSSLESS.version, LOSSLESS.modality
    lossless, quality_range = LOSSLESS.lossless, LOSSLESS.quality_range
    extensions, description = LOSSLESS.extensions, LOSSLESS.description

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise CodecError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}")
        self.chunk_size = chunk_size

    # ----------------------------------------------------------------------------------- choosing

    def sniff(self, prefix: bytes, name: str | None = None) -> bool:
        """True for content that starts like an ``.npy`` or a ``.safetensors`` file."""
        return _content_format(prefix) is not None

    # ----------------------------------------------------------------------------------- encoding

    def encode(self, item: Any, *, quality: float | None = None) -> Encoded:
        """Encode a :class:`FileItem` (or bytes), a numpy array, or a torch tensor."""
        if quality is not None:
            raise CodecError(f"codec {self.id!r} is lossless and takes no quality setting; omit quality")
        if isinstance(item, (bytes, bytearray, memoryview, mmap.mmap)):
            item = FileItem(item, None)
        if isinstance(item, FileItem):
            return self._encode_file(item)
        if formats.is_torch_tensor(item):
            raw, sch, order, meta = formats.tensor_bytes(item)
            return self._encode_array(raw, sch, order, meta, "tensor")
        if isinstance(item, (np.ndarray, np.generic)):
            raw, sch, order, meta = formats.array_bytes(item)
            return self._encode_array(raw, sch, order, meta, "array")
        raise CodecError(f"{self.id} cannot encode a {type(item).__name__}; give it .npy/.safetensors "
                         "bytes, a numpy array or a torch tensor")

    def _encode_file(self, item: FileItem) -> Encoded:
        data = byte_view(item.data)
        fmt = _content_format(data)  # content first, then the name's extension
        if fmt is None:
            ext = os.path.splitext(item.name or "")[1].lower()
            if ext not in (".npy", ".safetensors"):
                raise CodecError(f"{item.name or 'the input'!r} is neither an .npy nor a .safetensors file")
            fmt = ext[1:]
        segs, summary = formats.parse_npy(data) if fmt == "npy" else formats.parse_safetensors(data)
        lanes = 1 if len(data) < SMALL_INPUT else DEFAULT_LANES
        header = base_header(self, kind="file", original_name=item.name, lanes=lanes,
                             chunk_size=self.chunk_size)
        header.update({"format": fmt, "original_size": len(data), "summary": summary})
        return Encoded(header, self._smallest(data, segs, lanes))

    def _encode_array(self, raw: memoryview, sch: str, order: str, meta: dict, kind: str) -> Encoded:
        segs = formats.typed_segments(0, len(raw), sch, order)
        lanes = 1 if len(raw) < SMALL_INPUT else DEFAULT_LANES
        header = base_header(self, kind=kind, original_name=None, lanes=lanes, chunk_size=self.chunk_size)
        header.update({"format": None, "original_size": len(raw), "array": meta})
        return Encoded(header, self._smallest(raw, segs, lanes))

    def _smallest(self, data: memoryview, segs: list[Segment], lanes: int) -> list[Section]:
        """The coded sections, or for small inputs everything stored raw if that is smaller."""
        sections = self._code_segments(data, segs, lanes)
        if len(data) < SMALL_INPUT and any(s.scheme for s in segs):
            plain = _layout_sections([["raw", len(data)]], [data])
            if _stored_size(plain) < _stored_size(sections):
                return plain
        return sections

    def _code_segments(self, data: memoryview, segs: list[Segment], lanes: int) -> list[Section]:
        _check_limits(len(data), segs, self.chunk_size)
        layout: list[list] = []
        raw_parts: list[memoryview] = []
        members: dict[str, list[_Member]] = {}  # scheme -> its typed segments, in layout order
        for seg in segs:
            if seg.scheme is None:
                layout.append(["raw", seg.size])
                raw_parts.append(data[seg.start : seg.end])
                continue
            sch = F.SCHEMES[seg.scheme]
            layout.append(["t", sch.name, seg.order, seg.size // sch.unit, [-1] * len(sch.fields)])
            members.setdefault(sch.name, []).append(_Member(len(layout) - 1, seg.start, seg.end, seg.order))
        tab_chunks: list[bytes] = []
        tab_counts: list[int] = []
        plane_chunks: list[bytes] = []
        plane_counts: list[int] = []
        coded_sections: list[Section] = []
        for name in sorted(members):  # streams in sorted (scheme, field index) order
            sch, mem = F.SCHEMES[name], members[name]
            for j, (fname, bits, _) in enumerate(sch.fields):
                tids, tables = _plan_stream(_field_stats(data, mem, sch, j), len(mem), bits, lanes, self.chunk_size)
                for m, t in zip(mem, tids, strict=True):
                    layout[m.index][4][j] = t
                coded = [(m, t) for m, t in zip(mem, tids, strict=True) if t >= 0]
                if coded:
                    assert tables is not None
                    tab_chunks.append(tables.to_bytes())
                    tab_counts.append(len(tables))
                    chunks, counts = _rans_encode(data, coded, sch, j, tables, lanes, self.chunk_size)
                    coded_sections.append(Section(f"{name}.{fname}", chunks, counts))
                stored = [m for m, t in zip(mem, tids, strict=True) if t == -1]
                for sym in _rebatch(_symbols(data, stored, sch, j), RAW_CHUNK_SYMBOLS, np.concatenate):
                    plane_chunks.append(F.pack(sym, bits))
                    plane_counts.append(len(sym))
        out = _layout_sections(layout, raw_parts)
        if tab_chunks:
            out.append(Section("tables", tab_chunks, tab_counts))
        out.extend(coded_sections)
        if plane_chunks:
            out.append(Section("planes", plane_chunks, plane_counts))
        return out

    # ----------------------------------------------------------------------------------- decoding

    def decode(self, encoded: Encoded) -> Any:
        """The :class:`FileItem`, numpy array or torch tensor that :meth:`encode` was given. Files come back
        as a ``bytearray`` (the decoder's own buffer: no copy)."""
        h = encoded.header
        check_codec(h, self)
        lanes, chunk_size = check_coder(h)
        kind = check_kind(h, ("file", "array", "tensor"))
        size = h.get("original_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(f"bad original_size {size!r} in header")
        if size > MAX_ORIGINAL_SIZE:
            raise LimitError(f"original_size {size} exceeds this build's limit of {MAX_ORIGINAL_SIZE} bytes")
        if kind == "file":
            name = h.get("original_name")
            if name is not None and not isinstance(name, str):
                raise FormatError("bad original_name in header")
        else:
            meta = h.get("array")
            if not isinstance(meta, dict):
                raise FormatError('header lacks "array" (dtype and shape)')
        try:
            data = self._decode_segments(encoded, lanes, chunk_size, size)
            if kind == "file":
                return FileItem(data, name)
            if kind == "tensor":
                return formats.tensor_from_bytes(data, meta)
            return formats.array_from_bytes(data, meta)
        except NctkError:
            raise
        except MemoryError:
            raise LimitError(f"{self.id}: decoding needs more memory than this machine has "
                             f"(original size {size} bytes)") from None
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError) as e:
            raise FormatError(f"{self.id}: malformed payload ({type(e).__name__}: {e})") from e

    def _decode_segments(self, enc: Encoded, lanes: int, chunk_size: int, size: int) -> bytearray:
        """Validate the layout against the sections, then write every segment straight into one buffer."""
        layout = _parse_layout(enc.section("layout"))
        starts = [0]
        for e in layout:
            starts.append(starts[-1] + _entry_bytes(e))
        if starts[-1] != size:
            raise FormatError("layout does not add up to the original size")
        streams: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        for li, e in enumerate(layout):
            if e[0] == "t":
                for j, t in enumerate(e[4]):
                    streams.setdefault((e[1], j), []).append((li, e[3], t))
        raw = [(starts[li], e[1]) for li, e in enumerate(layout) if e[0] == "raw" and e[1]]
        needed = {"layout"} | ({"raw"} if raw else set())
        for (name, j), members in streams.items():
            if any(t >= 0 and n for _, n, t in members):
                needed |= {"tables", f"{name}.{F.scheme(name).fields[j][0]}"}
            if any(t == -1 and n for _, n, t in members):
                needed.add("planes")
        extra = [n for n in enc.names() if n not in needed]
        if extra:
            raise FormatError(f"unexpected sections {', '.join(map(repr, extra))} for this layout")
        if raw:
            sec = enc.section("raw")
            want = sum(n for _, n in raw)
            if sec.total_bytes != want:
                raise FormatError(f"raw section holds {sec.total_bytes} bytes, the layout needs {want}")
        out = bytearray(size)  # zeroed: untouched pages cost nothing, and fields are OR-ed in
        buf = np.frombuffer(out, dtype=np.uint8) if size else np.zeros(0, np.uint8)
        if raw:
            put = _Scatter(buf, [(a, n, "|") for a, n in raw], 1, _copy)
            for chunk in enc.section("raw").chunks:
                put(np.frombuffer(chunk, dtype=np.uint8))

        def scatter(sel: list[tuple[int, int, int]], sch: F.Scheme, j: int) -> _Scatter:
            """Field ``j`` of the members ``sel`` (members that lie back to back form one run)."""
            runs: list[tuple[int, int, str]] = []
            for li, n, _ in sel:
                start, order = starts[li], layout[li][2]
                if runs and runs[-1][0] + runs[-1][1] == start and runs[-1][2] == order:
                    runs[-1] = (runs[-1][0], runs[-1][1] + n * sch.unit, order)
                else:
                    runs.append((start, n * sch.unit, order))
            return _Scatter(buf, runs, sch.unit, lambda dst, src, order: F.merge_into(dst, src, sch, order, j))

        tables = _Cursor(enc, "tables")
        planes = _Cursor(enc, "planes")
        for (name, j), members in sorted(streams.items()):
            sch = F.scheme(name)
            fname, bits, _ = sch.fields[j]
            consts = [(starts[li], n * sch.unit, layout[li][2], -2 - t) for li, n, t in members if t < -2 and n]
            if consts:  # (-2: a constant 0, which the zeroed buffer holds already)
                if max(v for *_, v in consts) >= 1 << bits:
                    raise FormatError(f"a constant does not fit the {bits} bits of stream {name}.{fname}")
                _fill_constants(buf, consts, sch, j)
            coded = [(li, n, t) for li, n, t in members if t >= 0 and n > 0]
            if coded:
                blob, count = tables.take(1)
                _rans_decode(enc.section(f"{name}.{fname}"), blob[0], count[0], coded, bits, lanes, chunk_size,
                             scatter(coded, sch, j))
            stored = [(li, n, t) for li, n, t in members if t == -1 and n > 0]
            if stored:
                total = sum(n for _, n, _ in stored)
                blobs, counts = planes.take(-(-total // RAW_CHUNK_SYMBOLS))
                want = [min(RAW_CHUNK_SYMBOLS, total - a) for a in range(0, total, RAW_CHUNK_SYMBOLS)]
                if counts != want:
                    raise FormatError(f"planes section: stream {name}.{fname} has chunks of {counts} "
                                      f"symbols, the layout needs {want}")
                put = scatter(stored, sch, j)
                for c, n in zip(blobs, counts, strict=True):
                    put(F.unpack(c, n, bits))
        tables.finish()
        planes.finish()
        return out


class _Member(NamedTuple):
    """A typed segment of the input: its layout entry and its bytes ``[start, end)`` in byte order ``order``."""

    index: int
    start: int
    end: int
    order: str


class _Scatter:
    """Writes a stream of items (bytes, or one field's symbols), arriving in pieces in order, into runs of
    the output buffer: ``runs`` are ``(byte offset, byte count, byte order)``, ``unit`` bytes per item,
    ``write(destination bytes, items or one int, byte order)``."""

    def __init__(self, buf: np.ndarray, runs: list[tuple[int, int, str]], unit: int, write: Callable):
        self.buf, self.runs, self.unit, self.write = buf, runs, unit, write
        self.next = self.pos = self.end = 0  # the next run; the current run's byte range left to fill

    def __call__(self, items: np.ndarray) -> None:
        k = 0
        while k < len(items):
            if self.pos == self.end:
                self.pos, nbytes, self.order = self.runs[self.next]
                self.end = self.pos + nbytes
                self.next += 1
            take = min(len(items) - k, (self.end - self.pos) // self.unit, BLOCK_ELEMENTS)  # bounds temporaries
            self.write(self.buf[self.pos : self.pos + take * self.unit], items[k : k + take], self.order)
            self.pos += take * self.unit
            k += take


def _fill_constants(buf: np.ndarray, consts: list[tuple[int, int, str, int]], sch: F.Scheme, j: int) -> None:
    """Field ``j`` of segments where it is one value throughout, ``(byte offset, bytes, byte order,
    value)`` each: large ones in place, small ones all at once (a file may hold a million of them)."""
    small = [c for c in consts if c[1] <= 64 * sch.unit]
    for start, nbytes, order, v in consts:
        if nbytes > 64 * sch.unit:
            F.merge_into(buf[start : start + nbytes], v, sch, order, j)
    for order in {c[2] for c in small}:
        sel = [c for c in small if c[2] == order]
        pattern = np.zeros(len(sel) * sch.unit, np.uint8)  # one element per segment, only field j set
        F.merge_into(pattern, np.array([c[3] for c in sel]), sch, order, j)
        nbytes = np.array([c[1] for c in sel])
        seg = np.repeat(np.arange(len(sel)), nbytes)
        offset = np.arange(len(seg)) - np.repeat(np.cumsum(nbytes) - nbytes, nbytes)  # byte within its segment
        buf[np.array([c[0] for c in sel])[seg] + offset] |= pattern[seg * sch.unit + offset % sch.unit]


def _copy(dst: np.ndarray, src: np.ndarray, order: str) -> None:
    dst[:] = src


class _Cursor:
    """Walks the chunks of an optional section (``tables`` or ``planes``) stream by stream."""

    def __init__(self, enc: Encoded, name: str):
        self.enc, self.name = enc, name
        self.sec: Section | None = None
        self.pos = 0

    def take(self, k: int) -> tuple[list, list[int]]:
        if self.sec is None:
            self.sec = self.enc.section(self.name)
        if self.pos + k > len(self.sec.chunks):
            raise FormatError(f"section {self.name!r} has fewer chunks than the layout needs")
        a, self.pos = self.pos, self.pos + k
        return list(self.sec.chunks[a : self.pos]), [int(c) for c in self.sec.counts[a : self.pos]]

    def finish(self) -> None:
        if self.sec is not None and self.pos != len(self.sec.chunks):
            raise FormatError(f"section {self.name!r} has more chunks than the layout needs")


# ------------------------------------------------------------------------------------------ encoding

def _content_format(prefix: bytes | memoryview) -> str | None:
    """``"npy"`` or ``"safetensors"`` if the leading bytes say so, else None."""
    if formats.is_npy(prefix):
        return "npy"
    return "safetensors" if formats.is_safetensors(prefix) else None


def _check_limits(size: int, segs: list[Segment], chunk_size: int) -> None:
    """Refuse, before any work, an input whose file a decoder would refuse: too large, too many typed
    segments, a layout that could exceed :data:`MAX_LAYOUT_BYTES`, or a stream over the container's chunks."""
    if size > MAX_ORIGINAL_SIZE:
        raise CodecError(f"the input is {size} bytes; a file holds at most {MAX_ORIGINAL_SIZE}: split it")
    typed = sum(1 for s in segs if s.scheme is not None)
    if typed > MAX_TYPED_SEGMENTS:
        raise CodecError(f"the input has {typed} tensors to code; a file holds at most {MAX_TYPED_SEGMENTS}: "
                         "split it into several files")
    bound = _layout_bound(segs)
    if bound > MAX_LAYOUT_BYTES:
        raise CodecError(f"the input has {typed} tensors to code; their layout could take {bound} bytes, over "
                         f"the {MAX_LAYOUT_BYTES}-byte limit that decoders accept: split it into several files "
                         "with fewer tensors each")
    elements: dict[str, int] = {}
    for seg in segs:
        if seg.scheme is not None:
            elements[seg.scheme] = elements.get(seg.scheme, 0) + seg.size // F.SCHEMES[seg.scheme].unit
    for name, n in elements.items():
        if -(-n // chunk_size) > MAX_CHUNKS:
            raise CodecError(f"{n} {name} elements need more than {MAX_CHUNKS} chunks of {chunk_size} symbols: "
                             "use a larger chunk_size")


def _layout_bound(segs: list[Segment]) -> int:
    """An upper bound on the layout section's bytes for these segments: its JSON with every entry at
    its widest (``["raw",n]``, ``["t","sch","<",n,[ids]]``; an id is a table number up to the scheme's
    segment count, -1, or ``-2 - v`` for a constant field value ``v``)."""
    typed: dict[str, list[int]] = {}  # scheme -> elements per segment
    bound = len('{"segments":[]}') + len(segs) - 1
    for seg in segs:
        if seg.scheme is None:
            bound += len('["raw",]') + len(str(seg.size))
        else:
            typed.setdefault(seg.scheme, []).append(seg.size // F.SCHEMES[seg.scheme].unit)
    for name, ns in typed.items():
        fields = F.SCHEMES[name].fields
        ids = sum(max(len(str(len(ns))), len(str(-1 - (1 << bits)))) for _, bits, _ in fields) + len(fields) - 1
        bound += len(ns) * (len('["t","","<",,[]]') + len(name) + ids) + sum(len(str(n)) for n in ns)
    return bound


def _pieces(data: memoryview, members: list[_Member], unit: int) -> Iterator[tuple[Any, str, list]]:
    """The members' bytes in order, as ``(bytes, byte order, [(member position, elements), ...])``: small
    members of one byte order gathered into one piece (a view when they lie back to back), large ones
    cut into pieces of :data:`BLOCK_ELEMENTS` elements, so that splitting costs neither a call per tiny
    tensor nor a copy of a large one."""
    ranges: list[list[int]] = []  # byte ranges of the piece being gathered
    spans: list[tuple[int, int]] = []
    have, order = 0, ""
    for i, m in enumerate(members):
        n = (m.end - m.start) // unit
        if ranges and (have + n > BLOCK_ELEMENTS or m.order != order):
            yield _gather(data, ranges), order, spans
            ranges, spans, have = [], [], 0
        if n > BLOCK_ELEMENTS:
            for a in range(0, n, BLOCK_ELEMENTS):
                k = min(BLOCK_ELEMENTS, n - a)
                yield data[m.start + a * unit : m.start + (a + k) * unit], m.order, [(i, k)]
            continue
        if ranges and ranges[-1][1] == m.start:
            ranges[-1][1] = m.end
        else:
            ranges.append([m.start, m.end])
        spans.append((i, n))
        have, order = have + n, m.order
    if ranges:
        yield _gather(data, ranges), order, spans


def _gather(data: memoryview, ranges: list[list[int]]) -> Any:
    return data[ranges[0][0] : ranges[0][1]] if len(ranges) == 1 else b"".join(data[a:b] for a, b in ranges)


def _symbols(data: memoryview, members: list[_Member], sch: F.Scheme, j: int) -> Iterator[np.ndarray]:
    """Field ``j`` of the members' elements, back to back, in pieces."""
    for piece, order, _ in _pieces(data, members, sch.unit):
        yield F.field(piece, sch, order, j)


def _rebatch(pieces: Iterable, size: int, join: Callable) -> Iterator:
    """The pieces' items back to back, re-cut into batches of exactly ``size`` (the last one shorter)."""
    pending: list = []
    have = 0
    for p in pieces:
        while len(p):
            take = min(len(p), size - have)
            pending.append(p[:take])
            have += take
            p = p[take:]
            if have == size:
                yield pending[0] if len(pending) == 1 else join(pending)
                pending, have = [], 0
    if have:
        yield pending[0] if len(pending) == 1 else join(pending)


def _field_stats(data: memoryview, members: list[_Member], sch: F.Scheme, j: int) -> tuple[np.ndarray, ...]:
    """Every member's histogram of field ``j`` as sparse triples ``(member position, symbol, count)``,
    sorted: a million small tensors must not cost a million dense 256-bin histograms."""
    size = 1 << sch.fields[j][1]
    found: list[tuple[np.ndarray, ...]] = []
    hist, owner = np.zeros(size, np.int64), -1  # a member too large for one piece, added up piece by piece

    def flush() -> None:
        nz = np.flatnonzero(hist)
        found.append((np.full(len(nz), owner, np.int32), nz.astype(np.uint16), hist[nz]))

    for piece, order, spans in _pieces(data, members, sch.unit):
        f = F.field(piece, sch, order, j)
        if len(spans) == 1:
            if spans[0][0] != owner:
                if owner >= 0:
                    flush()
                hist, owner = np.zeros(size, np.int64), spans[0][0]
            hist += np.bincount(f, minlength=size)
            continue
        if owner >= 0:
            flush()
            owner = -1
        ids = np.repeat(np.array([i for i, _ in spans], dtype=np.int64), [n for _, n in spans])
        keys, cnt = np.unique(ids * size + f, return_counts=True)
        found.append(((keys // size).astype(np.int32), (keys % size).astype(np.uint16), cnt))
    if owner >= 0:
        flush()
    return tuple(np.concatenate(x) for x in zip(*found, strict=True))


def _varint_len(v: np.ndarray) -> np.ndarray:
    return 1 + (v >= 1 << 7) + (v >= 1 << 14) + (v >= 1 << 21)


def _table_bytes(h: np.ndarray, precision: int) -> int:
    """Estimated serialised size of a table for counts ``h`` (its nonzero range plus the escape)."""
    nz = np.flatnonzero(h)
    if not len(nz):
        return 9
    seg = h[nz[0] : nz[-1] + 1].astype(np.float64)
    f = np.maximum(1, np.rint(seg / seg.sum() * (1 << precision))).astype(np.int64)
    return 8 + int(_varint_len(f).sum()) + 1


def _precision(n: int, alphabet: int) -> int:
    """Table precision: enough for the empirical probabilities of ``n`` symbols and for ``alphabet``
    entries (escape included), within what the entropy layer allows."""
    need = max(PRECISION_MIN, (alphabet - 1).bit_length())
    return max(need, min(PRECISION_MAX, n.bit_length() + 1))


def _plan_stream(stats: tuple[np.ndarray, ...], m: int, bits: int, lanes: int,
                 chunk_size: int) -> tuple[list[int], Tables | None]:
    """Per member: a table id (into the returned Tables), -1 for raw storage, or ``-2 - v`` when every
    symbol equals ``v``. ``stats`` are the members' histograms as sparse triples (:func:`_field_stats`).

    Each member costs the least of: raw (``bits`` per symbol), its own table (entropy plus table
    bytes) or the stream's pooled table (cross-entropy; the pooled table's bytes are charged once and
    the pool is dropped when it does not pay). Then the whole stream is stored raw if coding does not
    beat that, counting per-chunk state and section overhead. Every cost is a sum over the triples,
    vectorised over members.
    """
    mi, sym, cnt = stats
    size = 1 << bits
    choice = [-1] * m
    nnz = np.bincount(mi, minlength=m)
    first = np.cumsum(nnz) - nnz  # each member's first triple
    for i in np.flatnonzero(nnz == 1):  # one value throughout: the layout records it, nothing else is stored
        choice[i] = -2 - int(sym[first[i]])
    keep = nnz[mi] > 1
    mi, sym, cnt = mi[keep], sym[keep], cnt[keep]
    if not len(mi):
        return choice, None
    nnz = np.bincount(mi, minlength=m)
    first = np.cumsum(nnz) - nnz
    live = nnz > 0
    ns = np.bincount(mi, weights=cnt, minlength=m).astype(np.int64)

    def per_member(values: np.ndarray) -> np.ndarray:
        return np.bincount(mi, weights=values, minlength=m)

    def pooled(members: np.ndarray) -> np.ndarray:
        sel = members[mi]
        return np.bincount(sym[sel], weights=cnt[sel], minlength=size).astype(np.int64)

    total = pooled(live)
    nz = np.flatnonzero(total)
    precision = _precision(int(ns.sum()), int(nz[-1] - nz[0] + 1) + 1)
    raw = ns * bits / 8.0
    p = cnt.astype(np.float64)
    entropy = per_member(p * np.log2(ns[mi] / p))
    freq = np.maximum(1, np.rint(p / ns[mi] * (1 << precision)))
    lo, hi = (sym[np.minimum(k, len(sym) - 1)].astype(np.int64) for k in (first, first + nnz - 1))
    span = np.where(live, hi - lo + 1, 0)
    table = 9 + per_member(_varint_len(freq)) + span - nnz  # table bytes; zero counts inside the range: 1 byte
    own = np.where(live, entropy / 8 + table, np.inf)
    alone = np.minimum(raw, own)

    def shared_cost(pool: np.ndarray) -> np.ndarray:
        q = np.maximum(pool / pool.sum(), 1.0 / (1 << precision))
        return np.where(live, per_member(p * -np.log2(q[sym])) / 8, np.inf)

    shared = np.zeros(m, dtype=bool)
    pool = total
    for _ in range(3):  # members that fit the pool best, then the pool of those members, ...
        cost = shared_cost(pool)
        new = (cost < alone) & live
        if new.any() and cost[new].sum() + _table_bytes(pooled(new), precision) >= alone[new].sum():
            new[:] = False
        if (new == shared).all():
            break
        shared = new
        if not shared.any():
            break
        pool = pooled(shared)
    use_own = (~shared) & (own < raw) & live
    coded = shared | use_own
    if not coded.any():
        return choice, None
    # Whole-stream check: table-set header and its chunk entry, the stream's section entry, and per
    # chunk the rANS lane states, the flush word and the chunk-table entry.
    n_coded = int(ns[coded].sum())
    chunks = -(-n_coded // chunk_size)
    est = 10 + 12 + 25 + chunks * (8 * lanes + 4 + 12) + own[use_own].sum()
    if shared.any():
        est += shared_cost(pool)[shared].sum() + _table_bytes(pool, precision)
    if est >= raw[coded].sum():
        return choice, None
    tables = []
    if shared.any():
        tables.append(_table(pool, precision))
    for i in range(m):
        if shared[i]:
            choice[i] = 0
        elif use_own[i]:
            choice[i] = len(tables)
            h = np.zeros(size, np.int64)
            h[sym[first[i] : first[i] + nnz[i]]] = cnt[first[i] : first[i] + nnz[i]]
            tables.append(_table(h, precision))
    return choice, Tables(tables)


def _table(h: np.ndarray, precision: int):
    nz = np.flatnonzero(h)
    lo, hi = int(nz[0]), int(nz[-1])
    return from_counts(h[lo : hi + 1], offset=lo, precision=precision)


def _rans_encode(data: memoryview, coded: list[tuple[_Member, int]], sch: F.Scheme, j: int, tables: Tables,
                 lanes: int, chunk_size: int) -> tuple[list[bytes], list[int]]:
    """rANS chunks (and symbol counts) of field ``j`` of the members back to back, each with its table.
    Fields are split and coded a batch at a time: the stream's symbols never all exist at once."""
    tids = np.array([t for _, t in coded], dtype=np.int32)
    ns = np.array([(m.end - m.start) // sch.unit for m, _ in coded], dtype=np.int64)
    chunks: list[bytes] = []
    a = 0
    for sym in _rebatch(_symbols(data, [m for m, _ in coded], sch, j), chunk_size * CODER_BATCH_CHUNKS,
                        np.concatenate):
        chunks.extend(encode_chunks(sym, _table_ids(tids, ns, a, len(sym)), tables, chunk_size=chunk_size,
                                    lanes=lanes))
        a += len(sym)
    return chunks, chunk_counts(a, chunk_size) if a else []


def _table_ids(tids: np.ndarray, ns: np.ndarray, a: int, n: int) -> int | np.ndarray:
    """The table of each symbol ``a .. a+n-1`` of a stream whose members hold ``ns`` symbols with tables
    ``tids`` (one int when all share a table)."""
    if (tids == tids[0]).all():
        return int(tids[0])
    starts = np.cumsum(ns) - ns
    lo, hi = np.searchsorted(starts, a, "right") - 1, np.searchsorted(starts, a + n)
    ends = np.minimum(starts[lo:hi] + ns[lo:hi], a + n)
    return np.repeat(tids[lo:hi], ends - np.maximum(starts[lo:hi], a))


def _layout_sections(layout: list[list], raw_parts: list[memoryview]) -> list[Section]:
    """The ``layout`` section and, when there are raw bytes, the ``raw`` section (chunks that lie in one
    part are views of the input, not copies)."""
    blob = json.dumps({"segments": layout}, separators=(",", ":")).encode("ascii")
    if len(blob) > MAX_LAYOUT_BYTES:  # _check_limits bounds it; never write what a decoder refuses
        raise CodecError(f"the layout takes {len(blob)} bytes, over the {MAX_LAYOUT_BYTES}-byte limit")
    out = [Section("layout", [blob], [1])]
    pieces = list(_rebatch(raw_parts, RAW_CHUNK_BYTES, b"".join))
    if pieces:
        out.append(Section("raw", pieces, [len(p) for p in pieces]))
    return out


def _stored_size(sections: list[Section]) -> int:
    """Bytes the sections take in a container (payloads plus section and chunk tables)."""
    return sum(1 + len(s.name) + 8 + 12 * len(s.chunks) + s.total_bytes for s in sections)


# ------------------------------------------------------------------------------------- decode helpers

def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_layout(sec: Section) -> list[list]:
    if len(sec.chunks) != 1:
        raise FormatError("layout section must be one chunk")
    blob = bytes(sec.chunks[0])
    if len(blob) > MAX_LAYOUT_BYTES:
        raise FormatError("layout section is implausibly large")
    try:
        obj = json.loads(blob.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"layout section is not valid JSON ({e})") from None
    segs = obj.get("segments") if isinstance(obj, dict) else None
    if not isinstance(segs, list):
        raise FormatError('layout lacks "segments"')
    for e in segs:
        if not isinstance(e, list) or not e:
            raise FormatError("bad layout entry")
        if e[0] == "raw":
            if len(e) != 2 or not _is_count(e[1]):
                raise FormatError(f"bad raw layout entry {str(e)[:80]}")
        elif e[0] == "t":
            if len(e) != 5 or not isinstance(e[1], str) or e[2] not in F.ORDERS or not _is_count(e[3]):
                raise FormatError(f"bad tensor layout entry {str(e)[:80]}")
            sch = F.scheme(e[1])
            tids = e[4]
            if (not isinstance(tids, list) or len(tids) != len(sch.fields)
                    or not all(isinstance(t, int) and not isinstance(t, bool) for t in tids)):
                raise FormatError(f"bad table ids in layout entry {str(e)[:80]}")
        else:
            raise FormatError(f"unknown layout entry kind {str(e[0])[:20]!r}")
    return segs


def _entry_bytes(e: list) -> int:
    return e[1] if e[0] == "raw" else e[3] * F.scheme(e[1]).unit


def _rans_decode(sec: Section, table_blob, table_count: int, coded: list[tuple[int, int, int]],
                 bits: int, lanes: int, chunk_size: int, sink: Callable[[np.ndarray], None]) -> None:
    """Decode one stream's rANS section a batch of chunks at a time, handing the coded members' symbols
    to ``sink`` in order."""
    # The encoder writes at most one table per coded member plus one pooled table: refuse more before
    # parsing, so a hostile file cannot make the decoder build millions of tables.
    if not 1 <= table_count <= len(coded) + 1:
        raise FormatError(f"tables chunk for {sec.name} declares {table_count} tables for {len(coded)} members")
    tables = Tables.from_bytes(table_blob)
    if table_count != len(tables):
        raise FormatError(f"tables chunk for {sec.name} declares {table_count} tables, holds {len(tables)}")
    top = max(t for _, _, t in coded)
    if top >= len(tables):
        raise FormatError(f"layout refers to table {top} of {sec.name}, which has {len(tables)}")
    total = sum(n for _, n, _ in coded)
    counts = [int(c) for c in sec.counts]
    if sum(counts) != total or counts != (chunk_counts(total, chunk_size) if total else []):
        raise FormatError(f"section {sec.name} holds {sum(counts)} symbols in {len(counts)} chunks; "
                          f"the layout needs {total} in chunks of {chunk_size}")
    tids = np.array([t for _, _, t in coded], dtype=np.int32)
    ns = np.array([n for _, n, _ in coded], dtype=np.int64)
    a = 0
    for c in range(0, len(counts), CODER_BATCH_CHUNKS):
        cnt = counts[c : c + CODER_BATCH_CHUNKS]
        n = sum(cnt)
        sym = decode_chunks(sec.chunks[c : c + CODER_BATCH_CHUNKS], _table_ids(tids, ns, a, n), tables, cnt,
                            lanes=lanes)
        if n and (sym.min() < 0 or sym.max() >= 1 << bits):
            raise CorruptStreamError(f"section {sec.name} decodes to symbols outside {bits} bits")
        sink(sym)
        a += n


__all__ = ["TensorLossless"]
