"""tensor-lossless: byte-identical files, bit-exact arrays and tensors, field splitting twins, hostile input."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save as st_save_numpy
from safetensors.torch import save as st_save_torch

import nctk
from nctk.codec.registry import Encoded, FileItem
from nctk.codec.tensor import fields as F
from nctk.codec.tensor import formats
from nctk.codec.tensor.lossless import CODER_BATCH_CHUNKS, TensorLossless
from nctk.entropy import container
from nctk.entropy.errors import CodecError, CorruptStreamError, FormatError

# ------------------------------------------------------------------------------------------ helpers


def npy_bytes(arr: np.ndarray, **kw) -> bytes:
    f = io.BytesIO()
    if kw:
        np.lib.format.write_array(f, arr, **kw)
    else:
        np.save(f, arr)
    return f.getvalue()


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Same type, dtype, shape and bits (NaN payloads and -0.0 included)."""
    return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
            and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes())


def tensor_bits(t: torch.Tensor) -> bytes:
    c = t.detach().cpu().resolve_conj().resolve_neg().contiguous()
    return c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b""


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
            and tensor_bits(a) == tensor_bits(b))


def roundtrip_file(data: bytes, name: str | None = None) -> bytes:
    blob = nctk.compress(data, name=name)
    out = nctk.decompress(blob)
    assert out == data
    return blob


# ------------------------------------------------------------------------------- field splitting twins

@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(F.SCHEMES)), order=st.sampled_from(["<", ">"]),
       data=st.data())
def test_split_merge_match_reference(name, order, data):
    sch = F.SCHEMES[name]
    n = data.draw(st.integers(0, 20))
    raw = data.draw(st.binary(min_size=n * sch.unit, max_size=n * sch.unit))
    fast = F.split(raw, sch, order)
    ref = F.split_reference(raw, sch, order)
    assert [f.tolist() for f in fast] == ref
    for f, (_, bits, _) in zip(fast, sch.fields, strict=True):
        assert f.size == 0 or int(f.max()) < 1 << bits
    assert F.merge(fast, sch, order) == raw
    assert F.merge_reference(ref, sch, order) == raw


@pytest.mark.parametrize("name", sorted(F.SCHEMES))
@pytest.mark.parametrize("order", ["<", ">"])
def test_merge_into_a_constant_equals_merging_its_array(name, order):
    """Decoders write a constant field once for a whole run, without an array of it."""
    sch = F.SCHEMES[name]
    rng = np.random.default_rng(len(name))
    for j, (_, bits, _) in enumerate(sch.fields):
        v = int(rng.integers(0, 1 << bits))
        one, many = np.zeros(5 * sch.unit, np.uint8), np.zeros(5 * sch.unit, np.uint8)
        F.merge_into(one, v, sch, order, j)
        F.merge_into(many, np.full(5, v, np.uint16 if bits > 8 else np.uint8), sch, order, j)
        assert one.tobytes() == many.tobytes()
        assert F.field(one, sch, order, j).tolist() == [v] * 5


def test_float_fields_are_what_the_docs_say():
    x = np.array([-1.5], dtype="<f4")  # sign 1, exponent 127, mantissa 0x400000
    e, m0, m1, m2 = F.split(x.tobytes(), F.SCHEMES["f32"], "<")
    assert (e[0], m0[0], m1[0], m2[0]) == (127, 0xC0, 0, 0)
    assert F.split(x.astype(">f4").tobytes(), F.SCHEMES["f32"], ">")[1][0] == 0xC0
    assert [b for _, b, _ in F.SCHEMES["f16"].fields] == [5, 8, 3]
    assert [b for _, b, _ in F.SCHEMES["bf16"].fields] == [8, 8]
    assert [b for _, b, _ in F.SCHEMES["f64"].fields] == [11, 8, 8, 8, 8, 8, 8, 5]


@pytest.mark.parametrize("bits", [1, 3, 5, 7, 8, 11])
def test_pack_unpack(bits):
    rng = np.random.default_rng(bits)
    for n in (0, 1, 7, 8, 9, 1001, F.PACK_BLOCK + 3):  # the last one spans two packing blocks
        v = rng.integers(0, 1 << bits, n).astype(np.uint16)
        blob = F.pack(v, bits)
        assert len(blob) == F.packed_size(n, bits)
        assert F.unpack(blob, n, bits).tolist() == v.tolist()
    with pytest.raises(FormatError):
        F.unpack(b"\x00" * 3, 100, bits)


# -------------------------------------------------------------------------------------- safetensors

SAFETENSOR_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
                     np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]


def test_safetensors_numpy_all_dtypes_metadata_and_empty():
    rng = np.random.default_rng(0)
    tensors = {}
    for i, dt in enumerate(SAFETENSOR_DTYPES):
        if dt == np.bool_:
            tensors[f"t{i}"] = rng.random((7, 5)) < 0.3
        elif np.issubdtype(dt, np.floating):
            tensors[f"t{i}"] = rng.normal(0, 0.1, (33, 17)).astype(dt)
        else:
            info = np.iinfo(dt)
            tensors[f"t{i}"] = rng.integers(max(info.min, -1000), min(info.max, 1000), (9, 11)).astype(dt)
    tensors["empty"] = np.zeros((0, 4), np.float32)
    tensors["scalar"] = np.array(2.5, np.float64)
    data = st_save_numpy(tensors, metadata={"format": "np", "note": "héllo"})
    blob = roundtrip_file(data, "weights.safetensors")
    assert nctk.decompress_file(blob) == ("weights.safetensors", data)


def test_safetensors_torch_bf16_and_many_tensors():
    g = torch.Generator().manual_seed(1)
    tensors = {f"layer.{i}.weight": (torch.randn(64, 48, generator=g) * 0.02).to(torch.bfloat16)
               for i in range(150)}
    tensors["ln.weight"] = torch.ones(48, dtype=torch.float16)
    tensors["pos"] = torch.arange(512)
    tensors["mask"] = torch.rand(40, generator=g) > 0.5
    tensors["f32"] = torch.randn(100, generator=g)
    tensors["empty"] = torch.zeros(0, dtype=torch.bfloat16)
    data = st_save_torch(tensors, metadata={"framework": "pt"})
    blob = roundtrip_file(data)
    assert len(blob) < len(data) / 1.3  # bf16 at std 0.02: exponents are cheap
    assert nctk.info(blob)["format"] == "safetensors"


def test_safetensors_unusual_layouts_stay_exact():
    body = bytes(range(256)) * 3
    header = {
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [100, 116]},  # out of order, gap before
        "a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
        "overlap": {"dtype": "F16", "shape": [4], "data_offsets": [104, 112]},
        "odd": {"dtype": "F32", "shape": [1], "data_offsets": [200, 207]},  # not a whole element
        "future": {"dtype": "F4", "shape": [8], "data_offsets": [300, 304]},
        "broken": {"dtype": "F32", "data_offsets": [700, 99999]},
        "junk": 5,
        "__metadata__": {"k": "v"},
    }
    js = json.dumps(header).encode() + b"     "  # padded header, as safetensors writes
    data = struct.pack("<Q", len(js)) + js + body
    roundtrip_file(data, "odd.safetensors")


def test_safetensors_bad_header_is_a_codec_error():
    with pytest.raises(CodecError, match="safetensors"):
        nctk.compress(struct.pack("<Q", 5) + b"{nope", name="x.safetensors")
    with pytest.raises(CodecError, match="safetensors"):
        nctk.compress(struct.pack("<Q", 10**6) + b"{}", name="x.safetensors")


# ---------------------------------------------------------------------------------------------- npy

NPY_CASES = {
    "c_order": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "f_order": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(4, 6) ** 1.5),
    "big_endian_f4": (np.arange(50) / 3).astype(">f4"),
    "big_endian_i8": np.arange(-25, 25).astype(">i8"),
    "zero_d": np.array(3.25, dtype=np.float64),
    "empty": np.zeros((3, 0), dtype=np.int32),
    "bool": np.array([True, False, True] * 10),
    **{f"int_{np.dtype(t).name}": np.arange(100).astype(t)
       for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)},
    **{f"float_{np.dtype(t).name}": np.linspace(-3, 3, 77).astype(t)
       for t in (np.float16, np.float32, np.float64)},
    "complex": (np.arange(10) + 1j).astype(np.complex64),
    "longdouble": np.arange(5, dtype=np.longdouble),
    "datetime": np.arange(5).astype("datetime64[s]"),
    "unicode": np.array(["ab", "cde", ""]),
    "bytes": np.array([b"x", b"yz"]),
    "structured": np.zeros(4, dtype=[("a", "<i4"), ("b", ">f8", (2,))]),
    "large": np.random.default_rng(3).normal(0, 1, 100_000).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(NPY_CASES))
def test_npy_roundtrip(name):
    data = npy_bytes(NPY_CASES[name])
    roundtrip_file(data, f"{name}.npy")


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npy_format_versions(version):
    arr = np.arange(1000, dtype=np.int16)
    roundtrip_file(npy_bytes(arr, version=version))


def test_npy_truncated_or_with_trailing_bytes_stays_exact():
    data = npy_bytes(np.arange(100, dtype=np.float32))
    roundtrip_file(data[:-10])
    roundtrip_file(data + b"trailing junk")


def test_npy_object_dtype_refused():
    data = npy_bytes(np.array([1, "two", None], dtype=object))
    with pytest.raises(CodecError, match="object"):
        nctk.compress(data, name="objects.npy")
    with pytest.raises(CodecError, match="object"):
        nctk.compress(np.array([{}, []], dtype=object))


def test_npy_garbage_header_is_a_codec_error():
    with pytest.raises(CodecError, match="npy"):
        nctk.compress(b"\x93NUMPY\x01\x00\x10\x00{'descr': __import__}", name="x.npy")


# ---------------------------------------------------------------------------------- arrays (hypothesis)

NUMERIC = [f"{o}{c}" for o in "<>" for c in ("f2", "f4", "f8", "i2", "i4", "i8", "u2", "u4", "u8", "c8", "c16")]
NUMERIC += ["i1", "u1", "b1"]

SPECIAL_F32 = [0x7FC00000, 0x7F800001, 0xFFBFFFFF, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001,
               0x807FFFFF, 0x3F800000]


@st.composite
def bit_arrays(draw):
    """Arrays of any numeric dtype and byte order whose elements are arbitrary bit patterns (NaN
    payloads, infinities, -0.0, subnormals), often with repeated values so tables get used."""
    dt = np.dtype(draw(st.sampled_from(NUMERIC)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12))
    n = int(np.prod(shape))
    nbytes = n * dt.itemsize
    mode = draw(st.sampled_from(["random", "few", "special"]))
    if mode == "random":
        raw = draw(st.binary(min_size=nbytes, max_size=nbytes))
    elif mode == "few":
        pool = [draw(st.binary(min_size=dt.itemsize, max_size=dt.itemsize)) for _ in range(3)]
        raw = b"".join(pool[i] for i in draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    else:
        words = draw(st.lists(st.sampled_from(SPECIAL_F32), min_size=nbytes // 4 + 1, max_size=nbytes // 4 + 1))
        raw = np.array(words, dtype="<u4").tobytes()[:nbytes]
    if dt.kind == "b":
        raw = bytes(b & 1 for b in raw)
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


class AlwaysCoded(TensorLossless):
    """Never falls back to storing a small input wholly raw, so small examples exercise the coder."""

    def _smallest(self, data, segs, lanes):
        return self._code_segments(data, segs, lanes)


def via_container(c: TensorLossless, item):
    enc = c.encode(item)
    box = container.loads(container.dumps(enc.header, enc.sections))
    return c.decode(Encoded(box.header, list(box.sections.values())))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=bit_arrays())
def test_arrays_roundtrip_bit_exact(arr):
    assert same_array(arr, nctk.decompress(nctk.compress(arr)))
    assert same_array(arr, via_container(AlwaysCoded(), arr))
    data = npy_bytes(arr)
    roundtrip_file(data)
    assert via_container(AlwaysCoded(), FileItem(data)) == FileItem(data)


@settings(max_examples=40, deadline=None)
@given(arr=hnp.arrays(dtype=st.sampled_from([np.float16, np.float32, np.float64]),
                      shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=40),
                      elements={"allow_nan": True, "allow_infinity": True, "allow_subnormal": True}))
def test_float_arrays_with_special_values(arr):
    assert same_array(arr, nctk.decompress(nctk.compress(arr)))


def test_array_memory_order_and_views():
    base = np.arange(120, dtype=np.float32).reshape(10, 12)
    for arr in (base.T, base[::2, 1::3], np.asfortranarray(base), base[:, ::-1]):
        out = nctk.decompress(nctk.compress(arr))
        assert out.dtype == arr.dtype and out.shape == arr.shape and np.array_equal(out, arr)
    f = nctk.decompress(nctk.compress(np.asfortranarray(base)))
    assert f.flags.f_contiguous and f.flags.writeable


def test_special_float_values_exact():
    bits = np.array([0x7FC00001, 0xFFC12345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x007FFFFF],
                    dtype=np.uint32)
    arr = np.tile(bits, 1000).view(np.float32)
    out = nctk.decompress(nctk.compress(arr))
    assert out.view(np.uint32).tolist() == arr.view(np.uint32).tolist()


# -------------------------------------------------------------------------------------------- torch

TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8,
                torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64,
                torch.float8_e4m3fn, torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=str)
def test_torch_dtypes_roundtrip(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 29, generator=g) * 3
    if dtype == torch.bool:
        t = x > 0
    elif dtype in (torch.uint16, torch.uint32, torch.uint64):
        t = x.abs().to(torch.int64).to(dtype)
    else:
        t = x.to(dtype)
    for item in (t, t.T, t[::3, 1:], t[0, 0], t[:0]):
        out = nctk.decompress(nctk.compress(item))
        assert same_tensor(item, out), (dtype, item.shape)


def test_torch_bf16_special_values_and_non_contiguous():
    bits = torch.tensor([0x7FC1, 0xFF81, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x3F80], dtype=torch.int32).to(torch.uint16)
    t = bits.repeat(300).view(torch.bfloat16).reshape(30, 70)
    for item in (t, t.T, t[:, ::7], t.unsqueeze(0).expand(3, 30, 70)):
        out = nctk.decompress(nctk.compress(item))
        assert same_tensor(item, out)


def test_torch_requires_grad_refused_and_conj_resolved():
    w = torch.randn(8, 8, requires_grad=True)
    with pytest.raises(CodecError, match=r"detach\(\)"):
        nctk.compress(w)
    assert same_tensor(w, nctk.decompress(nctk.compress(w.detach())))
    c = torch.randn(5, dtype=torch.complex64).conj()
    assert same_tensor(c, nctk.decompress(nctk.compress(c)))


# ------------------------------------------------------------------------------------- compression


def test_normal_weights_compress(capsys):
    w = np.random.default_rng(7).normal(0, 0.02, 1 << 20).astype(np.float32)
    blob = nctk.compress(w)
    ratio = w.nbytes / len(blob)
    with capsys.disabled():
        print(f"\n  normal(0, 0.02) float32, 4 MiB: ratio {ratio:.3f}")
    assert ratio > 1.1
    assert same_array(w, nctk.decompress(blob))
    bf = torch.from_numpy(w).to(torch.bfloat16)
    ratio_bf = bf.numel() * 2 / len(nctk.compress(bf))
    with capsys.disabled():
        print(f"  normal(0, 0.02) bfloat16: ratio {ratio_bf:.3f}")
    assert ratio_bf > 1.25


def test_incompressible_data_stays_near_raw():
    r = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8)
    blob = nctk.compress(r)
    assert len(blob) < r.nbytes + 1024
    info = nctk.info(blob)
    assert [s["name"] for s in info["sections"]] == ["layout", "planes"]


def test_constant_and_small_value_tensors_are_tiny():
    z = np.zeros((1000, 100), np.float32)
    assert len(nctk.compress(z)) < 1000
    ids = np.arange(100_000, dtype=np.int64) % 50_000
    assert len(nctk.compress(ids)) < ids.nbytes / 3


def test_many_chunks_and_coder_batches():
    """A small chunk size makes many chunks (more than one coder batch) and several tables."""
    lossless = TensorLossless(chunk_size=997)
    rng = np.random.default_rng(5)
    parts = {f"w{i}": rng.normal(0, 10.0 ** -i, 30_000).astype(np.float32) for i in range(4)}
    data = st_save_numpy(parts)
    enc = lossless.encode(FileItem(data, "m.safetensors"))
    box = container.loads(container.dumps(enc.header, enc.sections))
    assert len(box.section("f32.e").chunks) > CODER_BATCH_CHUNKS
    assert box.section("tables").total_count >= 1
    dec = lossless.decode(Encoded(box.header, list(box.sections.values())))
    assert dec == FileItem(data, "m.safetensors")


# --------------------------------------------------------------------------------------- corruption

def _sample_blob() -> bytes:
    return nctk.compress(np.random.default_rng(2).normal(0, 1, 50_000).astype(np.float32))


def test_flipped_payload_byte_raises_format_error():
    blob = bytearray(_sample_blob())
    for pos in (len(blob) - 1, len(blob) // 2, 40):
        bad = bytearray(blob)
        bad[pos] ^= 0x10
        with pytest.raises(FormatError):
            nctk.decompress(bytes(bad))
    with pytest.raises(FormatError):
        nctk.decompress(bytes(blob[:-5]))


def _rewrite(blob: bytes, edit) -> bytes:
    """Change a file's sections and rewrite it with valid checksums (hostile, not damaged)."""
    box = container.loads(blob)
    sections = {n: container.Section(n, [bytes(c) for c in s.chunks], list(s.counts))
                for n, s in box.sections.items()}
    header = dict(box.header)
    edit(header, sections)
    return container.dumps(header, list(sections.values()))


def test_corrupt_rans_stream_with_valid_crc():
    def flip(header, secs):
        chunk = bytearray(secs["f32.e"].chunks[0])
        chunk[len(chunk) // 2] ^= 0xFF
        secs["f32.e"].chunks[0] = bytes(chunk)

    with pytest.raises(CorruptStreamError):
        nctk.decompress(_rewrite(_sample_blob(), flip))


@pytest.mark.parametrize("mutation", ["layout_json", "layout_count", "layout_scheme", "drop_section",
                                      "extra_section", "table_id", "counts", "shape", "size", "coder"])
def test_inconsistent_files_raise_format_error(mutation):
    def edit(header, secs):
        layout = json.loads(bytes(secs["layout"].chunks[0]))
        seg = layout["segments"][0]
        if mutation == "layout_json":
            secs["layout"].chunks[0] = b"{not json"
            return
        if mutation == "layout_count":
            seg[3] += 1
        elif mutation == "layout_scheme":
            seg[1] = "f128"
        elif mutation == "drop_section":
            del secs["planes"]
        elif mutation == "extra_section":
            secs["bonus"] = container.Section("bonus", [b"x"], [1])
        elif mutation == "table_id":
            seg[4][0] = 7
        elif mutation == "counts":
            secs["f32.e"].counts[0] += 1
        elif mutation == "shape":
            header["array"] = {**header["array"], "shape": [3]}
        elif mutation == "size":
            header["original_size"] += 4
        elif mutation == "coder":
            header["coder"] = {**header["coder"], "lanes": 0}
        secs["layout"].chunks[0] = json.dumps(layout).encode()

    with pytest.raises(FormatError):
        nctk.decompress(_rewrite(_sample_blob(), edit))


def test_corrupt_decodes_never_return_garbage():
    """Every single-byte change of a small file is detected."""
    blob = nctk.compress(np.arange(64, dtype=np.int16) * 3)
    for pos in range(0, len(blob), 7):
        bad = bytearray(blob)
        bad[pos] ^= 0x01
        with pytest.raises(FormatError):
            nctk.decompress(bytes(bad))


def test_formats_segments_tile_the_file():
    data = st_save_numpy({"a": np.ones(3, np.float32), "b": np.zeros(2, np.int64)})
    segs, _ = formats.parse_safetensors(data)
    assert segs[0].start == 0 and segs[-1].end == len(data)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:], strict=False))
