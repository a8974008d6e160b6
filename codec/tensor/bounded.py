"""``tensor-bounded`` (version 2; reads 1 and 2): error-bounded lossy compression of float tensors.

Every decoded value ``v'`` of a coded tensor satisfies ``|v' - v| <= bound`` (in float64, after rounding
to the tensor's dtype), where the bound is ``max_error``, or ``rel_error`` times the tensor's value range
(max - min of its finite values), or for ``quality`` q in [1, 24] the relative bound ``2**-q``. Inputs:
float16/bfloat16/float32/float64 numpy arrays and torch tensors, ``.npy`` files of those dtypes, and
``.safetensors`` files, whose float tensors are coded lossy and everything else (integer and bool tensors,
the JSON header with its metadata, padding) exactly. A file decodes to a file of the same layout.

Method (:mod:`codec.tensor.quantizer`, :mod:`codec.tensor.predictors`): uniform scalar quantisation with a
step just under ``2 * bound``; a predictor in integer index space (none, 2-D Lorenzo, or hierarchical
interpolation with fitted weights), chosen per tensor by the smaller estimated coded size; the residuals
coded with rANS under one adaptive order-0 table per tensor built from its own histogram (rare large
residuals escaped). Under tight bounds the residuals' low ``shift`` bits are noise: they are stored raw
(version 2) and only the high part is table-coded.

Exact data goes through the ``tensor-lossless`` codec: the *skeleton* is the decoded item with every
quantised element's bits set to zero (elements kept exactly keep their bits: NaN, +/-Inf, -0.0,
subnormals, values the quantiser cannot reach within the bound, all tensors that are not coded lossy).
Zeroed elements cost next to nothing there, and an element is an exception exactly when its skeleton
bits are not zero (+0.0 always quantises exactly), so exception positions need no other storage.

Sections: the skeleton's own sections with the prefix ``x.``; then, when any tensor is coded lossy,
``tensors`` (one chunk: JSON records), ``tables`` (one chunk: a table set, table i for record i) and
``indices`` (every record's residuals back to back, each with its record's table, in rANS chunks of
``coder.chunk_size`` symbols), and with any shift ``low`` (the raw low bits, one chunk per shifted record).
docs/FORMAT.md specifies every byte.
"""

from __future__ import annotations

import json
import math
import mmap
import numbers
import os
import struct
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from nctk.codec.registry import MAX_CHUNK_SIZE, Encoded, FileItem, base_header, check_codec, check_coder, check_kind
from nctk.codec.tensor import BOUNDED, LOSSLESS, fields, formats
from nctk.codec.tensor import predictors as P
from nctk.codec.tensor import quantizer as Q
from nctk.codec.tensor.lossless import CODER_BATCH_CHUNKS, TensorLossless, _rebatch, _table_ids
from nctk.entropy.coder import DEFAULT_CHUNK, DEFAULT_LANES, chunk_counts, decode_chunks, encode_chunks
from nctk.entropy.container import Section, byte_view
from nctk.entropy.errors import CodecError, FormatError, LimitError, NctkError
from nctk.entropy.tables import PRECISION_MAX, PRECISION_MIN, Tables, from_counts

SKELETON_PREFIX = "x."
MIN_ELEMENTS = 64  # float tensors with fewer elements stay exact: a record and a table cost more than they save
SMALL_INPUT = 1 << 16  # below this many bytes, one rANS lane (as tensor-lossless)
SAMPLE = 1 << 17  # larger tensors choose their predictor on a central block of about this many elements
HIST_HALF = 1 << 20  # residual histograms span at most 2 * HIST_HALF values (the rest are escapes anyway)
MAX_SPAN = (1 << 16) - 1  # regular entries of one table (entropy/tables.py: MAX_ALPHABET with the escape)
MAX_SHIFT = 30  # residuals fit in 31 bits: at most 30 low bits are stored raw
SHIFT_SAMPLE = 1 << 18  # the number of low bits is chosen on about this many residuals
VERSIONS = (1, 2)  # versions this build reads; it writes 1 when no record stores raw low bits, else 2
MAX_RECORDS_BYTES = 64 << 20
QUALITY_MIN, QUALITY_MAX = BOUNDED.quality_range
_SAFETENSORS_FLOATS = {"F16": "f16", "BF16": "bf16", "F32": "f32", "F64": "f64"}
_TORCH_FLOATS = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64"}
_UNIT = {"f16": 2, "bf16": 2, "f32": 4, "f64": 8}


class _Tensor(NamedTuple):
    """A float tensor to code lossy: bytes ``[start, start + rows * cols * unit)`` of the item."""

    start: int
    scheme: str
    order: str  # "<" or ">"
    rows: int
    cols: int
    name: str | None = None  # the safetensors key (None for .npy files, arrays and decoded records)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def end(self) -> int:
        return self.start + self.count * _UNIT[self.scheme]


class TensorBounded:
    """Error-bounded lossy float tensors (see the module docstring for the method and the format)."""

    # The static metadata (codec/tensor/__init__.py) is the one definition; version 1 is the format above.
    id, version, modality = BOUNDED.id, BOUNDED.version, BOUNDED.modality
    lossless, quality_range = BOUNDED.lossless, BOUNDED.quality_range
    extensions, description = BOUNDED.extensions, BOUNDED.description
    options = ("max_error", "rel_error", "sensitivity")  # keywords nctk.compress passes on (beside quality)

    def __init__(self, chunk_size: int = DEFAULT_CHUNK):
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise CodecError(f"chunk_size must be in 1..{MAX_CHUNK_SIZE}")
        self.chunk_size = chunk_size

    def sniff(self, prefix: bytes, name: str | None = None) -> bool:
        """Never: a lossy codec is used only when asked for (``codec=`` or an error bound)."""
        return False

    # ----------------------------------------------------------------------------------- encoding

    def encode(self, item: Any, *, quality: float | None = None, max_error: float | None = None,
               rel_error: float | None = None, sensitivity: Mapping[str, float] | None = None) -> Encoded:
        """Encode a :class:`FileItem` (``.npy`` / ``.safetensors`` bytes), a float numpy array or a float torch
        tensor within the bound that exactly one of ``max_error``, ``rel_error``, ``quality`` sets; with
        ``sensitivity`` (safetensors files only) that bound is spread over the named tensors (:func:`allocate`)."""
        bound = bound_spec(quality, max_error, rel_error)
        if sensitivity is not None:
            sensitivity = check_sensitivity(sensitivity)
        if isinstance(item, (bytes, bytearray, memoryview, mmap.mmap)):
            item = FileItem(item, None)
        if sensitivity is not None and not (isinstance(item, FileItem)
                                            and formats.is_safetensors(byte_view(item.data))):
            raise CodecError("sensitivity names tensors: it applies to .safetensors files only")
        if isinstance(item, FileItem):
            return self._encode_file(item, bound, sensitivity)
        if formats.is_torch_tensor(item):
            name = str(item.dtype).removeprefix("torch.")
            if name not in _TORCH_FLOATS:
                raise CodecError(_dtype_error(f"torch.{name}"))
            raw, _, order, meta = formats.tensor_bytes(item)
            return self._encode_array(raw, _TORCH_FLOATS[name], order, meta, "tensor", bound)
        if isinstance(item, (np.ndarray, np.generic)):
            dt = item.dtype
            if dt.fields is not None or dt.subdtype is not None or dt.kind != "f" or dt.itemsize not in (2, 4, 8):
                raise CodecError(_dtype_error(str(dt)))
            raw, sch, order, meta = formats.array_bytes(item)
            return self._encode_array(raw, sch, order, meta, "array", bound)
        raise CodecError(f"{self.id} cannot encode a {type(item).__name__}; give it .npy/.safetensors bytes, a "
                         "float numpy array or a float torch tensor")

    def _encode_array(self, raw: memoryview, sch: str, order: str, meta: dict, kind: str,
                      bound: dict) -> Encoded:
        shape = meta["shape"][::-1] if meta.get("order") == "F" else meta["shape"]
        rows, cols = _matrix(shape)
        tensors = [_Tensor(0, sch, order, rows, cols)] if rows * cols >= MIN_ELEMENTS else []
        skeleton = bytearray(raw)
        coded = self._code_tensors(raw, skeleton, tensors, bound)
        rebuild = formats.tensor_from_bytes if kind == "tensor" else formats.array_from_bytes
        inner = TensorLossless(self.chunk_size).encode(rebuild(skeleton, meta))
        return self._assemble(kind, None, None, len(raw), bound, inner, coded)

    def _encode_file(self, item: FileItem, bound: dict, sensitivity: dict[str, float] | None = None) -> Encoded:
        data = byte_view(item.data)
        if formats.is_npy(data):
            fmt, tensors = "npy", _npy_tensors(data)
        elif formats.is_safetensors(data):
            fmt, tensors = "safetensors", _safetensors_tensors(data)
        else:
            ext = os.path.splitext(item.name or "")[1].lower()
            if ext == ".npy":  # named like one but not one: the same error the format reader gives
                formats.parse_npy(data)
            elif ext == ".safetensors":
                formats.parse_safetensors(data)
            raise CodecError(f"{item.name or 'the input'!r} is neither an .npy nor a .safetensors file")
        bounds = None
        if sensitivity is not None:
            tensors, bounds = allocate(data, tensors, bound, sensitivity)
            bound = {**bound, "sensitivity": {"tensors": len(sensitivity), "sha256": _digest(sensitivity)}}
        skeleton = bytearray(data)
        coded = self._code_tensors(data, skeleton, tensors, bound, bounds)
        inner = TensorLossless(self.chunk_size).encode(FileItem(skeleton, item.name))
        return self._assemble("file", item.name, fmt, len(data), bound, inner, coded)

    def _code_tensors(self, data: memoryview, skeleton: bytearray, tensors: list[_Tensor],
                      bound: dict, bounds: list[float] | None = None,
                      ) -> list[tuple[dict, np.ndarray, tuple, np.ndarray | None]]:
        """Quantise each tensor, zero its quantised elements in ``skeleton``; per coded tensor its record,
        residuals (their high parts under a shift), table plan and raw low bits (None without a shift).
        ``bounds``: each tensor's own absolute bound (else from ``bound``). A tensor that would take more bits
        coded than stored exactly (estimates of both) stays exact."""
        out = []
        skel = np.frombuffer(skeleton, dtype=np.uint8)
        for i, t in enumerate(tensors):
            stored = np.frombuffer(data, dtype=Q.uint_dtype(t.scheme, t.order), count=t.count, offset=t.start)
            bits = stored.astype(Q.uint_dtype(t.scheme))
            if bounds is not None:
                b = bounds[i]
            else:
                b = bound["max_error"] if "max_error" in bound else _relative(bound) * Q.value_range(bits, t.scheme)
            b = min(b, float(np.finfo(np.float64).max))  # a huge rel_error times a huge range: still finite
            step = Q.step_for(b)
            q, exc = Q.quantize(bits, t.scheme, b, step)
            kind, weights, r = _choose_predictor(q.reshape(t.rows, t.cols))
            shift = _choose_shift(r)
            low = None
            if shift:  # a wide spread: the low bits of the residuals are noise, stored raw
                low = r & np.int32((1 << shift) - 1)
                r = r >> np.int32(shift)
            plan = _table_plan(r)
            lossy = plan[3] + shift * t.count + _exception_bits(int(exc.sum()), t.count, t.scheme)
            if lossy > 0.4 * 8 * (t.end - t.start) and lossy >= _exact_bits(bits, t.scheme):
                continue  # a bound near or below the dtype's precision: the tensor is smaller stored exactly
            del bits
            dst = skel[t.start : t.end].view(Q.uint_dtype(t.scheme, t.order))
            dst[~exc] = 0  # quantised elements: zero in the skeleton; exceptions keep their bits
            record = {"start": t.start, "scheme": t.scheme, "order": t.order, "rows": t.rows, "cols": t.cols,
                      "step": step.hex(), "max_error": b, "pred": kind, "shift": shift}
            if kind == "interp":
                record["weights"] = P.weights_json(weights)
            out.append((record, r, plan, low))
        return out

    def _assemble(self, kind: str, name: str | None, fmt: str | None, size: int, bound: dict, inner: Encoded,
                  coded: list[tuple[dict, np.ndarray, tuple, np.ndarray | None]]) -> Encoded:
        lanes = 1 if size < SMALL_INPUT else DEFAULT_LANES
        header = base_header(self, kind=kind, original_name=name, lanes=lanes, chunk_size=self.chunk_size)
        shifted = [c for c in coded if c[0]["shift"]]
        if not shifted:  # version 1 (no raw low bits) keeps such files readable by every earlier build
            header["codec_version"] = 1
            for c in coded:
                del c[0]["shift"]
        header.update({"format": fmt, "original_size": size, "bound": dict(bound), "skeleton": inner.header})
        sections = [Section(SKELETON_PREFIX + s.name, s.chunks, s.counts) for s in inner.sections]
        if coded:
            blob = json.dumps({"tensors": [c[0] for c in coded]}, separators=(",", ":"), allow_nan=False).encode()
            if len(blob) > MAX_RECORDS_BYTES:
                raise CodecError(f"{len(coded)} tensors need {len(blob)} bytes of records, over the "
                                 f"{MAX_RECORDS_BYTES}-byte limit")
            precision = max(_precision(plan[1].size, r.size) for _, r, plan, _ in coded)
            tables = Tables([from_counts(plan[1], plan[0], precision, plan[2]) for _, _, plan, _ in coded])
            # One stream: every tensor's residuals back to back, each symbol with its tensor's table, coded a
            # batch of chunks per call (few calls: each parallel call has a fixed cost).
            ids = np.arange(len(coded), dtype=np.int32)
            ns = np.array([c[1].size for c in coded], dtype=np.int64)
            chunks: list[bytes] = []
            a = 0
            for sym in _rebatch((c[1] for c in coded), self.chunk_size * CODER_BATCH_CHUNKS, np.concatenate):
                chunks += encode_chunks(sym, _table_ids(ids, ns, a, len(sym)), tables, chunk_size=self.chunk_size,
                                        lanes=lanes)
                a += len(sym)
            counts = chunk_counts(a, self.chunk_size)
            sections += [Section("tensors", [blob], [len(coded)]),
                         Section("tables", [tables.to_bytes()], [len(tables)]),
                         Section("indices", chunks, counts)]
            if shifted:  # each shifted record's low bits in chunks of chunk_size values
                step = self.chunk_size
                sections.append(Section("low", [fields.pack(c[3][a : a + step], c[0]["shift"]) for c in shifted
                                                for a in range(0, c[3].size, step)],
                                        [n for c in shifted for n in chunk_counts(c[3].size, step)]))
        return Encoded(header, sections)

    # ----------------------------------------------------------------------------------- decoding

    # ------------------------------------------------------------- rate control (nctk.codec.rate_control)

    def rate_units(self, item: Any) -> tuple[str, float]:
        """``("values", n)``: the float values of ``item``, what ``--target-bits-per-value`` divides the file by."""
        return "values", float(sum(t.count for t in _value_tensors(item)[1]))

    def psnr(self, item: Any, encoded: Encoded) -> float:
        """PSNR in dB of ``encoded`` decoded against ``item``, over all its finite float values, with their
        range (max - min over the whole item) as the peak: nctk rd's "psnr-range". ``inf`` when exact."""
        original, tensors = _value_tensors(item)
        decoded = _item_bytes(self.decode(encoded))
        total, count, lo, hi = 0.0, 0, math.inf, -math.inf
        for t in tensors:
            x, y = (Q.to_float64(np.ascontiguousarray(b[t.start : t.end]).view(Q.uint_dtype(t.scheme, t.order))
                                 .astype(Q.uint_dtype(t.scheme)), t.scheme) for b in (original, decoded))
            finite = np.isfinite(x)  # NaN and Inf come back exactly; they have no place in an MSE
            x, y = x[finite], y[finite]
            if x.size:
                d = x - y
                total, count = total + float(np.dot(d, d)), count + x.size
                lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        if not count or not hi > lo:
            raise CodecError("PSNR needs finite values with a range (max > min); this input has none")
        return math.inf if total == 0 else 10.0 * math.log10((hi - lo) ** 2 * count / total)

    def decode(self, encoded: Encoded) -> Any:
        """The :class:`FileItem`, numpy array or torch tensor that :meth:`encode` was given, within its bound."""
        h = encoded.header
        version = check_codec(h, self, VERSIONS)
        lanes, chunk_size = check_coder(h)
        kind = check_kind(h, ("file", "array", "tensor"))
        size = h.get("original_size")
        inner_header = h.get("skeleton")
        if not isinstance(inner_header, dict) or inner_header.get("kind") != kind:
            raise FormatError(f'header lacks a "skeleton" ({TensorLossless.id} header) of kind {kind!r}')
        if not isinstance(size, int) or isinstance(size, bool) or inner_header.get("original_size") != size:
            raise FormatError(f"bad original_size {size!r} in header")
        inner = Encoded(inner_header, [Section(s.name[len(SKELETON_PREFIX):], s.chunks, s.counts)
                                       for s in encoded.sections if s.name.startswith(SKELETON_PREFIX)])
        item = TensorLossless().decode(inner)  # validates the skeleton and its limits
        try:
            buf = _item_bytes(item)
            if buf.size != size:
                raise FormatError("the skeleton does not match original_size")
            names = {s.name for s in encoded.sections if not s.name.startswith(SKELETON_PREFIX)}
            if names - {"tensors", "tables", "indices", "low"}:
                raise FormatError(f"unexpected sections {sorted(names)}")
            if names:
                self._decode_tensors(encoded, buf, lanes, chunk_size, version)
            return item
        except NctkError:
            raise
        except MemoryError:
            raise LimitError(f"{self.id}: decoding needs more memory than this machine has") from None
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError) as e:
            raise FormatError(f"{self.id}: malformed payload ({type(e).__name__}: {e})") from e

    def _decode_tensors(self, enc: Encoded, buf: np.ndarray, lanes: int, chunk_size: int, version: int) -> None:
        records = _parse_records(enc.section("tensors"), buf.size, version)
        low = _low_bits(enc, records, chunk_size)
        tsec, isec = enc.section("tables"), enc.section("indices")
        if len(tsec.chunks) != 1 or tsec.counts[0] != len(records):
            raise FormatError(f"tables section must be one chunk of {len(records)} tables")
        tables = Tables.from_bytes(tsec.chunks[0])
        if len(tables) != len(records):
            raise FormatError(f"tables section holds {len(tables)} tables for {len(records)} tensors")
        ns = np.array([t.count for t, _ in records], dtype=np.int64)
        total = int(ns.sum())
        counts = [int(c) for c in isec.counts]
        if counts != chunk_counts(total, chunk_size):
            raise FormatError(f"indices section holds {sum(counts)} symbols in {len(counts)} chunks; the tensors "
                              f"need {total} in chunks of {chunk_size}")
        ids = np.arange(len(records), dtype=np.int32)
        r = np.empty(total, dtype=np.int32)
        a = 0
        for c in range(0, len(counts), CODER_BATCH_CHUNKS):
            cnt = counts[c : c + CODER_BATCH_CHUNKS]
            n = sum(cnt)
            r[a : a + n] = decode_chunks(isec.chunks[c : c + CODER_BATCH_CHUNKS], _table_ids(ids, ns, a, n), tables,
                                         cnt, lanes=lanes)
            a += n
        a = 0
        for i, (t, rec) in enumerate(records):
            res = r[a : a + t.count]
            if rec["shift"]:  # residual = high part (coded) * 2**shift + low bits (raw); it fits 31 bits
                res = (res.astype(np.int64) << rec["shift"]) | next(low)
                if res.size and (int(res.min()) < -(1 << 31) or int(res.max()) >= 1 << 31):
                    raise FormatError(f"tensor record {i}: residuals leave 31 bits")
            q = P.reconstruct(res, t.rows, t.cols, rec["pred"], rec["weights"])
            a += t.count
            dst = buf[t.start : t.end].view(Q.uint_dtype(t.scheme, t.order))
            for b in range(0, t.count, Q.BLOCK):  # a block at a time: temporaries stay in cache
                bits = Q.dequantize(q.reshape(-1)[b : b + Q.BLOCK], rec["step"], t.scheme)
                part = dst[b : b + Q.BLOCK]
                np.copyto(part, bits.astype(part.dtype), where=part == 0)  # non-zero skeleton: exceptions, kept


# --------------------------------------------------------------------------------------------- bounds

def bound_spec(quality: float | None, max_error: float | None, rel_error: float | None) -> dict:
    """The one bound given, checked: ``{"max_error": b}``, ``{"rel_error": r}`` or ``{"quality": q}``."""
    given = {k: v for k, v in (("max_error", max_error), ("rel_error", rel_error), ("quality", quality))
             if v is not None}
    if not given:
        raise CodecError(f"{BOUNDED.id} needs an error bound: max_error=B (absolute), rel_error=R (times each "
                         f"tensor's value range) or quality=Q (relative bound 2**-Q, Q in "
                         f"[{QUALITY_MIN:g}, {QUALITY_MAX:g}])")
    if len(given) > 1:
        raise CodecError(f"give one error bound, not {' and '.join(given)}")
    ((key, value),) = given.items()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CodecError(f"{key} must be a number, not {type(value).__name__}")
    value = float(value)
    if key == "quality":
        if not QUALITY_MIN <= value <= QUALITY_MAX:
            raise CodecError(f"quality {value!r} is outside codec {BOUNDED.id!r}'s range "
                             f"[{QUALITY_MIN:g}, {QUALITY_MAX:g}]")
    elif not (math.isfinite(value) and value > 0):
        raise CodecError(f"{key} must be a finite number > 0, not {value!r}")
    return {key: value}


def check_sensitivity(sensitivity: Any) -> dict[str, float]:
    """``{tensor name: sensitivity}`` checked: a non-empty mapping of names to finite numbers >= 0, not all 0."""
    if not isinstance(sensitivity, Mapping) or not sensitivity:
        raise CodecError("sensitivity must be a non-empty mapping of tensor names to numbers")
    out = {}
    for k, v in sensitivity.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise CodecError(f"sensitivity entries are tensor name: number, not {k!r}: {v!r}")
        if not (math.isfinite(float(v)) and float(v) >= 0):
            raise CodecError(f"sensitivity of {k!r} must be a finite number >= 0, not {v!r}")
        out[k] = float(v)
    if not any(out.values()):
        raise CodecError("every sensitivity is 0: there is nothing to allocate by")
    return out


SENSITIVITY_FLOOR = 0.01  # times the median positive sensitivity: unused weights still get a finite bound


def allocate(data: memoryview, tensors: list[_Tensor], bound: dict,
             sensitivity: dict[str, float]) -> tuple[list[_Tensor], list[float]]:
    """The tensors ``sensitivity`` names and each one's absolute bound: ``B * sqrt(n / s) / M``.

    Noise of variance ``v`` in a tensor of ``n`` values costs about ``s * v`` of the model's quality; at a rate of
    ``n * (h - log2 step)`` bits, the steps that cost least for a given size satisfy ``step**2 ∝ n / s``. ``M`` is
    the median of ``sqrt(n / s)`` over the named tensors, so a tensor of median need gets ``B``: ``max_error`` as
    given, or ``rel_error`` (``2**-quality``) times the largest value range among the named tensors.
    Sensitivities below 1% of the median positive one are raised to it. Tensors not named stay exact, and so
    do named ones that are not float tensors of at least 64 values. A name the file lacks is a CodecError.
    """
    (n,) = struct.unpack_from("<Q", data, 0)
    keys = set(json.loads(bytes(data[8 : 8 + n]).decode("utf-8"))) - {"__metadata__"}
    unknown = sorted(set(sensitivity) - keys)
    if unknown:
        raise CodecError(f"sensitivity names {len(unknown)} tensors this file does not have, e.g. "
                         f"{', '.join(map(repr, unknown[:3]))}; its tensors include "
                         f"{', '.join(map(repr, sorted(keys)[:3])) or 'none'}")
    chosen = [t for t in tensors if t.name in sensitivity]  # named integer or tiny tensors stay exact
    if not chosen:
        return [], []
    positive = sorted(v for v in sensitivity.values() if v > 0)
    floor = SENSITIVITY_FLOOR * positive[len(positive) // 2]
    need = [math.sqrt(t.count / max(sensitivity[t.name], floor)) for t in chosen]
    median = sorted(need)[len(need) // 2]
    if "max_error" in bound:
        base = bound["max_error"]
    else:
        ranges = [Q.value_range(np.frombuffer(data, dtype=Q.uint_dtype(t.scheme, t.order), count=t.count,
                                              offset=t.start).astype(Q.uint_dtype(t.scheme)), t.scheme)
                  for t in chosen]
        base = _relative(bound) * max(ranges)
    limit = float(np.finfo(np.float64).max)
    return chosen, [min(base * n / median, limit) if base > 0 else base for n in need]


def _digest(sensitivity: dict[str, float]) -> str:
    """SHA-256 of the sensitivities as canonical JSON (sorted keys): which allocation made a file."""
    import hashlib

    return hashlib.sha256(json.dumps(sensitivity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _relative(bound: dict) -> float:
    """The relative bound of a ``rel_error`` or ``quality`` spec: quality q means 2**-q."""
    return bound["rel_error"] if "rel_error" in bound else 2.0 ** -bound["quality"]


def _dtype_error(name: str) -> str:
    return (f"{BOUNDED.id} codes float tensors (float16, bfloat16, float32, float64), not {name}; "
            f"use codec={LOSSLESS.id!r} to store it exactly")


# ---------------------------------------------------------------------------------- what to code lossy

def _value_tensors(item: Any) -> tuple[np.ndarray, list[_Tensor]]:
    """The item's bytes and every float tensor in them, however small: what rate control measures."""
    if isinstance(item, (bytes, bytearray, memoryview, mmap.mmap)):
        item = FileItem(item, None)
    if isinstance(item, FileItem):
        data = byte_view(item.data)
        if formats.is_npy(data):
            tensors = _npy_tensors(data, 1)
        elif formats.is_safetensors(data):
            tensors = _safetensors_tensors(data, 1)
        else:
            raise CodecError(f"{item.name or 'the input'!r} is neither an .npy nor a .safetensors file")
        return np.frombuffer(data, dtype=np.uint8), tensors
    if formats.is_torch_tensor(item):
        raw, _, order, meta = formats.tensor_bytes(item)
        scheme = _TORCH_FLOATS.get(str(item.dtype).removeprefix("torch."))
    else:
        raw, scheme, order, meta = formats.array_bytes(item)
    if scheme not in _UNIT:
        raise CodecError(_dtype_error(str(getattr(item, "dtype", type(item).__name__))))
    rows, cols = _matrix(meta["shape"])
    return np.frombuffer(raw, dtype=np.uint8), [_Tensor(0, scheme, order, rows, cols)] if rows * cols else []


def _matrix(shape) -> tuple[int, int]:
    """``(rows, cols)``: the last axis is ``cols``, all others are flattened into rows (0-d: 1 x 1)."""
    cols = int(shape[-1]) if len(shape) else 1
    return (math.prod(int(d) for d in shape) // cols if cols else 0), cols


def _npy_tensors(data: memoryview, min_elements: int = MIN_ELEMENTS) -> list[_Tensor]:
    segs, info = formats.parse_npy(data)
    dt = np.dtype(info["dtype"]) if info["dtype"] != "structured" else None
    if dt is None or dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise CodecError(_dtype_error(f"the .npy file's {info['dtype']}"))
    shape = info["shape"][::-1] if info["fortran_order"] else info["shape"]
    rows, cols = _matrix(shape)
    typed = [s for s in segs if s.scheme]
    if rows * cols and (not typed or typed[0].size != rows * cols * dt.itemsize):
        raise CodecError("truncated .npy file: its data is shorter than its shape says")
    if rows * cols < max(min_elements, 1):
        return []
    order = typed[0].order
    return [_Tensor(typed[0].start, typed[0].scheme, order, rows, cols)]


def _safetensors_tensors(data: memoryview, min_elements: int = MIN_ELEMENTS) -> list[_Tensor]:
    """The float tensors of a safetensors file that are coded lossy: well-formed entries (dtype F16, BF16, F32
    or F64, data size = shape), not overlapping another, of at least ``min_elements`` elements."""
    formats.parse_safetensors(data)  # validates the file
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(bytes(data[8 : 8 + n]).decode("utf-8"))
    found = []
    for key, entry in header.items():
        if key == "__metadata__" or not isinstance(entry, dict):
            continue
        sch = _SAFETENSORS_FLOATS.get(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
        offs, shape = entry.get("data_offsets"), entry.get("shape")
        if (sch is None or type(offs) is not list or len(offs) != 2 or not all(type(v) is int for v in offs)
                or type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape)):
            continue
        rows, cols = _matrix(shape)
        begin, end = 8 + n + offs[0], 8 + n + offs[1]
        if 8 + n <= begin and end <= len(data) and end - begin == rows * cols * _UNIT[sch]:
            found.append((begin, end, _Tensor(begin, sch, "<", rows, cols, key)))
    out, pos = [], 0
    for begin, end, t in sorted(found):
        if begin >= pos and t.count >= max(min_elements, 1):  # overlapping or tiny tensors stay exact
            out.append(t)
            pos = end
    return out


# -------------------------------------------------------------------------------- predictor, table

def _choose_predictor(q: np.ndarray) -> tuple[str, P.Weights | None, np.ndarray]:
    """The predictor with the smallest estimated coded size, its weights and the residuals. Tensors over
    SAMPLE elements decide on a central block (the choice is the encoder's; any choice decodes)."""
    rows, cols = q.shape
    small = q.size <= SAMPLE
    if small:
        block = q
    else:
        k = min(rows, max(1, SAMPLE // cols))
        w = min(cols, SAMPLE)
        r0, c0 = (rows - k) // 2, (cols - w) // 2
        block = q[r0 : r0 + k, c0 : c0 + w]
    cost = {}
    for kind in P.PREDICTORS:  # "interp" first without weights: a cheap test for any spatial correlation
        r = P.residuals(block, kind)
        cost[kind] = (_table_plan(r)[3], kind, None, r)
    if min(cost["lorenzo"][0], cost["interp"][0]) < cost["none"][0]:  # correlated: worth fitting weights
        weights = P.fit_interp(block)
        r = P.residuals(block, "interp", weights)
        cost["interp"] = min(cost["interp"], (_table_plan(r)[3], "interp", weights, r), key=lambda c: c[0])
    _, kind, weights, r = min(cost.values(), key=lambda c: c[0])
    if not small:
        weights = P.fit_interp(q) if kind == "interp" else None
        r = P.residuals(q, kind, weights)
    return kind, weights, r


def _choose_shift(r: np.ndarray) -> int:
    """How many low bits of the residuals to store raw: the count with the smallest estimated size (table
    plan of the high part plus raw bits), on a strided sample. Tight bounds spread residuals over far more
    values than a table can weigh (16-bit frequencies), and their low bits are incompressible anyway."""
    if r.size < MIN_ELEMENTS:
        return 0
    sample = r[:: max(1, r.size // SHIFT_SAMPLE)]
    spread = int(sample.max()) - int(sample.min())
    best, best_bits = 0, _table_plan(sample)[3]
    for s in range(1, min(MAX_SHIFT, max(0, spread.bit_length() - 4)) + 1):
        bits = _table_plan(sample >> np.int32(s))[3] + s * sample.size
        if bits < best_bits:
            best, best_bits = s, bits
    return best


def _histogram(r: np.ndarray) -> tuple[int, np.ndarray, int]:
    """``(base, counts, outside)``: counts of the values ``base, base + 1, ...``, and how many values fell
    outside the window (at most 2 * HIST_HALF values, centred on the median when the spread is wider)."""
    lo, hi = int(r.min()), int(r.max())
    if hi - lo < 2 * HIST_HALF:
        return lo, np.bincount(r.astype(np.int64) - lo), 0
    mid = int(np.median(r[:: max(1, r.size // 65536)]))
    lo = mid - HIST_HALF
    inside = (r >= lo) & (r < mid + HIST_HALF)
    return lo, np.bincount(r[inside].astype(np.int64) - lo, minlength=2 * HIST_HALF), int(r.size - inside.sum())


def _table_plan(r: np.ndarray) -> tuple[int, np.ndarray, int, float]:
    """``(offset, counts, escapes, estimated bits)`` of the table for residuals ``r``: the range of values it
    holds is the cheapest of a few tail cut-offs (table bytes + coded bits + escaped values' raw bits)."""
    if not r.size:
        return 0, np.ones(1, np.int64), 0, 0.0
    base, h, outside = _histogram(r)
    n = r.size
    hf = h.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(h > 0, hf * np.log2(n / hf), 0.0)
    mode = int(np.argmax(h))
    esc_raw = hf * (7.0 + np.log2(1.0 + np.abs(np.arange(len(h)) - mode)))  # 6-bit length + payload bits
    cum = np.concatenate(([0], np.cumsum(h)))
    c_own = np.concatenate(([0.0], np.cumsum(own)))
    c_esc = np.concatenate(([0.0], np.cumsum(esc_raw)))
    total = int(cum[-1])
    fracs = (0.0, 2.0**-20, 2.0**-16, 2.0**-13, 2.0**-10, 2.0**-7)
    lefts = {int(np.searchsorted(cum[1:], f * n, side="right")) for f in fracs}
    rights = {int(np.searchsorted(cum[1:], total - f * n, side="left")) for f in fracs}
    pairs = [(a, b) for a in lefts for b in rights if a <= b < len(h) and b - a < MAX_SPAN]
    if not pairs:  # wider than one table can be: the densest window around the mode
        a = max(0, min(mode - MAX_SPAN // 2, len(h) - MAX_SPAN))
        pairs = [(a, min(len(h), a + MAX_SPAN) - 1)]
    best = None
    for a, b in pairs:
        esc = int(cum[a] + total - cum[b + 1]) + outside
        bits = (c_own[b + 1] - c_own[a] + 8.0 * (b - a + 11) + c_esc[a] + c_esc[-1] - c_esc[b + 1]
                + outside * 28.0 + (esc * math.log2(n / esc) if esc else 0.0))
        if best is None or bits < best[3]:
            best = (base + a, h[a : b + 1], esc, bits)
    return best


def _exception_bits(k: int, n: int, scheme: str) -> float:
    """Estimated skeleton bits for ``k`` exceptions among ``n`` elements: their raw bits, plus in each of the
    lossless codec's fields (about one per byte) the cost of telling the non-zero elements apart."""
    if not k:
        return 0.0
    p = k / n
    h = -(p * math.log2(p) + (1 - p) * math.log2(1 - p)) if k < n else 0.0
    return k * 8.0 * _UNIT[scheme] + n * h * (_UNIT[scheme] + 1)


def _exact_bits(bits: np.ndarray, scheme: str) -> float:
    """Estimated bits of the tensor stored exactly: order-0 entropy of each element's top 16 bits (sign,
    exponent, top mantissa: what the lossless codec's tables see) plus the lower bits raw."""
    low = 8 * _UNIT[scheme] - 16
    h = np.bincount((bits >> low).astype(np.int64) if low else bits.astype(np.int64), minlength=1 << 16)
    h = h[h > 0].astype(np.float64)
    return float((h * np.log2(bits.size / h)).sum()) + bits.size * low


def _precision(alphabet: int, n: int) -> int:
    """Table precision: enough for the alphabet (escape included) and for the empirical probabilities of n
    symbols, within what the entropy layer allows."""
    return max(PRECISION_MIN, alphabet.bit_length(), min(PRECISION_MAX, n.bit_length() + 1))


# ---------------------------------------------------------------------------------------- decode helpers

def _item_bytes(item: Any) -> np.ndarray:
    """A writable uint8 view of a decoded skeleton's memory (file bytes, or the array's elements in order)."""
    if isinstance(item, FileItem):
        return np.frombuffer(item.data, dtype=np.uint8)
    if isinstance(item, np.ndarray):
        return item.reshape(-1, order="A").view(np.uint8) if item.size else np.empty(0, np.uint8)
    import torch

    return item.reshape(-1).view(torch.uint8).numpy() if item.numel() else np.empty(0, np.uint8)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _low_bits(enc: Encoded, records: list[tuple[_Tensor, dict]], chunk_size: int) -> Iterator[np.ndarray]:
    """The raw low bits of each record with a shift, in record order (the chunk layout validated first)."""
    shifted = [(t, rec["shift"]) for t, rec in records if rec["shift"]]
    if not shifted:
        if any(s.name == "low" for s in enc.sections):
            raise FormatError("low section present but no record has a shift")
        return iter(())
    sec = enc.section("low")
    layout = [chunk_counts(t.count, chunk_size) for t, _ in shifted]
    if [int(c) for c in sec.counts] != [n for counts in layout for n in counts]:
        raise FormatError(f"low section holds chunks of {list(sec.counts)[:8]} values; the records need "
                          f"{[n for counts in layout for n in counts][:8]}")

    def parts() -> Iterator[np.ndarray]:
        i = 0
        for (_, s), counts in zip(shifted, layout, strict=True):
            yield np.concatenate([fields.unpack(sec.chunks[i + k], n, s).astype(np.int64)
                                  for k, n in enumerate(counts)]) if counts else np.zeros(0, np.int64)
            i += len(counts)
    return parts()


def _parse_records(sec: Section, size: int, version: int = 1) -> list[tuple[_Tensor, dict]]:
    """The ``tensors`` section's records, validated against an item of ``size`` bytes (``shift``: version 2)."""
    if len(sec.chunks) != 1 or len(sec.chunks[0]) > MAX_RECORDS_BYTES:
        raise FormatError("tensors section must be one chunk of at most 64 MiB")
    try:
        obj = json.loads(bytes(sec.chunks[0]).decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FormatError(f"tensors section is not valid JSON ({e})") from None
    recs = obj.get("tensors") if isinstance(obj, dict) else None
    if not isinstance(recs, list) or not recs or sec.counts[0] != len(recs):
        raise FormatError('tensors section lacks a non-empty "tensors" list matching its count')
    out = []
    pos = 0
    for rec in recs:
        if not isinstance(rec, dict):
            raise FormatError("bad tensor record")
        start, sch, order, rows, cols = (rec.get(k) for k in ("start", "scheme", "order", "rows", "cols"))
        if (not all(_is_int(v) for v in (start, rows, cols)) or sch not in Q.SCHEMES or order not in ("<", ">")
                or rows < 1 or cols < 1 or start < pos):
            raise FormatError(f"bad tensor record {str(rec)[:120]}")
        t = _Tensor(start, sch, order, rows, cols)
        if t.end > size:
            raise FormatError(f"tensor record {str(rec)[:80]} reaches past the item's {size} bytes")
        try:
            step = float.fromhex(rec.get("step")) if isinstance(rec.get("step"), str) else math.nan
        except (ValueError, OverflowError):
            step = math.nan
        if not Q.STEP_MIN <= step <= Q.STEP_MAX:
            raise FormatError(f"bad quantiser step {str(rec.get('step'))[:40]!r}")
        pred = rec.get("pred")
        if pred not in P.PREDICTORS:
            raise FormatError(f"unknown predictor {str(pred)[:40]!r}")
        if version >= 2:  # version 2 records all carry a shift; version 1 records have none
            shift = rec.get("shift")
            if not _is_int(shift) or not 0 <= shift <= MAX_SHIFT:
                raise FormatError(f"bad shift {str(shift)[:40]!r} (an integer 0..{MAX_SHIFT})")
        elif "shift" in rec:
            raise FormatError("a version 1 record has no shift")
        else:
            shift = 0
        rec = {"pred": pred, "step": step, "shift": shift,
               "weights": P.check_weights(rec.get("weights"), rows, cols) if pred == "interp" else None}
        out.append((t, rec))
        pos = t.end
    return out


__all__ = ["TensorBounded", "bound_spec"]
