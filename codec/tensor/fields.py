"""Splitting tensor elements into small symbol fields, and back, bit for bit.

A *scheme* says how the bytes of one element become symbols (each field one symbol stream):

- ``f16``, ``bf16``, ``f32``, ``f64``: IEEE-style floats. Field ``e`` is the biased exponent (5/8/8/11
  bits). The sign and the mantissa are joined into one value ``sign << mbits | mantissa`` that is cut,
  from the top, into planes ``m0, m1, ...`` of at most 8 bits (f32: 8+8+8, f16: 8+3, bf16: 8,
  f64: 6x8+5). ``m0`` therefore holds the sign and the highest mantissa bits.
- ``x1`` .. ``x16``: ``k``-byte elements (integers, bool, fp8, anything else) as byte planes
  ``b0 .. b{k-1}``, ``b0`` the least significant byte of the value.

Element bytes are read in the byte order of their dtype (``"<"``, ``">"``, or ``"|"`` = as stored), so a
big-endian float splits into the same fields as its little-endian twin. Every function here is
vectorised; :func:`split_reference` / :func:`merge_reference` are the plain-Python definitions that
tests hold the fast versions to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nctk.entropy.errors import CodecError, FormatError

ORDERS = ("<", ">", "|")


@dataclass(frozen=True)
class Scheme:
    """How one element of ``unit`` bytes is cut into fields (names and bit widths, in order)."""

    name: str
    unit: int  # bytes per element
    ebits: int  # exponent bits (0 for byte-plane schemes)
    mbits: int  # mantissa bits
    fields: tuple[tuple[str, int, int], ...]  # (field name, bits, shift within sign+mantissa value)

    @property
    def is_float(self) -> bool:
        return self.ebits > 0


def _float_scheme(name: str, unit: int, ebits: int, mbits: int) -> Scheme:
    fields = [("e", ebits, 0)]
    top, j = 1 + mbits, 0
    while top > 0:
        bits = min(8, top)
        fields.append((f"m{j}", bits, top - bits))
        top -= bits
        j += 1
    return Scheme(name, unit, ebits, mbits, tuple(fields))


def _byte_scheme(unit: int) -> Scheme:
    return Scheme(f"x{unit}", unit, 0, 0, tuple((f"b{j}", 8, 8 * j) for j in range(unit)))


SCHEMES: dict[str, Scheme] = {
    "f16": _float_scheme("f16", 2, 5, 10),
    "bf16": _float_scheme("bf16", 2, 8, 7),
    "f32": _float_scheme("f32", 4, 8, 23),
    "f64": _float_scheme("f64", 8, 11, 52),
    **{f"x{k}": _byte_scheme(k) for k in range(1, 17)},
}


def scheme(name: str) -> Scheme:
    """The scheme called ``name``; :class:`FormatError` for an unknown one (it came from a file)."""
    try:
        return SCHEMES[name]
    except (KeyError, TypeError):
        raise FormatError(f"unknown element scheme {name!r}") from None


def _uint(unit: int, order: str) -> np.dtype:
    return np.dtype(f"{'<' if order == '|' else order}u{unit}")


def _bytes_of(data: bytes | memoryview | np.ndarray, unit: int) -> np.ndarray:
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    if len(buf) % unit:
        raise CodecError(f"{len(buf)} bytes are not a whole number of {unit}-byte elements")
    return buf


def field(data: bytes | memoryview | np.ndarray, sch: Scheme, order: str, j: int) -> np.ndarray:
    """Field ``j`` of the ``len(data) // sch.unit`` elements in ``data`` (uint8, or uint16 for 11-bit f64
    exponents). For one-byte elements this is a view of ``data``, not a copy."""
    buf = _bytes_of(data, sch.unit)
    if not sch.is_float:
        return np.ascontiguousarray(buf.reshape(-1, sch.unit)[:, sch.unit - 1 - j if order == ">" else j])
    u = buf.view(_uint(sch.unit, order))
    if order == ">":
        u = u.astype(_uint(sch.unit, "<"))
    ut = u.dtype.type
    _, bits, shift = sch.fields[j]
    if j == 0:
        return ((u >> ut(sch.mbits)) & ut((1 << bits) - 1)).astype(np.uint16 if bits > 8 else np.uint8)
    sm = ((u >> ut(8 * sch.unit - 1)) << ut(sch.mbits)) | (u & ut((1 << sch.mbits) - 1))
    return ((sm >> ut(shift)) & ut((1 << bits) - 1)).astype(np.uint8)


def split(data: bytes | memoryview | np.ndarray, sch: Scheme, order: str) -> list[np.ndarray]:
    """Cut ``len(data) // sch.unit`` elements into their field arrays (:func:`field` for each field).
    ``data`` must hold a whole number of elements."""
    return [field(data, sch, order, j) for j in range(len(sch.fields))]


def merge_into(out: np.ndarray, values: np.ndarray | int, sch: Scheme, order: str, j: int) -> None:
    """Put field ``j`` of elements into ``out`` (their bytes, a writable uint8 array in byte order
    ``order``): ``values`` holds one symbol per element, or is one int for all of them. Fields own
    disjoint bits, so merging every field into zeroed bytes gives the elements (:func:`merge`)."""
    if not sch.is_float:
        out.reshape(-1, sch.unit)[:, sch.unit - 1 - j if order == ">" else j] = values
        return
    udt = _uint(sch.unit, "<")
    ut = udt.type
    width = 8 * sch.unit
    _, bits, shift = sch.fields[j]
    if np.ndim(values) == 0:  # a constant: its bits once, in Python integers
        v = int(values) << (sch.mbits if j == 0 else shift)
        if j and shift + bits > sch.mbits:  # this plane holds the sign (bit mbits of sign+mantissa)
            v = (v & ((1 << sch.mbits) - 1)) | (v >> sch.mbits << (width - 1))
        t: np.ndarray | np.integer = ut(v)
    else:
        t = np.asarray(values).astype(udt)
        t <<= ut(sch.mbits if j == 0 else shift)
        if j and shift + bits > sch.mbits:
            sign = t >> ut(sch.mbits)
            sign <<= ut(width - 1)
            t &= ut((1 << sch.mbits) - 1)
            t |= sign
    u = out.view(_uint(sch.unit, order))
    np.bitwise_or(u, t, out=u)


def merge(fields: list[np.ndarray], sch: Scheme, order: str) -> bytes:
    """Inverse of :func:`split`: the element bytes, in byte order ``order``."""
    if len(fields) != len(sch.fields):
        raise FormatError(f"scheme {sch.name} needs {len(sch.fields)} fields, got {len(fields)}")
    n = len(fields[0])
    if any(len(f) != n for f in fields):
        raise FormatError("field streams of one tensor differ in length")
    out = np.zeros(n * sch.unit, dtype=np.uint8)
    for j, f in enumerate(fields):
        merge_into(out, f, sch, order, j)
    return out.tobytes()


def split_reference(data: bytes, sch: Scheme, order: str) -> list[list[int]]:
    """Plain-Python definition of :func:`split` (one element at a time)."""
    out: list[list[int]] = [[] for _ in sch.fields]
    byteorder = "big" if order == ">" else "little"
    for i in range(0, len(data), sch.unit):
        v = int.from_bytes(data[i : i + sch.unit], byteorder)
        if not sch.is_float:
            for j in range(sch.unit):
                out[j].append((v >> (8 * j)) & 0xFF)
            continue
        sign = v >> (8 * sch.unit - 1)
        exponent = (v >> sch.mbits) & ((1 << sch.ebits) - 1)
        sm = (sign << sch.mbits) | (v & ((1 << sch.mbits) - 1))
        out[0].append(exponent)
        for j, (_, bits, shift) in enumerate(sch.fields[1:], start=1):
            out[j].append((sm >> shift) & ((1 << bits) - 1))
    return out


def merge_reference(fields: list[list[int]], sch: Scheme, order: str) -> bytes:
    """Plain-Python definition of :func:`merge`."""
    byteorder = "big" if order == ">" else "little"
    out = bytearray()
    for i in range(len(fields[0]) if fields else 0):
        if not sch.is_float:
            v = sum(fields[j][i] << (8 * j) for j in range(sch.unit))
        else:
            sm = sum(fields[j][i] << shift for j, (_, _, shift) in enumerate(sch.fields) if j)
            v = ((sm >> sch.mbits) << (8 * sch.unit - 1)) | (fields[0][i] << sch.mbits)
            v |= sm & ((1 << sch.mbits) - 1)
        out += v.to_bytes(sch.unit, byteorder)
    return bytes(out)


# ------------------------------------------------------------------------------ raw (uncoded) symbols

PACK_BLOCK = 1 << 16  # symbols bit-packed at a time (a multiple of 8: every block ends on a byte boundary)


def pack(symbols: np.ndarray, bits: int) -> bytes:
    """Store ``bits``-bit symbols (1 to 32 bits) verbatim: bytes as they are, narrower or wider ones bit-packed
    (symbol ``i`` occupies bits ``i*bits ..`` of the little-endian bit string)."""
    if bits == 8:
        return np.ascontiguousarray(symbols, dtype=np.uint8).tobytes()
    wide = np.uint16 if bits <= 16 else np.uint32
    v = np.asarray(symbols).astype(wide, copy=False)
    shifts = np.arange(bits, dtype=wide)
    return b"".join(np.packbits(((v[a : a + PACK_BLOCK, None] >> shifts) & 1).astype(np.uint8).reshape(-1),
                                bitorder="little").tobytes() for a in range(0, len(v), PACK_BLOCK))


def packed_size(count: int, bits: int) -> int:
    """Bytes :func:`pack` writes for ``count`` symbols."""
    return (count * bits + 7) // 8


def unpack(data: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` symbols as uint16 (uint8 for ``bits <= 8``, uint32 above 16 bits;
    for 8 bits a read-only view of ``data``)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) != packed_size(count, bits):
        raise FormatError(f"raw stream holds {len(buf)} bytes, expected {packed_size(count, bits)} "
                          f"for {count} symbols of {bits} bits")
    if bits == 8:
        return buf
    wide = np.uint16 if bits <= 16 else np.uint32
    out = np.empty(count, dtype=np.uint8 if bits <= 8 else wide)
    shifts = np.arange(bits, dtype=wide)
    for a in range(0, count, PACK_BLOCK):
        k = min(PACK_BLOCK, count - a)
        flat = np.unpackbits(buf[a * bits // 8 : packed_size(a + k, bits)], bitorder="little")[: k * bits]
        out[a : a + k] = (flat.reshape(k, bits).astype(wide) << shifts).sum(axis=1, dtype=wide)
    return out
