"""Tensor containers the lossless codec understands: ``.npy``, ``.safetensors``, numpy arrays, torch tensors.

Files are cut into :class:`Segment` s that cover every byte exactly once, in order: *raw* segments
(headers, padding, gaps, anything unrecognised) are kept verbatim, *typed* segments are tensor data
with the :mod:`~codec.tensor.fields` scheme that splits them. Concatenating the segments' bytes gives
back the file, so restoration is exact whatever the layout.

Nothing here unpickles: ``.npy`` headers are read with :func:`ast.literal_eval`, object dtypes refused.
"""

from __future__ import annotations

import ast
import json
import math
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from nctk.codec.tensor.fields import SCHEMES
from nctk.entropy.errors import CodecError, FormatError

NPY_MAGIC = b"\x93NUMPY"
SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit
# Tensors smaller than this stay raw: coding one costs a layout entry (~30-50 bytes of JSON) and per-field
# planning, more than it can save, and a file of a million 4-byte tensors must not cost a million of each.
MIN_TYPED_BYTES = 128
NATIVE = "<" if sys.byteorder == "little" else ">"

# safetensors dtype name -> scheme (complex = pairs of floats; unknown names are coded as bytes).
SAFETENSORS_SCHEMES = {
    "BOOL": "x1", "U8": "x1", "I8": "x1", "F8_E5M2": "x1", "F8_E4M3": "x1", "F8_E8M0": "x1",
    "I16": "x2", "U16": "x2", "F16": "f16", "BF16": "bf16",
    "I32": "x4", "U32": "x4", "F32": "f32", "C64": "f32",
    "I64": "x8", "U64": "x8", "F64": "f64",
}

# torch dtype name -> scheme for the dtypes that are not plain byte planes.
TORCH_SCHEMES = {
    "float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
    "complex32": "f16", "complex64": "f32", "complex128": "f64",
}


@dataclass(frozen=True)
class Segment:
    """Bytes ``[start, end)`` of a file: raw (``scheme`` None) or elements of ``scheme`` in ``order``."""

    start: int
    end: int
    scheme: str | None = None
    order: str = "|"

    @property
    def size(self) -> int:
        return self.end - self.start


def _byteorder(dt: np.dtype) -> str:
    bo = dt.byteorder
    return NATIVE if bo == "=" else bo


def numpy_scheme(dt: np.dtype) -> tuple[str, str]:
    """``(scheme, byte order)`` for elements of numpy dtype ``dt`` (not an object dtype)."""
    size = dt.itemsize
    if dt.fields is None and dt.subdtype is None:
        if dt.kind == "f" and size in (2, 4, 8):
            return {2: "f16", 4: "f32", 8: "f64"}[size], _byteorder(dt)
        if dt.kind == "c" and size in (8, 16):
            return {8: "f32", 16: "f64"}[size], _byteorder(dt)
        if dt.kind in "biufmM" and 1 < size <= 16:
            return f"x{size}", _byteorder(dt)
        if dt.kind == "U":
            return "x4", _byteorder(dt)
    return "x1", "|"


def typed_segments(start: int, end: int, scheme_name: str, order: str) -> list[Segment]:
    """A typed segment for ``[start, end)``, with any tail that is not a whole element kept raw."""
    if end <= start:
        return []
    unit = SCHEMES[scheme_name].unit
    whole = start + (end - start) // unit * unit
    out = [Segment(start, whole, scheme_name, order)] if whole > start else []
    if whole < end:
        out.append(Segment(whole, end))
    return out


def _coalesce(segments: list[Segment], total: int) -> list[Segment]:
    """Merge adjacent raw segments; check the segments tile ``[0, total)``."""
    out: list[Segment] = []
    pos = 0
    for s in segments:
        assert s.start == pos and s.end >= s.start, "segments must tile the file"
        pos = s.end
        if s.size == 0:
            continue
        if s.scheme is None and out and out[-1].scheme is None:
            out[-1] = Segment(out[-1].start, s.end)
        else:
            out.append(s)
    assert pos == total, "segments must tile the file"
    return out


# ------------------------------------------------------------------------------------------------ npy

def is_npy(prefix: bytes) -> bool:
    return bytes(prefix[:6]) == NPY_MAGIC


def parse_npy(data: bytes | memoryview) -> tuple[list[Segment], dict]:
    """Segments of an ``.npy`` file (header raw, data typed) and a summary for the file header."""
    mv = memoryview(data)
    if not is_npy(mv):
        raise CodecError("not an .npy file (it does not start with \\x93NUMPY)")
    if len(mv) < 10:
        raise CodecError("truncated .npy file: the header is incomplete")
    major = mv[6]
    if major == 1:
        (hlen,), hstart = struct.unpack_from("<H", mv, 8), 10
    elif major in (2, 3):
        if len(mv) < 12:
            raise CodecError("truncated .npy file: the header is incomplete")
        (hlen,), hstart = struct.unpack_from("<I", mv, 8), 12
    else:
        raise CodecError(f".npy format version {major}.{mv[7]} is not supported (1.0, 2.0 and 3.0 are)")
    if hstart + hlen > len(mv):
        raise CodecError("truncated .npy file: the header is incomplete")
    try:
        text = bytes(mv[hstart : hstart + hlen]).decode("utf-8" if major == 3 else "latin1")
        meta = ast.literal_eval(text)
        descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
        dtype = np.lib.format.descr_to_dtype(descr)
    except Exception as e:  # any malformed header is the same user error
        raise CodecError(f"not a valid .npy file: cannot read its header ({e})") from None
    if dtype.hasobject:
        raise CodecError(".npy file holds Python objects (object dtype, stored with pickle); nctk "
                         "compresses numeric data only: save it with a numeric dtype")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CodecError(f"not a valid .npy file: bad shape {shape!r}")
    start = hstart + hlen
    nbytes = math.prod(shape) * dtype.itemsize
    end = min(len(mv), start + nbytes)
    sch, order = numpy_scheme(dtype)
    segs = [Segment(0, start), *typed_segments(start, end, sch, order), Segment(end, len(mv))]
    info = {"dtype": dtype.str if dtype.fields is None else "structured", "shape": list(shape),
            "fortran_order": bool(fortran)}
    return _coalesce(segs, len(mv)), info


# ---------------------------------------------------------------------------------------- safetensors

def is_safetensors(prefix: bytes) -> bool:
    if len(prefix) < 9:
        return False
    (n,) = struct.unpack_from("<Q", prefix, 0)
    return 2 <= n <= SAFETENSORS_MAX_HEADER and bytes(prefix[8:9]) == b"{"


def parse_safetensors(data: bytes | memoryview) -> tuple[list[Segment], dict]:
    """Segments of a ``.safetensors`` file: the 8-byte length and JSON header raw, each tensor's data
    typed, gaps and overlaps raw. Returns the segments and a summary for the file header."""
    mv = memoryview(data)
    if len(mv) < 8:
        raise CodecError("not a valid .safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack_from("<Q", mv, 0)
    if n > min(SAFETENSORS_MAX_HEADER, len(mv) - 8):
        raise CodecError(f"not a valid .safetensors file: header length {n} exceeds the file")
    try:
        header = json.loads(bytes(mv[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CodecError(f"not a valid .safetensors file: its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise CodecError("not a valid .safetensors file: its header is not a JSON object")
    body = 8 + n
    size = len(mv) - body
    tensors = []
    for key, entry in header.items():
        if key == "__metadata__" or not isinstance(entry, dict):
            continue
        offs = entry.get("data_offsets")
        if type(offs) is not list or len(offs) != 2:
            continue  # malformed entry: its bytes simply stay raw
        begin, end = offs
        if type(begin) is not int or type(end) is not int or not 0 <= begin <= end <= size:
            continue
        dtype = entry.get("dtype")
        scheme = SAFETENSORS_SCHEMES.get(dtype, "x1") if isinstance(dtype, str) else "x1"
        tensors.append((body + begin, body + end, scheme))
    tensors.sort()
    segs = []
    raw_from = pos = body  # raw bytes from raw_from on (header, gaps, small tensors) are not in segs yet
    dtypes: dict[str, int] = {}
    for begin, end, scheme in tensors:
        if begin < pos or begin == end:
            continue  # overlaps an earlier tensor (or is empty): covered raw or by that tensor
        dtypes[scheme] = dtypes.get(scheme, 0) + 1
        pos = end
        if end - begin < MIN_TYPED_BYTES:
            continue
        typed = typed_segments(begin, end, scheme, "<" if scheme != "x1" else "|")[0]
        segs += [Segment(raw_from, begin), typed]
        raw_from = typed.end  # a tail that is not a whole element stays raw
    segs = [Segment(0, body), *segs, Segment(raw_from, len(mv))]
    info = {"tensors": len(header) - ("__metadata__" in header), "schemes": dtypes}
    return _coalesce(segs, len(mv)), info


# ---------------------------------------------------------------------------------- arrays and tensors

def is_torch_tensor(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _dtype_to_json(dt: np.dtype) -> Any:
    if dt.fields is None and dt.subdtype is None:
        return dt.str
    try:
        descr = np.lib.format.dtype_to_descr(dt)
    except ValueError:  # numpy has no description for overlapping or out-of-order fields
        raise CodecError(f"cannot store structured dtype {dt}: its fields overlap or are out of order; "
                         "copy it to a packed dtype first (numpy.lib.recfunctions.repack_fields)") from None
    return json.loads(json.dumps(descr))


def _tuplify(descr: Any) -> Any:
    if isinstance(descr, str):
        return descr
    if not isinstance(descr, list):
        raise FormatError("bad dtype description in header")
    out = []
    for f in descr:
        if not isinstance(f, list) or not 2 <= len(f) <= 3:
            raise FormatError("bad dtype description in header")
        name = tuple(f[0]) if isinstance(f[0], list) else f[0]
        item = [name, _tuplify(f[1])]
        if len(f) == 3:
            item.append(tuple(f[2]))
        out.append(tuple(item))
    return out


def dtype_from_json(value: Any) -> np.dtype:
    """The numpy dtype :func:`array_bytes` recorded; :class:`FormatError` if unreadable or object."""
    try:
        dt = np.dtype(value) if isinstance(value, str) else np.lib.format.descr_to_dtype(_tuplify(value))
    except FormatError:
        raise
    except Exception as e:  # any unreadable description is a bad file
        raise FormatError(f"bad dtype {str(value)[:80]!r} in header ({e})") from None
    if dt.hasobject:
        raise FormatError("header names an object dtype, which nctk never writes")
    return dt


def _aligned(dt: np.dtype) -> bool:
    """True if ``dt`` or a structured dtype nested in it was made with ``align=True``."""
    if dt.subdtype is not None:
        return _aligned(dt.subdtype[0])
    return dt.fields is not None and (dt.isalignedstruct or any(_aligned(f[0]) for f in dt.fields.values()))


def array_bytes(arr: np.ndarray) -> tuple[memoryview, str, str, dict]:
    """``(bytes, scheme, order, meta)`` of a numpy array; ``meta`` restores dtype, shape, memory order.

    Only what comes back exactly is taken: a plain ``np.ndarray`` (any dtype but object, structured
    dtypes without ``align=True``); anything else is a :class:`CodecError` saying what to pass instead.
    """
    if isinstance(arr, np.ma.MaskedArray):
        raise CodecError("masked arrays are not supported (the mask would be lost): compress .data and "
                         ".mask separately")
    if isinstance(arr, np.generic):
        raise CodecError(f"numpy scalars ({type(arr).__name__}) are not supported (they would come back as "
                         "0-d arrays): pass np.asarray(x)")
    if type(arr) is not np.ndarray:
        raise CodecError(f"{type(arr).__module__}.{type(arr).__name__} is a numpy array subclass, which would "
                         "come back as a plain np.ndarray: pass np.asarray(x)")
    if arr.dtype.hasobject:
        raise CodecError("numpy arrays of Python objects (object dtype) cannot be compressed; "
                         "convert them to a numeric dtype")
    if _aligned(arr.dtype):
        raise CodecError(f"structured dtype {arr.dtype} was made with align=True, a flag nctk cannot store: "
                         "view the array as the same fields, offsets and itemsize without align=True")
    fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
    buf = np.asfortranarray(arr) if fortran else np.ascontiguousarray(arr)
    flat = buf.reshape(-1, order="F" if fortran else "C")
    raw = memoryview(flat.view(np.uint8)) if arr.dtype.itemsize and flat.size else memoryview(b"")
    sch, order = numpy_scheme(arr.dtype)
    meta = {"dtype": _dtype_to_json(arr.dtype), "shape": list(arr.shape), "order": "F" if fortran else "C"}
    return raw, sch, order, meta


def array_from_bytes(raw: bytes | bytearray, meta: dict) -> np.ndarray:
    """The numpy array :func:`array_bytes` described (writable; shares ``raw`` if it is a bytearray)."""
    dt = dtype_from_json(meta.get("dtype"))
    shape = _shape(meta.get("shape"))
    order = meta.get("order", "C")
    if order not in ("C", "F"):
        raise FormatError(f"bad memory order {order!r} in header")
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise FormatError("decoded data does not match the array's dtype and shape")
    if not raw:
        return np.zeros(shape, dtype=dt, order=order)
    buf = raw if isinstance(raw, bytearray) else bytearray(raw)
    return np.frombuffer(buf, dtype=dt).reshape(shape, order=order)


def tensor_bytes(t: Any) -> tuple[memoryview, str, str, dict]:
    """``(bytes, scheme, order, meta)`` of a torch tensor (any device, layout-strided, any dtype)."""
    import torch

    if t.layout != torch.strided or t.is_nested:
        raise CodecError(f"torch tensors with layout {t.layout}{' (nested)' if t.is_nested else ''} are not "
                         "supported; use .to_dense() or .unbind()")
    if t.device.type == "meta":
        raise CodecError("meta tensors hold no data to compress")
    if t.is_quantized:
        raise CodecError("quantized torch tensors are not supported; use .dequantize() or .int_repr()")
    if isinstance(t, torch.nn.Parameter) or t.requires_grad:
        raise CodecError("tensors that require grad (and nn.Parameter) come back as plain tensors without "
                         "autograd: pass t.detach()")
    if type(t) is not torch.Tensor:
        raise CodecError(f"{type(t).__name__} is a torch.Tensor subclass, which would come back as a plain "
                         "tensor: pass a plain torch.Tensor")
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.dim())
    if fmt is not None and not t.is_contiguous() and t.is_contiguous(memory_format=fmt):
        raise CodecError(f"tensors in {str(fmt).removeprefix('torch.')} memory format would come back "
                         "contiguous: pass t.contiguous() and restore the format with .to(memory_format=...)")
    name = str(t.dtype).removeprefix("torch.")
    c = t.cpu()
    if c.is_conj():
        c = c.resolve_conj()
    if c.is_neg():
        c = c.resolve_neg()
    c = c.contiguous()
    size = c.element_size()
    if c.numel() == 0:
        raw = memoryview(b"")
    else:
        raw = memoryview(c.reshape(-1).view(torch.uint8).numpy())
    sch = TORCH_SCHEMES.get(name) or (f"x{size}" if 1 <= size <= 16 else "x1")
    order = NATIVE if sch != "x1" else "|"
    return raw, sch, order, {"dtype": name, "shape": list(c.shape)}


def tensor_from_bytes(raw: bytes | bytearray, meta: dict) -> Any:
    """The CPU torch tensor :func:`tensor_bytes` described."""
    import torch

    name = meta.get("dtype")
    dt = getattr(torch, name, None) if isinstance(name, str) and name.isidentifier() else None
    if not isinstance(dt, torch.dtype):
        raise FormatError(f"header names an unknown torch dtype {name!r}")
    shape = _shape(meta.get("shape"))
    elem = torch.empty((), dtype=dt).element_size()
    if len(raw) != math.prod(shape) * elem:
        raise FormatError("decoded data does not match the tensor's dtype and shape")
    if not raw:
        return torch.empty(shape, dtype=dt)
    buf = raw if isinstance(raw, bytearray) else bytearray(raw)
    return torch.frombuffer(buf, dtype=torch.uint8).view(dt).reshape(shape)


def _shape(value: Any) -> tuple[int, ...]:
    if (not isinstance(value, list) or len(value) > 64
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)):
        raise FormatError(f"bad shape {str(value)[:80]!r} in header")
    return tuple(value)
