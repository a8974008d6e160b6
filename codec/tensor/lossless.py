"""``tensor-lossless`` (version 1): exact compression of ``.safetensors`` / ``.npy`` files and of numpy
arrays and torch tensors.

Input is cut into segments (:mod:`codec.tensor.formats`): raw bytes kept verbatim, and typed tensor
data whose elements are split into symbol fields (:mod:`codec.tensor.fields`: float exponents and
sign+mantissa planes, or byte planes). The values of one field of one scheme, over all segments, form
a *stream* named ``<scheme>.<field>``, e.g. ``f32.e`` (every float32 exponent in the file) or ``x8.b0``
(the low bytes of every 8-byte integer). Per stream, each segment is either coded with an order-0
table (its own, or one pooled table shared by the stream's segments) or stored raw, whichever the
estimated size (table bytes included) says is smaller. Inputs under 64 KiB are stored wholly raw when
that is smaller still.

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
import os
from typing import Any

import numpy as np

from nctk.codec.registry import MAX_CHUNK_SIZE, Encoded, FileItem, base_header, check_coder, check_kind
from nctk.codec.tensor import fields as F
from nctk.codec.tensor import formats
from nctk.codec.tensor.formats import Segment
from nctk.entropy.coder import DEFAULT_CHUNK, DEFAULT_LANES, decode_chunks, encode_chunks
from nctk.entropy.container import Section
from nctk.entropy.errors import (
    CodecError,
    CorruptStreamError,
    FormatError,
    LimitError,
    NctkError,
    UnsupportedVersionError,
)
from nctk.entropy.tables import PRECISION_MAX, PRECISION_MIN, Tables, from_counts

RAW_CHUNK_BYTES = 1 << 24  # verbatim bytes per chunk of the "raw" section
RAW_CHUNK_SYMBOLS = 1 << 24  # symbols per chunk of a "<stream>.raw" section (a multiple of 8)
CODER_BATCH_CHUNKS = 64  # chunks handed to the coder per call: bounds its int64 working copies
SMALL_INPUT = 1 << 16  # below this many bytes, one rANS lane (less per-chunk state overhead)
MAX_LAYOUT_BYTES = 64 << 20
MAX_ORIGINAL_SIZE = 1 << 42  # 4 TiB: a header claiming more is refused before any allocation


class TensorLossless:
    """Exact float/integer tensor compression (see the module docstring for the format)."""

    id = "tensor-lossless"
    version = 1
    modality = "tensor"
    lossless = True
    quality_range = None
    extensions = (".safetensors", ".npy")
    description = ("lossless .safetensors/.npy files, numpy arrays and torch tensors: float exponents "
                   "and mantissa planes, integer byte planes, order-0 rANS; byte-identical round trip")

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise CodecError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}")
        self.chunk_size = chunk_size

    # ----------------------------------------------------------------------------------- choosing

    def sniff(self, prefix: bytes, name: str | None = None) -> bool:
        """True for content that starts like an ``.npy`` or a ``.safetensors`` file."""
        return formats.is_npy(prefix) or formats.is_safetensors(prefix)

    # ----------------------------------------------------------------------------------- encoding

    def encode(self, item: Any, *, quality: float | None = None) -> Encoded:
        """Encode a :class:`FileItem` (or bytes), a numpy array, or a torch tensor."""
        if quality is not None:
            raise CodecError(f"codec {self.id!r} is lossless and takes no quality setting; omit quality")
        if isinstance(item, (bytes, bytearray, memoryview)):
            item = FileItem(bytes(item), None)
        if isinstance(item, FileItem):
            return self._encode_file(item)
        if formats.is_torch_tensor(item):
            raw, sch, order, meta = formats.tensor_bytes(item)
            return self._encode_array(raw, sch, order, meta, "tensor")
        if isinstance(item, (np.ndarray, np.generic)):
            raw, sch, order, meta = formats.array_bytes(np.asarray(item))
            return self._encode_array(raw, sch, order, meta, "array")
        raise CodecError(f"{self.id} cannot encode a {type(item).__name__}; give it .npy/.safetensors "
                         "bytes, a numpy array or a torch tensor")

    def _file_format(self, item: FileItem) -> str:
        if formats.is_npy(item.data):
            return "npy"
        if formats.is_safetensors(item.data):
            return "safetensors"
        ext = os.path.splitext(item.name or "")[1].lower()
        if ext in (".npy", ".safetensors"):
            return ext[1:]
        shown = item.name or "the input"
        raise CodecError(f"{shown!r} is neither an .npy nor a .safetensors file")

    def _encode_file(self, item: FileItem) -> Encoded:
        fmt = self._file_format(item)
        data = memoryview(item.data)
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
            plain = _layout_sections([["raw", len(data)]], bytes(data))
            if _stored_size(plain) < _stored_size(sections):
                return plain
        return sections

    def _code_segments(self, data: memoryview, segs: list[Segment], lanes: int) -> list[Section]:
        layout: list[list] = []
        raw_parts: list[memoryview] = []
        streams: dict[tuple[str, int], list[tuple[int, np.ndarray]]] = {}
        for seg in segs:
            piece = data[seg.start : seg.end]
            if seg.scheme is None:
                layout.append(["raw", seg.size])
                raw_parts.append(piece)
                continue
            sch = F.SCHEMES[seg.scheme]
            n = seg.size // sch.unit
            entry = ["t", sch.name, seg.order, n, [-1] * len(sch.fields)]
            layout.append(entry)
            for j, symbols in enumerate(F.split(piece, sch, seg.order)):
                streams.setdefault((sch.name, j), []).append((len(layout) - 1, symbols))
        tab_chunks: list[bytes] = []
        tab_counts: list[int] = []
        plane_chunks: list[bytes] = []
        plane_counts: list[int] = []
        coded_sections: list[Section] = []
        for (name, j), members in sorted(streams.items()):
            fname, bits, _ = F.SCHEMES[name].fields[j]
            tids, tables = _plan_stream([s for _, s in members], bits, lanes, self.chunk_size)
            for (li, _), t in zip(members, tids, strict=True):
                layout[li][4][j] = t
            coded = [(s, t) for (_, s), t in zip(members, tids, strict=True) if t >= 0 and len(s)]
            if coded:
                assert tables is not None
                tab_chunks.append(tables.to_bytes())
                tab_counts.append(len(tables))
                chunks, counts = _rans_encode(coded, tables, lanes, self.chunk_size)
                coded_sections.append(Section(f"{name}.{fname}", chunks, counts))
            stored = [s for (_, s), t in zip(members, tids, strict=True) if t == -1 and len(s)]
            if stored:
                sym = np.concatenate(stored)
                for a in range(0, len(sym), RAW_CHUNK_SYMBOLS):
                    plane_chunks.append(F.pack(sym[a : a + RAW_CHUNK_SYMBOLS], bits))
                    plane_counts.append(min(RAW_CHUNK_SYMBOLS, len(sym) - a))
        out = _layout_sections(layout, b"".join(raw_parts))
        if tab_chunks:
            out.append(Section("tables", tab_chunks, tab_counts))
        out.extend(coded_sections)
        if plane_chunks:
            out.append(Section("planes", plane_chunks, plane_counts))
        return out

    # ----------------------------------------------------------------------------------- decoding

    def decode(self, encoded: Encoded) -> Any:
        """The :class:`FileItem`, numpy array or torch tensor that :meth:`encode` was given."""
        h = encoded.header
        if h.get("codec") != self.id:
            raise FormatError(f"not a {self.id} file (codec {h.get('codec')!r})")
        version = h.get("codec_version")
        if version != self.version:
            raise UnsupportedVersionError(
                f"{self.id} version {version!r} is not supported (this build reads version {self.version})")
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
                return FileItem(bytes(data), name)
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
        layout = _parse_layout(enc.section("layout"))
        if sum(_entry_bytes(e) for e in layout) != size:
            raise FormatError("layout does not add up to the original size")
        expected = {"layout"}
        raw_total = sum(e[1] for e in layout if e[0] == "raw")
        raw = b""
        if raw_total:
            expected.add("raw")
            raw = b"".join(bytes(c) for c in enc.section("raw").chunks)
            if len(raw) != raw_total:
                raise FormatError(f"raw section holds {len(raw)} bytes, the layout needs {raw_total}")
        streams: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        for li, e in enumerate(layout):
            if e[0] == "t":
                for j, t in enumerate(e[4]):
                    streams.setdefault((e[1], j), []).append((li, e[3], t))
        tables = _Cursor(enc, "tables", expected)
        planes = _Cursor(enc, "planes", expected)
        values: dict[tuple[int, int], np.ndarray] = {}
        for (name, j), members in sorted(streams.items()):
            fname, bits, _ = F.scheme(name).fields[j]
            coded = [(li, n, t) for li, n, t in members if t >= 0 and n > 0]
            stored = [(li, n) for li, n, t in members if t == -1 and n > 0]
            for li, n, t in members:
                if t <= -2 and n > 0:
                    if -2 - t >= 1 << bits:
                        raise FormatError(f"constant {-2 - t} does not fit stream {name}.{fname}")
                    values[(li, j)] = np.full(n, -2 - t, dtype=np.uint16 if bits > 8 else np.uint8)
            if coded:
                sname = f"{name}.{fname}"
                expected.add(sname)
                blob, count = tables.take(1)
                sym = _rans_decode(enc.section(sname), blob[0], count[0], coded, bits, lanes, chunk_size)
                a = 0
                for li, n, _ in coded:
                    values[(li, j)] = sym[a : a + n]
                    a += n
            if stored:
                total = sum(n for _, n in stored)
                blobs, counts = planes.take(-(-total // RAW_CHUNK_SYMBOLS))
                want = [min(RAW_CHUNK_SYMBOLS, total - a) for a in range(0, total, RAW_CHUNK_SYMBOLS)]
                if counts != want:
                    raise FormatError(f"planes section: stream {name}.{fname} has chunks of {counts} "
                                      f"symbols, the layout needs {want}")
                sym = np.concatenate([F.unpack(c, n, bits) for c, n in zip(blobs, counts, strict=True)])
                a = 0
                for li, n in stored:
                    values[(li, j)] = sym[a : a + n]
                    a += n
        tables.finish()
        planes.finish()
        extra = [n for n in enc.names() if n not in expected]
        if extra:
            raise FormatError(f"unexpected sections {', '.join(map(repr, extra))} for this layout")
        out = bytearray(size)
        pos = rpos = 0
        empty = np.zeros(0, dtype=np.uint8)
        for li, e in enumerate(layout):
            if e[0] == "raw":
                piece: bytes | memoryview = memoryview(raw)[rpos : rpos + e[1]]
                rpos += e[1]
            else:
                sch = F.scheme(e[1])
                piece = F.merge([values.get((li, j), empty) for j in range(len(sch.fields))], sch, e[2])
            out[pos : pos + len(piece)] = piece
            pos += len(piece)
        return out


class _Cursor:
    """Walks the chunks of an optional section (``tables`` or ``planes``) stream by stream."""

    def __init__(self, enc: Encoded, name: str, expected: set[str]):
        self.enc, self.name, self.expected = enc, name, expected
        self.sec: Section | None = None
        self.pos = 0

    def take(self, k: int) -> tuple[list, list[int]]:
        if self.sec is None:
            self.sec = self.enc.section(self.name)
            self.expected.add(self.name)
        if self.pos + k > len(self.sec.chunks):
            raise FormatError(f"section {self.name!r} has fewer chunks than the layout needs")
        a, self.pos = self.pos, self.pos + k
        return list(self.sec.chunks[a : self.pos]), [int(c) for c in self.sec.counts[a : self.pos]]

    def finish(self) -> None:
        if self.sec is not None and self.pos != len(self.sec.chunks):
            raise FormatError(f"section {self.name!r} has more chunks than the layout needs")


# ------------------------------------------------------------------------------------------- planning

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


def _entropy_bits(h: np.ndarray) -> float:
    n = h.sum()
    if n == 0:
        return 0.0
    p = h[h > 0].astype(np.float64)
    return float((p * np.log2(n / p)).sum())


def _cross_bits(h: np.ndarray, pool: np.ndarray, precision: int) -> float:
    total = pool.sum()
    q = np.maximum(pool / total, 1.0 / (1 << precision))
    m = h > 0
    return float((h[m] * -np.log2(q[m])).sum())


def _precision(n: int, alphabet: int) -> int:
    """Table precision: enough for the empirical probabilities of ``n`` symbols and for ``alphabet``
    entries (escape included), within what the entropy layer allows."""
    need = max(PRECISION_MIN, (alphabet - 1).bit_length())
    return max(need, min(PRECISION_MAX, n.bit_length() + 1))


def _plan_stream(arrays: list[np.ndarray], bits: int, lanes: int,
                 chunk_size: int) -> tuple[list[int], Tables | None]:
    """Per member: a table id (into the returned Tables), -1 for raw storage, or ``-2 - v`` when every
    symbol equals ``v``.

    Each member costs the least of: raw (``bits`` per symbol), its own table (entropy plus table
    bytes) or the stream's pooled table (cross-entropy; the pooled table's bytes are charged once and
    the pool is dropped when it does not pay). Then the whole stream is stored raw if coding does not
    beat that, counting per-chunk state and section overhead.
    """
    m = len(arrays)
    size = 1 << bits
    ns = np.array([len(a) for a in arrays], dtype=np.int64)
    choice = [-1] * m
    if ns.sum() == 0:
        return choice, None
    hists = [np.bincount(a, minlength=size).astype(np.int64) if len(a) else np.zeros(size, np.int64)
             for a in arrays]
    for i, h in enumerate(hists):
        nz = np.flatnonzero(h)
        if len(nz) == 1:  # one value throughout: the layout records it, nothing else is stored
            choice[i] = -2 - int(nz[0])
            ns[i] = 0
            hists[i] = np.zeros(size, np.int64)
    if ns.sum() == 0:
        return choice, None
    total = hists[0].copy()
    for h in hists[1:]:
        total += h
    nz = np.flatnonzero(total)
    precision = _precision(int(ns.sum()), int(nz[-1] - nz[0] + 1) + 1)
    raw = ns * bits / 8.0
    own = np.array([_entropy_bits(h) / 8 + _table_bytes(h, precision) if n else np.inf
                    for h, n in zip(hists, ns, strict=True)])
    alone = np.minimum(raw, own)

    def pooled(members: np.ndarray) -> np.ndarray:
        return sum((hists[i] for i in np.flatnonzero(members)), np.zeros(size, np.int64))

    def shared_cost(pool: np.ndarray) -> np.ndarray:
        return np.array([_cross_bits(h, pool, precision) / 8 if n else np.inf
                         for h, n in zip(hists, ns, strict=True)])

    shared = np.zeros(m, dtype=bool)
    pool = total
    for _ in range(3):  # members that fit the pool best, then the pool of those members, ...
        cost = shared_cost(pool)
        new = (cost < alone) & (ns > 0)
        if new.any() and cost[new].sum() + _table_bytes(pooled(new), precision) >= alone[new].sum():
            new[:] = False
        if (new == shared).all():
            break
        shared = new
        if not shared.any():
            break
        pool = pooled(shared)
    use_own = (~shared) & (own < raw) & (ns > 0)
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
            tables.append(_table(hists[i], precision))
    return choice, Tables(tables)


def _table(h: np.ndarray, precision: int):
    nz = np.flatnonzero(h)
    lo, hi = int(nz[0]), int(nz[-1])
    return from_counts(h[lo : hi + 1], offset=lo, precision=precision)


def _rans_encode(coded: list[tuple[np.ndarray, int]], tables: Tables, lanes: int,
                 chunk_size: int) -> tuple[list[bytes], list[int]]:
    """rANS chunks (and symbol counts) of the members' symbols back to back, each with its table."""
    sym = np.concatenate([s for s, _ in coded])
    single = len({t for _, t in coded}) == 1
    idx = coded[0][1] if single else np.repeat(
        np.array([t for _, t in coded], dtype=np.int32), [len(s) for s, _ in coded])
    chunks: list[bytes] = []
    batch = chunk_size * CODER_BATCH_CHUNKS
    for a in range(0, len(sym), batch):
        part_idx = idx if single else idx[a : a + batch]
        chunks.extend(encode_chunks(sym[a : a + batch], part_idx, tables, chunk_size=chunk_size, lanes=lanes))
    return chunks, [min(chunk_size, len(sym) - a) for a in range(0, len(sym), chunk_size)]


def _layout_sections(layout: list[list], raw: bytes) -> list[Section]:
    """The ``layout`` section and, when there are raw bytes, the ``raw`` section."""
    blob = json.dumps({"segments": layout}, separators=(",", ":")).encode("ascii")
    out = [Section("layout", [blob], [1])]
    if raw:
        pieces = [raw[a : a + RAW_CHUNK_BYTES] for a in range(0, len(raw), RAW_CHUNK_BYTES)]
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
                 bits: int, lanes: int, chunk_size: int) -> np.ndarray:
    """The coded members' symbols (uint8, or uint16 above 8 bits) from one stream's rANS section."""
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
    if sum(counts) != total or counts != [min(chunk_size, total - a) for a in range(0, total, chunk_size)]:
        raise FormatError(f"section {sec.name} holds {sum(counts)} symbols in {len(counts)} chunks; "
                          f"the layout needs {total} in chunks of {chunk_size}")
    tids = {t for _, _, t in coded}
    idx = coded[0][2] if len(tids) == 1 else np.repeat(
        np.array([t for _, _, t in coded], dtype=np.int32), [n for _, n, _ in coded])
    out = np.empty(total, dtype=np.uint16 if bits > 8 else np.uint8)
    a = 0
    for c in range(0, len(counts), CODER_BATCH_CHUNKS):
        cnt = counts[c : c + CODER_BATCH_CHUNKS]
        n = sum(cnt)
        part_idx = idx if np.ndim(idx) == 0 else idx[a : a + n]
        sym = decode_chunks(sec.chunks[c : c + CODER_BATCH_CHUNKS], part_idx, tables, cnt, lanes=lanes)
        if n and (sym.min() < 0 or sym.max() >= 1 << bits):
            raise CorruptStreamError(f"section {sec.name} decodes to symbols outside {bits} bits")
        out[a : a + n] = sym
        a += n
    return out


__all__ = ["TensorLossless"]
