"""Tensor codecs (zstd, ZipNN, pcodec, blosc2, zfp, SZ3 and nctk's own) behind one small protocol, for RD sweeps.

These are harness codecs, like the image baselines: bytes in memory for measuring rate and distortion, not
``.nctk`` file codecs. A tensor is a :class:`Tensor` (safetensors dtype name, shape and values; bfloat16 as its
raw uint16 bits, since numpy has no bfloat16). Every library setting that changes the bytes or the speed is pinned
here (levels, one thread for every library that takes a thread count, SZ3's predictor) and named in ``version()``,
so a sweep is reproducible and its "codec_version" says what ran; nctk's own codec runs as ``nctk`` does (its
Numba kernels use ``NUMBA_NUM_THREADS`` threads on large tensors). A codec whose library is missing stays in the
registry with ``available()`` False; nothing is installed on demand. Nothing heavy is imported at module load.

Quality means one thing per codec on every tensor: nothing for the lossless ones (their only quality is 0); for
``zfp-accuracy`` and ``sz3`` q sets the absolute error bound ``2**-q * (max - min)`` of the tensor being coded, so
q = 10 allows about a thousandth of each tensor's own value range whatever its scale; for ``zfp-rate`` q is the
number of bits per value. Each codec takes the dtypes in its ``dtypes`` and refuses others with CodecError (the
lossy ones take only floating-point tensors, ZipNN only float32/bfloat16/float16); :mod:`nctk.rd.tensor_measure`
stores such tensors raw and says so. Lossy codecs refuse NaN and infinity: a value range, and so an error bound,
does not exist then, and zfp and SZ3 do not promise anything for them.

bfloat16 and float16 tensors go through the lossy codecs as float32 (exactly) and are rounded back to their dtype
to nearest even; that final rounding adds up to half a unit in the last place (at most 2**-8 of the value for
bfloat16, 2**-11 for float16), so their errors can exceed the bound when it is finer than that. On float32 and
float64 the bound holds as the library promises it.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from nctk.entropy.errors import CodecError

if TYPE_CHECKING:
    import numpy as np

# safetensors dtype name -> (numpy dtype that holds the values, kind): "f" floating point (what lossy codecs take;
# bfloat16 held as its uint16 bits), "i" integers and booleans, "b" float8 bit patterns (no numpy type: kept as
# uint8 bits, coded only by the lossless codecs).
DTYPES: dict[str, tuple[str, str]] = {
    "F64": ("<f8", "f"), "F32": ("<f4", "f"), "F16": ("<f2", "f"), "BF16": ("<u2", "f"),
    "I64": ("<i8", "i"), "I32": ("<i4", "i"), "I16": ("<i2", "i"), "I8": ("i1", "i"),
    "U64": ("<u8", "i"), "U32": ("<u4", "i"), "U16": ("<u2", "i"), "U8": ("u1", "i"), "BOOL": ("?", "i"),
    "F8_E4M3": ("u1", "b"), "F8_E5M2": ("u1", "b"),
}
FLOAT_DTYPES = frozenset(k for k, (_, kind) in DTYPES.items() if kind == "f")
ALL_DTYPES = frozenset(DTYPES)


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy arrays with == gives arrays, not a bool
class Tensor:
    """One named tensor: its safetensors dtype name (``"F32"``, ``"BF16"``, ``"I64"``, ...), shape and values.

    ``data`` is a C-contiguous numpy array of ``shape`` in the dtype :data:`DTYPES` gives (bfloat16 as its raw
    uint16 bits, float8 as uint8 bits). Treat it as read-only: codecs and metrics share it without copying.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray

    def __post_init__(self) -> None:
        import numpy as np

        if self.dtype not in DTYPES:
            raise CodecError(f"tensor {self.name!r}: unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        shape = tuple(self.shape)
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise CodecError(f"tensor {self.name!r}: shape must be non-negative integers, got {self.shape!r}")
        want = np.dtype(DTYPES[self.dtype][0])
        if not isinstance(self.data, np.ndarray) or self.data.dtype != want or self.data.shape != shape:
            got = (f"{self.data.dtype} {self.data.shape}" if isinstance(self.data, np.ndarray)
                   else type(self.data).__name__)
            raise CodecError(f"tensor {self.name!r}: a {self.dtype} tensor of shape {shape} needs a {want} array "
                             f"of that shape, got {got}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "data", np.ascontiguousarray(self.data))

    @property
    def size(self) -> int:
        """Number of values."""
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        """Payload bytes (what a safetensors file stores for it)."""
        return int(self.data.nbytes)

    @property
    def is_float(self) -> bool:
        """Whether the values are floating point that :meth:`as_float32` can read (float8 is not)."""
        return self.dtype in FLOAT_DTYPES

    def as_float32(self) -> np.ndarray:
        """The values as float32: exact for BF16, F16 and F32 (F32 returns ``data`` itself), rounded for F64.

        Only floating-point tensors have one; others raise CodecError.
        """
        import numpy as np

        if self.dtype == "F32":
            return self.data
        if self.dtype == "BF16":  # bfloat16 is the top half of a float32: shift the bits back up
            return (self.data.astype(np.uint32) << 16).view(np.float32)
        if self.dtype in ("F16", "F64"):
            return self.data.astype(np.float32)
        raise CodecError(f"tensor {self.name!r} has dtype {self.dtype}; only floating-point tensors "
                         f"({', '.join(sorted(FLOAT_DTYPES))}) convert to float32")

    @classmethod
    def from_float32(cls, name: str, dtype: str, values: np.ndarray) -> Tensor:
        """A ``dtype`` tensor with ``values`` (a float array, float32 usually) rounded to nearest, ties to even.

        BF16 rounds the float32 bits (NaN stays a quiet NaN, values past bfloat16's range become infinities);
        F16 uses numpy's conversion, which also rounds to nearest even; F32 and F64 are cast. Float64 values go to
        BF16 through float32, which can round twice. Integer dtypes raise CodecError.
        """
        import numpy as np

        values = np.asarray(values)
        if dtype not in FLOAT_DTYPES:
            raise CodecError(f"tensor {name!r}: from_float32 makes floating-point tensors "
                             f"({', '.join(sorted(FLOAT_DTYPES))}), not {dtype!r}")
        if values.dtype.kind != "f":
            raise CodecError(f"tensor {name!r}: from_float32 takes a float array, got {values.dtype}")
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to infinity is the rounding asked for
            if dtype == "BF16":
                bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
                out = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
                nan = np.isnan(values)
                if nan.any():  # the carry above could turn a NaN into an infinity: keep it a (quiet) NaN
                    out[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)
            else:
                out = values.astype(DTYPES[dtype][0])
        return cls(name, dtype, tuple(values.shape), out)


@runtime_checkable
class TensorCodec(Protocol):
    """What a sweep needs from a tensor codec: a stable id, a default quality sweep and a byte round trip.

    ``qualities`` is the default sweep, ascending, so rate grows along it; ``quality_range`` bounds what
    ``encode`` accepts (inclusive; (0, 0) for lossless codecs, which take no setting). ``dtypes`` are the
    safetensors dtype names ``encode`` takes. ``decode`` returns a tensor with ``like``'s name, dtype and shape
    (the stream need not store them). Lossless codecs verify nothing themselves: the harness checks exactness.
    """

    id: str
    description: str
    modality: str
    lossless: bool
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str
    dtypes: frozenset[str]

    def available(self) -> bool: ...

    def version(self) -> str: ...

    def encode(self, t: Tensor, quality: int) -> bytes: ...

    def decode(self, data: bytes, like: Tensor) -> Tensor: ...


def _import(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except Exception:  # a broken install (ImportError, OSError from a missing .so) just means "not available"
        return None


def _dist_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _grid(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The 1-4 dimensional grid zfp and SZ3 code a tensor as: its shape without length-1 axes, leading axes merged.

    Both libraries predict along each axis of at most 4; a length-1 axis only pads blocks, and merging the leading
    axes keeps the innermost three, along which neighbouring values are stored.
    """
    dims = [d for d in shape if d != 1] or [1]
    if len(dims) > 4:
        dims = [math.prod(dims[:-3]), *dims[-3:]]
    return tuple(dims)


@dataclass(frozen=True)
class BaseTensorCodec:
    """The shared part of the tensor baselines: checks, availability, the quality gate and error wrapping.

    Subclasses implement ``_encode`` and ``_decode`` (the library calls) and ``_versions`` (what made the bytes).
    """

    id: str
    description: str
    lossless: bool
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str
    modules: tuple[str, ...]  # imported to tell whether the codec can run here
    dtypes: frozenset[str]

    modality: ClassVar[str] = "tensor"

    def available(self) -> bool:
        """Whether this environment has the codec's libraries (imports them, installs nothing)."""
        return all(_import(m) is not None for m in self.modules)

    def _need(self) -> None:
        if not self.available():
            raise CodecError(f"tensor baseline {self.id!r} is not available here: it needs {self.requires}")

    def version(self) -> str:
        """The libraries that produce the bytes and their pinned settings; recorded in sweep metadata."""
        self._need()
        return ", ".join(self._versions())

    def _versions(self) -> list[str]:
        raise NotImplementedError

    def _check_quality(self, quality: int) -> None:
        lo, hi = self.quality_range
        if isinstance(quality, bool) or not isinstance(quality, int) or not lo <= quality <= hi:
            raise CodecError(f"{self.id}: quality must be an integer in [{lo}, {hi}], got {quality!r}")

    def _check_tensor(self, t: Any, what: str) -> Tensor:
        if not isinstance(t, Tensor):
            raise CodecError(f"{self.id}: {what} must be an nctk.rd.baselines.tensors.Tensor, got {type(t).__name__}")
        if t.dtype not in self.dtypes:
            raise CodecError(f"{self.id} does not take {t.dtype} tensors ({t.name!r}); it takes "
                             f"{', '.join(sorted(self.dtypes))}")
        return t

    def encode(self, t: Tensor, quality: int) -> bytes:
        """Compress tensor ``t`` at ``quality`` (within ``quality_range``) to the codec's bytes."""
        import numpy as np

        self._check_tensor(t, "t")
        self._check_quality(quality)
        self._need()
        if t.size == 0:
            return b""  # nothing to code; decode gives the empty tensor back from ``like``
        if not self.lossless and not np.isfinite(t.as_float32() if t.dtype != "F64" else t.data).all():
            raise CodecError(f"{self.id}: tensor {t.name!r} holds NaN or infinity, which error-bounded lossy "
                             "coding cannot take (no value range, no bound)")
        try:
            return bytes(self._encode(t, quality))
        except CodecError:
            raise
        except Exception as e:  # the libraries raise ValueError, RuntimeError, TypeError or their own errors
            raise CodecError(f"{self.id}: encoding {t.dtype} tensor {t.name!r} of shape {t.shape} failed: "
                             f"{type(e).__name__}: {e}") from e

    def decode(self, data: bytes, like: Tensor) -> Tensor:
        """Decompress bytes made by :meth:`encode` to a tensor with ``like``'s name, dtype and shape."""
        import numpy as np

        self._check_tensor(like, "like")
        self._need()
        if like.size == 0:
            if len(data):
                raise CodecError(f"{self.id}: {len(data)} bytes given for the empty tensor {like.name!r}")
            return Tensor(like.name, like.dtype, like.shape, np.empty(like.shape, DTYPES[like.dtype][0]))
        try:
            out = self._decode(bytes(data), like)
        except CodecError:
            raise
        except Exception as e:
            raise CodecError(f"{self.id}: cannot decode {len(data)} bytes as {like.dtype} tensor {like.name!r} "
                             f"of shape {like.shape}: {type(e).__name__}: {e}") from e
        if out.dtype != like.dtype or out.shape != like.shape:
            raise CodecError(f"{self.id} decoded a {out.dtype} {out.shape} tensor for {like.dtype} {like.shape} "
                             f"tensor {like.name!r}")
        return out

    def _encode(self, t: Tensor, quality: int) -> bytes:
        raise NotImplementedError

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        raise NotImplementedError


def _from_bytes(raw: Any, like: Tensor) -> Tensor:
    """A tensor like ``like`` holding the little-endian values in buffer ``raw``; CodecError if its size is wrong."""
    import numpy as np

    storage = np.dtype(DTYPES[like.dtype][0])
    raw = memoryview(raw)
    if raw.nbytes != like.size * storage.itemsize:
        raise CodecError(f"decoded {raw.nbytes} bytes for {like.dtype} tensor {like.name!r} of shape {like.shape}, "
                         f"which holds {like.size * storage.itemsize}")
    return Tensor(like.name, like.dtype, like.shape, np.frombuffer(raw, storage).reshape(like.shape).copy())


@dataclass(frozen=True)
class ZstdCodec(BaseTensorCodec):
    """zstd (the zstandard package) on a tensor's raw little-endian bytes: the generic lossless reference."""

    level: int = 3

    def _versions(self) -> list[str]:
        import zstandard

        lib = ".".join(map(str, zstandard.ZSTD_VERSION))
        return [f"zstandard {zstandard.__version__} (libzstd {lib})", f"level {self.level}, one thread"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        import zstandard

        # threads=0 is zstd's single-threaded mode; the content size goes in the frame, no checksum
        return zstandard.ZstdCompressor(level=self.level, threads=0, write_checksum=False,
                                        write_content_size=True).compress(t.data.reshape(-1).data)

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import zstandard

        return _from_bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=like.nbytes), like)


# ZipNN's names for the dtypes it codes (it splits the exponent bytes from the mantissa bytes, then Huffman codes).
_ZIPNN_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
ZIPNN_THREADS = 1


@dataclass(frozen=True)
class ZipNNCodec(BaseTensorCodec):
    """ZipNN (byte grouping + Huffman/zstd) on a tensor's bytes with the dtype setting that matches the tensor.

    Pinned to one thread (``ZIPNN_THREADS``), like every other codec here, so speeds compare per core.
    """

    def _versions(self) -> list[str]:
        return [f"zipnn {_dist_version('zipnn')}", f"method AUTO, {ZIPNN_THREADS} thread"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        from zipnn import ZipNN

        codec = ZipNN(input_format="byte", bytearray_dtype=_ZIPNN_DTYPES[t.dtype], threads=ZIPNN_THREADS)
        return codec.compress(bytearray(t.data.reshape(-1).data))  # a copy: ZipNN rewrites its input buffer in place

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        from zipnn import ZipNN

        return _from_bytes(ZipNN(input_format="byte", threads=ZIPNN_THREADS).decompress(data), like)


PCODEC_LEVEL = 8  # pcodec's default compression level


@dataclass(frozen=True)
class PcodecCodec(BaseTensorCodec):
    """pcodec's standalone format on the flattened values (level 8; 8-bit types enabled; bool as uint8).

    bfloat16 goes in as its uint16 bits: on all-MiniLM-L6-v2 rounded to bfloat16 that gives 10.605 bits per value,
    against 10.607 as int16 and 10.603 for the values widened to float32 (pcodec's float modes), so the bits
    cost nothing measurable and half the memory; zstd-3 gives 12.48 there.
    """

    def _versions(self) -> list[str]:
        return [f"pcodec {_dist_version('pcodec')}", f"level {PCODEC_LEVEL}, one thread"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        import numpy as np
        from pcodec import ChunkConfig, standalone

        flat = t.data.reshape(-1)
        if flat.dtype == np.bool_:
            flat = flat.view(np.uint8)
        return standalone.simple_compress(flat, ChunkConfig(compression_level=PCODEC_LEVEL, enable_8_bit=True))

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import numpy as np
        from pcodec import standalone

        out = standalone.simple_decompress(data)
        if out is None or out.size != like.size:
            raise CodecError(f"{self.id}: the stream holds {0 if out is None else out.size} values, tensor "
                             f"{like.name!r} {like.size}")
        return _from_bytes(np.ascontiguousarray(out), like)


BLOSC2_LEVEL = 5
# blosc2.compress2 takes buffers under 2 GiB; larger tensors are cut into pieces of this many bytes (a multiple of
# every item size), each a self-describing blosc2 chunk whose header gives its length, so no framing is needed.
BLOSC2_PIECE = 1 << 30


@dataclass(frozen=True)
class Blosc2Codec(BaseTensorCodec):
    """blosc2: byte shuffle (item size = the dtype's) then zstd level 5, blocks sized by blosc2, one thread."""

    def _versions(self) -> list[str]:
        import blosc2

        return [f"python-blosc2 {blosc2.__version__} (C-Blosc2 {blosc2.VERSION_STRING})",
                f"shuffle + zstd level {BLOSC2_LEVEL}, one thread"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        import blosc2

        raw = memoryview(t.data.reshape(-1).view("u1"))
        params = {"codec": blosc2.Codec.ZSTD, "clevel": BLOSC2_LEVEL, "filters": [blosc2.Filter.SHUFFLE],
                  "filters_meta": [0], "typesize": t.data.itemsize, "nthreads": 1, "blocksize": 0,
                  "splitmode": blosc2.SplitMode.AUTO_SPLIT}
        return b"".join(blosc2.compress2(raw[i:i + BLOSC2_PIECE], **params)
                        for i in range(0, len(raw), BLOSC2_PIECE))

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import blosc2

        view, pos, pieces = memoryview(data), 0, []
        while pos < len(view):
            _, cbytes, _ = blosc2.get_cbuffer_sizes(view[pos:])
            if cbytes <= 0 or pos + cbytes > len(view):
                raise CodecError(f"{self.id}: truncated blosc2 chunk at byte {pos} of {len(view)}")
            pieces.append(blosc2.decompress2(view[pos:pos + cbytes], nthreads=1))
            pos += cbytes
        return _from_bytes(b"".join(pieces), like)


@dataclass(frozen=True)
class NctkCodec(BaseTensorCodec):
    """nctk's own tensor codecs (``tensor-lossless``, ``tensor-bounded``) through :func:`nctk.compress` /
    :func:`nctk.decompress`, so nctk is measured beside its peers in the same run.

    Its id is the registered codec's own, so a sweep's curve carries the name ``nctk codecs`` lists. A lossy codec
    gets the sweep's quality as its own (``tensor-bounded``: bound 2**-q x the tensor's range). The bytes are
    a whole ``.nctk`` container (header and checksums included) per tensor, as a user would store it; bfloat16
    goes in as a torch bfloat16 tensor so the codec sees the dtype, everything else as its numpy array.
    """

    def _versions(self) -> list[str]:
        from nctk.codec import registry

        version = {c.id: c.version for c in registry.catalogue()}.get(self.id, "?")
        return [f"nctk {_dist_version('nctk')} ({self.id} v{version})"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        from nctk.codec.api import compress

        obj: Any = t.data
        if t.dtype == "BF16":
            import torch

            obj = torch.from_numpy(t.data.view("<i2")).view(torch.bfloat16)
        return compress(obj, codec=self.id, quality=None if self.lossless else quality)

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import numpy as np

        from nctk.codec.api import decompress

        out = decompress(data)
        if like.dtype == "BF16":
            import torch

            if not isinstance(out, torch.Tensor) or out.dtype != torch.bfloat16:
                raise CodecError(f"{self.id}: expected a bfloat16 tensor for {like.name!r}, got {type(out).__name__}")
            out = out.view(torch.int16).numpy().view(np.uint16)
        if not isinstance(out, np.ndarray) or out.dtype != np.dtype(DTYPES[like.dtype][0]):
            raise CodecError(f"{self.id}: the stream does not hold a {like.dtype} array for {like.name!r}")
        return _from_bytes(np.ascontiguousarray(out), like)


def _lossy_values(t: Tensor, copy: bool = False) -> np.ndarray:
    """The values zfp and SZ3 code: float64 for F64, float32 otherwise, shaped as :func:`_grid` says."""
    import numpy as np

    vals = t.data if t.dtype == "F64" else t.as_float32()
    vals = vals.reshape(_grid(t.shape))
    return np.array(vals, copy=True) if copy else np.ascontiguousarray(vals)


def error_bound(t: Tensor, quality: int) -> float:
    """The absolute error bound of ``zfp-accuracy`` and ``sz3`` at ``quality``: ``2**-quality * (max - min)``.

    A constant tensor has no range, so its bound is 0: it must come back exactly (both codecs do that cheaply).
    """
    import numpy as np

    vals = t.data if t.dtype == "F64" else t.as_float32()
    if vals.size == 0:
        return 0.0
    return math.ldexp(float(np.max(vals)) - float(np.min(vals)), -quality)  # the range in float64: no overflow


def _from_lossy(values: np.ndarray, like: Tensor) -> Tensor:
    if values.size != like.size:
        raise CodecError(f"decoded {values.size} values for tensor {like.name!r} of shape {like.shape}")
    return Tensor.from_float32(like.name, like.dtype, values.reshape(like.shape))


# zfp cannot fit a 1-D block (4 values) in fewer bits than its sign and exponent take (9 for float32, 12 for
# float64): at 1 or 2 bits per value zfpy 1.0.1 writes past its buffer (seen as heap corruption, "corrupted
# double-linked list", on MiniLM's biases). 1-D tensors are therefore coded at no fewer than 3 bits per value.
ZFP_MIN_1D_RATE = 3


@dataclass(frozen=True)
class ZfpCodec(BaseTensorCodec):
    """zfp through zfpy, in fixed-accuracy mode (q sets :func:`error_bound`) or fixed-rate mode (q bits per value,
    at least ``ZFP_MIN_1D_RATE`` for tensors whose :func:`_grid` is 1-D).

    Tensors are coded on their :func:`_grid` with zfpy's 12-byte header (mode, type, shape) kept in the stream.
    """

    mode: str = "accuracy"

    def _versions(self) -> list[str]:
        mode = f"fixed-{self.mode} mode" + (f" (1-D at >= {ZFP_MIN_1D_RATE} bits)" if self.mode == "rate" else "")
        return [f"zfpy {_dist_version('zfpy')}", mode]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        import zfpy

        vals = _lossy_values(t)
        if self.mode == "accuracy":
            return zfpy.compress_numpy(vals, tolerance=error_bound(t, quality))
        rate = max(quality, ZFP_MIN_1D_RATE) if vals.ndim == 1 else quality
        return zfpy.compress_numpy(vals, rate=float(rate))

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import zfpy

        return _from_lossy(zfpy.decompress_numpy(data), like)


SZ3_ALGORITHM = "INTERP_LORENZO"  # SZ3's default predictor (spline interpolation, Lorenzo where it is better)


@dataclass(frozen=True)
class Sz3Codec(BaseTensorCodec):
    """SZ3 through pysz with an absolute bound (:func:`error_bound`), its default predictor, OpenMP off."""

    def _versions(self) -> list[str]:
        return [f"pysz {_dist_version('pysz')} (SZ3)", f"ABS bound, {SZ3_ALGORITHM}, one thread"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        from pysz import sz, szAlgorithm, szConfig, szErrorBoundMode

        vals = _lossy_values(t, copy=True)  # a copy: SZ3 overwrites its input with the decompressed values
        config = szConfig(vals.shape)
        config.errorBoundMode = szErrorBoundMode.ABS
        config.absErrorBound = error_bound(t, quality)
        config.cmprAlgo = getattr(szAlgorithm, SZ3_ALGORITHM)
        config.openmp = False
        compressed, _ = sz.compress(vals, config)
        return compressed.tobytes()

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        import numpy as np
        from pysz import sz

        dtype = np.float64 if like.dtype == "F64" else np.float32
        values, _ = sz.decompress(np.frombuffer(data, np.uint8), dtype, _grid(like.shape))
        return _from_lossy(values, like)


_LOSSLESS = {"lossless": True, "qualities": (0,), "quality_range": (0, 0)}
_BOUNDS = tuple(range(4, 25, 2))  # 2**-4 .. 2**-24 of the range: from a few bits per value to float32's precision

TENSOR_BASELINES: dict[str, TensorCodec] = {
    c.id: c
    for c in (
        ZstdCodec("zstd-3", "zstd level 3 on the raw bytes", requires="the zstandard package",
                  modules=("zstandard",), dtypes=ALL_DTYPES, level=3, **_LOSSLESS),
        ZstdCodec("zstd-19", "zstd level 19 on the raw bytes", requires="the zstandard package",
                  modules=("zstandard",), dtypes=ALL_DTYPES, level=19, **_LOSSLESS),
        ZipNNCodec("zipnn", "ZipNN (byte grouping + Huffman) for float32/bfloat16/float16 weights, one thread",
                   requires="the zipnn package", modules=("zipnn",), dtypes=frozenset(_ZIPNN_DTYPES), **_LOSSLESS),
        PcodecCodec("pcodec", "pcodec (numeric sequences), level 8; bfloat16 as its uint16 bits",
                    requires="the pcodec package", modules=("pcodec",), dtypes=ALL_DTYPES, **_LOSSLESS),
        Blosc2Codec("blosc2", "blosc2: byte shuffle + zstd level 5, one thread", requires="the blosc2 package",
                    modules=("blosc2",), dtypes=ALL_DTYPES, **_LOSSLESS),
        NctkCodec("tensor-lossless", "nctk tensor-lossless (rANS on split float fields), per tensor",
                  requires="nctk itself", modules=("nctk.codec.api",), dtypes=ALL_DTYPES, **_LOSSLESS),
        NctkCodec("tensor-bounded", "nctk tensor-bounded (quantiser + predictor + rANS), quality q = error bound "
                  "2**-q x the tensor's value range, per tensor", lossless=False, qualities=_BOUNDS,
                  quality_range=(1, 24), requires="nctk itself", modules=("nctk.codec.api",), dtypes=FLOAT_DTYPES),
        ZfpCodec("zfp-accuracy", "zfp fixed-accuracy, quality q = error bound 2**-q x the tensor's value range",
                 lossless=False, qualities=_BOUNDS, quality_range=(0, 52), requires="the zfpy package",
                 modules=("zfpy",), dtypes=FLOAT_DTYPES, mode="accuracy"),
        ZfpCodec("zfp-rate", "zfp fixed-rate, quality = bits per value (1-D tensors: at least 3)", lossless=False,
                 qualities=(1, 2, 3, 4, 6, 8, 12, 16), quality_range=(1, 64), requires="the zfpy package",
                 modules=("zfpy",), dtypes=FLOAT_DTYPES, mode="rate"),
        Sz3Codec("sz3", "SZ3 (interpolation + Lorenzo), quality q = absolute bound 2**-q x the tensor's value range",
                 lossless=False, qualities=_BOUNDS, quality_range=(0, 52), requires="the pysz package (SZ3)",
                 modules=("pysz",), dtypes=FLOAT_DTYPES),
    )
}

