"""Frozen integer coding tables: quantized CDFs every rANS coder in nctk reads.

A table codes the symbols ``offset .. offset+size-1``; entry ``size`` is the escape slot, which codes any
other integer (its value follows as raw bits, see docs/FORMAT.md), so nothing is ever dropped. Every
entry has frequency >= 1 and the frequencies sum to exactly ``2**precision``.

Tables are immutable values: built once by a pure function (:func:`quantize_pmf`, :func:`from_counts`,
:func:`categorical`, :class:`ParametricFamily`, :func:`factorized_prior`), serialised with
:meth:`Tables.to_bytes`, identified by :meth:`Tables.digest`. There is no ``update()`` step.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nctk.entropy.errors import FormatError, TableError, TruncatedError

PRECISION_MIN = 12  # the encoders' float reciprocal is exact from 12 bits up (entropy/rans_numba.py)
PRECISION_MAX = 16
MAX_TABLES = 1 << 20
MAX_ALPHABET = 1 << 16
_TABLES_MAGIC = b"NTBL"
_TABLES_VERSION = 1


@dataclass(frozen=True, eq=False)
class Table:
    """One coding table: symbols ``offset .. offset+size-1`` plus the escape entry (last freq)."""

    precision: int
    offset: int
    freqs: np.ndarray  # uint32, length size + 1

    def __post_init__(self) -> None:
        freqs = np.ascontiguousarray(self.freqs, dtype=np.uint32)
        freqs.setflags(write=False)
        object.__setattr__(self, "freqs", freqs)
        _check_table(self.precision, self.offset, freqs)

    @property
    def size(self) -> int:
        """Number of regular (non-escape) symbols."""
        return len(self.freqs) - 1


def _check_table(precision: int, offset: int, freqs: np.ndarray) -> None:
    if not (PRECISION_MIN <= precision <= PRECISION_MAX):
        raise TableError(f"precision {precision} outside [{PRECISION_MIN}, {PRECISION_MAX}]")
    n = len(freqs)
    if n < 1 or n > min(MAX_ALPHABET, 1 << precision):
        raise TableError(f"table has {n} entries; allowed 1..{min(MAX_ALPHABET, 1 << precision)}")
    if not (-(1 << 31) <= offset and offset + n - 1 <= (1 << 31) - 1):
        raise TableError(f"table alphabet [{offset}, {offset + n - 1}) leaves int32")
    if int(freqs.min()) < 1:
        raise TableError("every table entry needs frequency >= 1")
    total = int(freqs.sum(dtype=np.uint64))
    if total != 1 << precision:
        raise TableError(f"frequencies sum to {total}, expected {1 << precision}")


def quantize_pmf(pmf: np.ndarray, precision: int) -> np.ndarray:
    """Integer frequencies (each >= 1, summing to ``2**precision``) that minimise the coding cost.

    ``pmf`` may be unnormalised; zeros are allowed (they still get frequency 1). Starts from rounding
    and fixes the sum one unit at a time where it costs the least extra bits (greedy on a separable
    convex cost, so the result is optimal for the given pmf). Ties go to the lowest index, so the
    result is a deterministic function of the input floats.
    """
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise TableError("pmf must be a non-empty 1-D array of finite, non-negative numbers")
    m = 1 << precision
    n = len(p)
    if n > m:
        raise TableError(f"{n} symbols do not fit precision {precision}")
    total = p.sum()
    p = p / total if total > 0 else np.full(n, 1.0 / n)
    f = np.maximum(1, np.rint(p * m)).astype(np.int64)
    diff = m - int(f.sum())
    while diff != 0:
        if diff > 0:
            if diff >= n:  # every entry gains diff // n units: those rounds need no order
                f += diff // n
                diff %= n
                continue
            gain = p * np.log2((f + 1) / f)  # bits saved by one more unit
            f[_first_k(-gain, diff)] += 1
            diff = 0
        else:
            movable = f > 1
            k = int(movable.sum())
            if -diff >= k:  # rounds in which every movable entry loses a unit (and stays movable but the last)
                r = min(-diff // k, int(f[movable].min()) - 1)
                f[movable] -= r
                diff += r * k
                continue
            loss = np.where(movable, p * np.log2(f / np.maximum(f - 1, 1)), np.inf)
            f[_first_k(loss, -diff)] -= 1
            diff = 0
    return f.astype(np.uint32)


def _first_k(key: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest keys, ties to the lowest index: the first ``k`` of a stable sort of
    ``key``, found in linear time (a partition for the k-th key, then the lowest indices among its ties)."""
    if k >= len(key):
        return np.arange(len(key))
    kth = np.partition(key, k - 1)[k - 1]
    below = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[: k - len(below)]
    return np.concatenate((below, ties))


def from_counts(counts: np.ndarray, offset: int = 0, precision: int = 16,
                escape_count: float = 0.0) -> Table:
    """A table for symbols ``offset..offset+len(counts)-1`` from occurrence counts (escape last)."""
    counts = np.asarray(counts, dtype=np.float64)
    return Table(precision, int(offset), quantize_pmf(np.append(counts, escape_count), precision))


def categorical(probs: np.ndarray, offset: int = 0, precision: int = 16,
                escape_prob: float = 0.0) -> Table:
    """A table from a probability vector over ``offset..offset+len(probs)-1`` (escape last)."""
    return from_counts(probs, offset, precision, escape_prob)


class Tables:
    """An immutable set of tables of one precision, packed into flat arrays for the kernels.

    Table ``t`` occupies ``freqs[starts[t] : starts[t] + sizes[t] + 1]`` (escape last); ``cdf`` holds
    the cumulative frequency at the start of each entry.
    """

    def __init__(self, tables: Sequence[Table]):
        if not tables:
            raise TableError("a table set needs at least one table")
        if len(tables) > MAX_TABLES:
            raise TableError(f"more than {MAX_TABLES} tables")
        precisions = {t.precision for t in tables}
        if len(precisions) != 1:
            raise TableError(f"all tables of a set need one precision, got {sorted(precisions)}")
        self.precision: int = precisions.pop()
        self.tables: tuple[Table, ...] = tuple(tables)
        self.offsets = np.array([t.offset for t in tables], dtype=np.int64)
        self.sizes = np.array([t.size for t in tables], dtype=np.int64)
        self.starts = np.zeros(len(tables), dtype=np.int64)
        self.starts[1:] = np.cumsum(self.sizes[:-1] + 1)
        self.freqs = np.concatenate([t.freqs for t in tables]).astype(np.uint32)
        self.cdf = np.concatenate(
            [np.concatenate(([0], np.cumsum(t.freqs[:-1], dtype=np.uint64))) for t in tables]
        ).astype(np.uint32)
        for a in (self.offsets, self.sizes, self.starts, self.freqs, self.cdf):
            a.setflags(write=False)
        self._lookups: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.tables)

    def __getitem__(self, i: int) -> Table:
        return self.tables[i]

    @classmethod
    def of(cls, tables: Table | Sequence[Table] | Tables) -> Tables:
        """Accept a Table, a sequence of them, or a Tables, and return a Tables."""
        if isinstance(tables, Tables):
            return tables
        if isinstance(tables, Table):
            return cls([tables])
        return cls(list(tables))

    def lookup(self, bits: int | None = None) -> tuple[np.ndarray, int]:
        """Decode lookup: ``lut[t << bits | slot >> (precision - bits)]`` = first entry to try.

        The decoder scans forward from there (rarely more than one step), which makes decoding
        O(1) per symbol without a table of ``2**precision`` entries per table. ``bits`` trades memory
        for scan length; by default the full precision is used while the lookup stays under 512 KiB
        (cache-resident), else fewer bits (at least 8). Derived data, cached; not part of the format.
        """
        if bits is None:
            bits = self.precision
            while bits > 8 and len(self) * (2 << bits) > (512 << 10):
                bits -= 1
        if bits not in self._lookups:
            self._lookups[bits] = _build_lookup(self, bits)
        return self._lookups[bits], bits

    @functools.cached_property
    def rcp(self) -> np.ndarray:
        """``1.0 / freq`` per entry (float64): encoders divide by multiplying (then correct exactly)."""
        r = 1.0 / self.freqs.astype(np.float64)
        r.setflags(write=False)
        return r

    @functools.cached_property
    def packed(self) -> np.ndarray:
        """Per entry ``cdf | (freq - 1) << 16`` as uint32: one load gives both (kernels' layout)."""
        if self.precision > 16:
            raise TableError("packed entries need precision <= 16")
        p = self.cdf.astype(np.uint32) | ((self.freqs - 1).astype(np.uint32) << 16)
        p.setflags(write=False)
        return p

    def to_bytes(self) -> bytes:
        """Serialise (docs/FORMAT.md, "Table sets"): exact integers, no floats."""
        out = bytearray(_TABLES_MAGIC)
        out += struct.pack("<BBI", _TABLES_VERSION, self.precision, len(self))
        for t in self.tables:
            out += struct.pack("<iI", t.offset, t.size)
            out += _varints(t.freqs)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Tables:
        """Parse :meth:`to_bytes` output, validating everything; raises FormatError subclasses."""
        data = bytes(data)
        if len(data) < 10:
            raise TruncatedError("table set: shorter than its 10-byte preamble")
        if data[:4] != _TABLES_MAGIC:
            raise FormatError("table set: bad magic")
        version, precision, count = struct.unpack_from("<BBI", data, 4)
        if version != _TABLES_VERSION:
            raise FormatError(f"table set: unknown version {version}")
        if count < 1 or count > MAX_TABLES or count * 9 > len(data):
            raise FormatError(f"table set: implausible table count {count}")
        pos = 10
        tables = []
        for _ in range(count):
            if pos + 8 > len(data):
                raise TruncatedError("table set: truncated table header")
            offset, size = struct.unpack_from("<iI", data, pos)
            pos += 8
            if size + 1 > MAX_ALPHABET or size + 1 > len(data) - pos:
                raise FormatError(f"table set: implausible alphabet size {size}")
            freqs, pos = _read_varints(data, pos, size + 1)
            try:
                tables.append(Table(precision, offset, freqs))
            except TableError as e:
                raise FormatError(f"table set: {e}") from None
        if pos != len(data):
            raise FormatError("table set: trailing bytes")
        return cls(tables)

    def digest(self) -> str:
        """sha256 hex of the serialised tables: names this exact set in file headers."""
        return hashlib.sha256(self.to_bytes()).hexdigest()


def _build_lookup(tables: Tables, bits: int) -> np.ndarray:
    shift = tables.precision - bits
    lut = np.empty(len(tables) << bits, dtype=np.uint16)
    cells = np.arange(1 << bits, dtype=np.int64) << shift
    for t in range(len(tables)):
        s, n = tables.starts[t], tables.sizes[t] + 1
        cdf = tables.cdf[s : s + n].astype(np.int64)
        lut[t << bits : (t + 1) << bits] = np.searchsorted(cdf, cells, side="right") - 1
    lut.setflags(write=False)
    return lut


def _varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _read_varints(data: bytes, pos: int, count: int) -> tuple[np.ndarray, int]:
    out = np.empty(count, dtype=np.uint32)
    end = len(data)
    for i in range(count):
        v = shift = 0
        while True:
            if pos >= end:
                raise TruncatedError("table set: truncated frequency list")
            b = data[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 28:
                raise FormatError("table set: frequency varint too long")
        if v >= 1 << 32:
            raise FormatError("table set: frequency out of range")
        out[i] = v
    return out, pos


# --------------------------------------------------------------------------------------------------
# Parametric families: discretized Gaussian / Laplace / logistic with per-symbol mean and scale.
# --------------------------------------------------------------------------------------------------

def _cdf_fn(kind: str):
    if kind == "gaussian":
        return lambda z: 0.5 * math.erfc(-z / math.sqrt(2.0))
    if kind == "laplace":
        return lambda z: 0.5 * math.exp(z) if z < 0 else 1.0 - 0.5 * math.exp(-z)
    if kind == "logistic":
        return lambda z: 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    raise TableError(f"unknown family {kind!r}; choose gaussian, laplace or logistic")


class ParametricFamily:
    """Tables for a location-scale family, bucketed by scale and by the fractional part of the mean.

    A symbol ``k`` with mean ``mu`` and scale ``sigma`` is coded as ``k - floor(mu)`` with table
    ``index(mu, sigma) = scale_bucket * n_frac + frac_bucket``: scales are bucketed geometrically
    between ``scale_min`` and ``scale_max`` (nearest in log space), the fractional part of ``mu`` in
    ``n_frac`` equal cells (a power of two, so ``floor(mu * n_frac)`` is exact in float64). Both
    bucketings use only exact float comparisons, so every implementation computes the same index.
    Rounding the mean to an integer instead (as compressai does) costs ~3% at small scales.
    """

    def __init__(self, kind: str = "gaussian", scale_min: float = 0.11, scale_max: float = 256.0,
                 n_scales: int = 96, n_frac: int = 16, precision: int = 16):
        if not (0 < scale_min < scale_max) or n_scales < 2:
            raise TableError("need 0 < scale_min < scale_max and n_scales >= 2")
        if n_frac < 1 or n_frac & (n_frac - 1) or n_frac > 256:
            raise TableError("n_frac must be a power of two in [1, 256]")
        self.kind, self.precision = kind, precision
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        self.n_scales, self.n_frac = n_scales, n_frac
        step = math.log(scale_max / scale_min) / (n_scales - 1)
        self.scales = np.array([scale_min * math.exp(j * step) for j in range(n_scales)])
        # Boundaries between buckets at geometric midpoints; bucket = #boundaries <= sigma.
        self.boundaries = np.array([scale_min * math.exp((j + 0.5) * step) for j in range(n_scales - 1)])
        self.tables = _family_tables(kind, tuple(self.scales.tolist()), n_frac, precision)
        self.coarse = _coarse_scale_index(self.boundaries)

    def index(self, means: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference bucketing: ``(table_indexes, floor(means))`` as int32/int64 arrays."""
        mu = np.asarray(means, dtype=np.float64)
        sigma = np.asarray(scales, dtype=np.float64)
        t = np.floor(mu * self.n_frac)
        base = np.floor_divide(t, self.n_frac)
        frac = (t - base * self.n_frac).astype(np.int64)
        sb = np.searchsorted(self.boundaries, sigma, side="right")
        return (sb * self.n_frac + frac).astype(np.int32), base.astype(np.int64)

    def digest(self) -> str:
        """Names the family: tables plus the float64 scale boundaries."""
        h = hashlib.sha256(self.tables.to_bytes())
        h.update(self.boundaries.astype("<f8").tobytes())
        h.update(struct.pack("<I", self.n_frac))
        return h.hexdigest()

    def config(self) -> dict:
        """JSON-able parameters that rebuild this family."""
        return {"kind": self.kind, "scale_min": self.scale_min, "scale_max": self.scale_max,
                "n_scales": self.n_scales, "n_frac": self.n_frac, "precision": self.precision}


@functools.lru_cache(maxsize=8)
def _family_tables(kind: str, scales: tuple[float, ...], n_frac: int, precision: int) -> Tables:
    cdf = _cdf_fn(kind)
    m = 1 << precision
    out = []
    for sigma in scales:
        for fb in range(n_frac):
            c = (fb + 0.5) / n_frac  # mean relative to floor(mu), cell centre
            # Keep r while its probability could earn freq >= 1; the rest goes to the escape.
            lo, hi = 0, 0
            while lo > -32768 and (cdf((lo - 0.5 - c) / sigma) - cdf((lo - 1.5 - c) / sigma)) * m >= 0.5:
                lo -= 1
            while hi < 32767 and (cdf((hi + 1.5 - c) / sigma) - cdf((hi + 0.5 - c) / sigma)) * m >= 0.5:
                hi += 1
            edges = [cdf((r - 0.5 - c) / sigma) for r in range(lo, hi + 2)]
            pmf = np.diff(edges)
            tail = edges[0] + (1.0 - edges[-1])
            out.append(Table(precision, lo, quantize_pmf(np.append(pmf, tail), precision)))
    return Tables(out)


def _coarse_scale_index(boundaries: np.ndarray) -> np.ndarray:
    """For each float64 exponent/5-mantissa-bit cell of positive scales, the bucket at its low end.

    The fused kernels read ``bits >> 47`` of a scale, look the cell up, then step past at most a few
    boundaries by exact comparison: the same answer as a binary search, without one.
    """
    lo_cell = int(np.float64(boundaries[0] / 4).view(np.int64)) >> 47
    hi_cell = int(np.float64(boundaries[-1] * 4).view(np.int64)) >> 47
    cells = np.arange(lo_cell, hi_cell + 1, dtype=np.int64)
    starts = (cells << 47).view(np.float64)
    idx = np.searchsorted(boundaries, starts, side="right").astype(np.int32)
    return np.concatenate((np.array([lo_cell, hi_cell], dtype=np.int32), idx))


def factorized_prior(entropy_bottleneck, precision: int = 16) -> tuple[Tables, np.ndarray]:
    """Freeze compressai's ``EntropyBottleneck`` into per-channel integer tables.

    Returns ``(tables, medians)``: channel ``c`` codes ``round(y - medians[c])`` with table ``c``, over
    the range its learned quantiles cover (anything outside takes the escape). The learned CDF is
    evaluated once, in float64, from the module's parameters; only the integer tables go into files
    and assets, so decoders never re-evaluate the network and cannot drift from the encoder.
    """
    import torch
    import torch.nn.functional as F

    eb = entropy_bottleneck
    with torch.no_grad():
        q = eb.quantiles.detach().double().cpu()[:, 0, :]
        medians = q[:, 1]
        lo = torch.floor(q[:, 0] - medians).long()
        hi = torch.ceil(q[:, 2] - medians).long()
        r = torch.arange(int(lo.min()), int(hi.max()) + 1, dtype=torch.float64)
        x = (r.view(1, 1, -1) + medians.view(-1, 1, 1))

        def logits(v: torch.Tensor) -> torch.Tensor:
            for i in range(len(eb.filters) + 1):
                v = torch.matmul(F.softplus(eb.matrices[i].detach().double().cpu()), v)
                v = v + eb.biases[i].detach().double().cpu()
                if i < len(eb.filters):
                    v = v + torch.tanh(eb.factors[i].detach().double().cpu()) * torch.tanh(v)
            return v

        lower = torch.sigmoid(logits(x - 0.5))[:, 0, :]
        upper = torch.sigmoid(logits(x + 0.5))[:, 0, :]
    out = []
    base = int(lo.min())
    for c in range(q.shape[0]):
        a, b = int(lo[c]) - base, int(hi[c]) - base
        pmf = (upper[c, a : b + 1] - lower[c, a : b + 1]).clamp_min(0).numpy()
        tail = float(lower[c, a]) + float(1.0 - upper[c, b])
        out.append(Table(precision, int(lo[c]), quantize_pmf(np.append(pmf, max(tail, 0.0)), precision)))
    return Tables(out), medians.numpy().astype(np.float64)
