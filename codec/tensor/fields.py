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

    def field_bits(self) -> list[int]:
        return [b for _, b, _ in self.fields]


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


def split(data: bytes | memoryview | np.ndarray, sch: Scheme, order: str) -> list[np.ndarray]:
    """Cut ``len(data) // sch.unit`` elements into their field arrays (uint8, or uint16 for 11-bit f64
    exponents). ``data`` must hold a whole number of elements."""
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8)
    if len(buf) % sch.unit:
        raise CodecError(f"{len(buf)} bytes are not a whole number of {sch.unit}-byte elements")
    if not sch.is_float:
        planes = buf.reshape(-1, sch.unit)
        if order == ">":
            planes = planes[:, ::-1]
        return [np.ascontiguousarray(planes[:, j]) for j in range(sch.unit)]
    width = 8 * sch.unit
    u = buf.view(_uint(sch.unit, order))
    if order == ">":
        u = u.astype(_uint(sch.unit, "<"))
    ut = u.dtype.type
    mmask = ut((1 << sch.mbits) - 1)
    e = (u >> ut(sch.mbits)) & ut((1 << sch.ebits) - 1)
    sm = ((u >> ut(width - 1)) << ut(sch.mbits)) | (u & mmask)
    out = [e.astype(np.uint16 if sch.ebits > 8 else np.uint8)]
    for _, bits, shift in sch.fields[1:]:
        out.append(((sm >> ut(shift)) & ut((1 << bits) - 1)).astype(np.uint8))
    return out


def merge(fields: list[np.ndarray], sch: Scheme, order: str) -> bytes:
    """Inverse of :func:`split`: the element bytes, in byte order ``order``."""
    if len(fields) != len(sch.fields):
        raise FormatError(f"scheme {sch.name} needs {len(sch.fields)} fields, got {len(fields)}")
    n = len(fields[0])
    if any(len(f) != n for f in fields):
        raise FormatError("field streams of one tensor differ in length")
    if not sch.is_float:
        planes = np.empty((n, sch.unit), dtype=np.uint8)
        for j, f in enumerate(fields):
            planes[:, j] = f
        if order == ">":
            planes = planes[:, ::-1]
        return planes.tobytes()
    width = 8 * sch.unit
    udt = _uint(sch.unit, "<")
    ut = udt.type
    sm = np.zeros(n, dtype=udt)
    for f, (_, _, shift) in zip(fields[1:], sch.fields[1:], strict=True):
        sm |= f.astype(udt) << ut(shift)
    u = ((sm >> ut(sch.mbits)) << ut(width - 1)) | (fields[0].astype(udt) << ut(sch.mbits))
    u |= sm & ut((1 << sch.mbits) - 1)
    if order == ">":
        u = u.astype(_uint(sch.unit, ">"))
    return u.tobytes()


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

def pack(symbols: np.ndarray, bits: int) -> bytes:
    """Store ``bits``-bit symbols verbatim: bytes as they are, narrower or wider ones bit-packed
    (symbol ``i`` occupies bits ``i*bits ..`` of the little-endian bit string)."""
    if bits == 8:
        return np.ascontiguousarray(symbols, dtype=np.uint8).tobytes()
    v = np.asarray(symbols, dtype=np.uint16)
    bitplanes = ((v[:, None] >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(bitplanes.reshape(-1), bitorder="little").tobytes()


def packed_size(count: int, bits: int) -> int:
    """Bytes :func:`pack` writes for ``count`` symbols."""
    return (count * bits + 7) // 8


def unpack(data: bytes | memoryview, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``count`` symbols as uint16 (uint8 for ``bits <= 8``)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) != packed_size(count, bits):
        raise FormatError(f"raw stream holds {len(buf)} bytes, expected {packed_size(count, bits)} "
                          f"for {count} symbols of {bits} bits")
    if bits == 8:
        return buf.copy()
    flat = np.unpackbits(buf, bitorder="little")[: count * bits].reshape(count, bits).astype(np.uint16)
    v = (flat << np.arange(bits, dtype=np.uint16)).sum(axis=1, dtype=np.uint16)
    return v.astype(np.uint8) if bits <= 8 else v
