"""nctk.rd's tensor side: the Tensor value type, the tensor baselines, tensor files and one item's measurement."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np
import pytest

from nctk.entropy.errors import CodecError
from nctk.rd.baselines import available_ids, get
from nctk.rd.baselines.tensors import (
    DTYPES,
    TENSOR_BASELINES,
    BaseTensorCodec,
    Tensor,
    TensorCodec,
    error_bound,
)
from nctk.rd.tensor_files import load, probe
from nctk.rd.tensor_measure import LOSSY_KEYS, measure_tensors

IDS = ["zstd-3", "zstd-19", "zipnn", "pcodec", "blosc2", "tensor-lossless", "tensor-bounded", "zfp-accuracy",
       "zfp-rate", "sz3"]
AVAILABLE = available_ids("tensor")
LOSSLESS = [i for i in AVAILABLE if TENSOR_BASELINES[i].lossless]
LOSSY = [i for i in AVAILABLE if not TENSOR_BASELINES[i].lossless]
BOUNDED = [i for i in ("zfp-accuracy", "sz3") if i in AVAILABLE]  # the codecs that promise an error bound


def needs(codec_id: str) -> TensorCodec:
    """The codec, or a skip naming the package it needs (the only reason one is missing is its library)."""
    if codec_id not in AVAILABLE:
        pytest.skip(f"{codec_id} needs {TENSOR_BASELINES[codec_id].requires}")
    return TENSOR_BASELINES[codec_id]


def weights(shape: tuple[int, ...], seed: int, scale: float = 0.05) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32)


def smooth(h: int = 64, w: int = 80) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return (np.sin(x / 7.0) * np.cos(y / 11.0) + 0.01 * x).astype(np.float32)


@pytest.fixture(scope="module")
def tensors() -> dict[str, Tensor]:
    w = weights((48, 96), 0)
    ints = np.random.default_rng(1).integers(-1000, 1000, (17, 23)).astype(np.int64)
    return {
        "f32": Tensor("layer.weight", "F32", w.shape, w),
        "bf16": Tensor.from_float32("layer.weight.bf16", "BF16", weights((40, 64), 2)),
        "f16": Tensor.from_float32("layer.weight.f16", "F16", weights((40, 64), 3)),
        "f64": Tensor("double", "F64", (30, 20), np.random.default_rng(4).normal(size=(30, 20))),
        "i64": Tensor("position_ids", "I64", ints.shape, ints),
        "smooth": Tensor("field", "F32", (64, 80), smooth()),
    }


# ------------------------------------------------------------------------------------------------- Tensor

def test_bf16_rounds_to_nearest_even_like_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
    vals = bits.view(np.float32)
    vals = np.concatenate([vals[np.isfinite(vals)], np.float32([1 + 2**-8, 1 + 3 * 2**-8, -0.0, 3.4e38, np.inf])])
    t = Tensor.from_float32("x", "BF16", vals)
    expect = torch.from_numpy(vals).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(t.data, expect)
    assert t.data[-5] == 0x3F80 and t.data[-4] == 0x3F82  # the ties go to the even neighbour
    assert np.array_equal(t.as_float32(), torch.from_numpy(expect.view(np.int16)).view(torch.bfloat16).float().numpy())
    nan = Tensor.from_float32("n", "BF16", np.float32([np.nan, -np.nan]))
    assert np.isnan(nan.as_float32()).all()


def test_tensor_checks_its_fields():
    assert Tensor.from_float32("h", "F16", np.float32([1e5, 0.1])).data.dtype == np.float16
    assert np.isinf(Tensor.from_float32("h", "F16", np.float32([1e5])).as_float32()[0])  # past float16's range
    with pytest.raises(CodecError, match="unknown dtype"):
        Tensor("x", "F128", (1,), np.zeros(1))
    with pytest.raises(CodecError, match="needs a float32 array"):
        Tensor("x", "F32", (2,), np.zeros(2))  # float64 data for an F32 tensor
    with pytest.raises(CodecError, match="needs a"):
        Tensor("x", "F32", (3,), np.zeros(2, np.float32))
    with pytest.raises(CodecError, match="only floating-point"):
        Tensor("x", "I32", (2,), np.zeros(2, np.int32)).as_float32()
    with pytest.raises(CodecError, match="from_float32 makes floating-point"):
        Tensor.from_float32("x", "I32", np.zeros(2, np.float32))


# ------------------------------------------------------------------------------------------------ registry

def test_registry_lists_every_codec_with_a_sane_quality_sweep():
    assert list(TENSOR_BASELINES) == IDS
    for cid, c in TENSOR_BASELINES.items():
        assert isinstance(c, TensorCodec) and c.id == cid and c.modality == "tensor"
        lo, hi = c.quality_range
        assert list(c.qualities) == sorted(set(c.qualities)) and lo <= c.qualities[0] and c.qualities[-1] <= hi
        assert c.dtypes <= set(DTYPES)
        if c.lossless:
            assert c.qualities == (0,) and c.quality_range == (0, 0)
        else:
            assert not any(d.startswith(("I", "U", "BOOL")) for d in c.dtypes)
    for cid in AVAILABLE:
        assert get(cid) is TENSOR_BASELINES[cid] and get(cid).version()


def test_get_names_what_can_run(monkeypatch):
    with pytest.raises(CodecError, match=r"unknown rd codec 'gzip'; available: .*zstd-3"):
        get("gzip")
    missing = BaseTensorCodec("x-missing", "test", True, (0,), (0, 0), "the no_such_module package",
                              ("no_such_module_here",), frozenset({"F32"}))
    from nctk.rd.baselines import BASELINES

    monkeypatch.setitem(BASELINES, "x-missing", missing)
    assert "x-missing" not in available_ids()
    with pytest.raises(CodecError, match="'x-missing' is not available here \\(it needs the no_such_module"):
        get("x-missing")
    with pytest.raises(CodecError, match="not available here: it needs"):
        missing.encode(Tensor("w", "F32", (1,), np.zeros(1, np.float32)), 0)


# ------------------------------------------------------------------------------------------------- codecs

@pytest.mark.parametrize("codec_id", LOSSLESS)
def test_lossless_codecs_round_trip_every_dtype_they_take(codec_id, tensors):
    codec = needs(codec_id)
    extra = [Tensor("flags", "BOOL", (50,), np.arange(50) % 3 == 0),
             Tensor("bytes", "U8", (300,), np.arange(300).astype(np.uint8)),
             Tensor("scalar", "F32", (), np.array(2.5, np.float32)),
             Tensor("nan", "F32", (4,), np.float32([np.nan, -0.0, np.inf, 1])),
             Tensor("empty", "F32", (0, 3), np.zeros((0, 3), np.float32))]
    coded = 0
    for t in [*tensors.values(), *extra]:
        if t.dtype not in codec.dtypes:
            with pytest.raises(CodecError, match=f"does not take {t.dtype} tensors"):
                codec.encode(t, 0)
            continue
        data = codec.encode(t, 0)
        back = codec.decode(data, t)
        assert (back.name, back.dtype, back.shape) == (t.name, t.dtype, t.shape)
        assert back.data.tobytes() == t.data.tobytes(), t.name
        coded += 1
    assert coded >= 4
    assert len(codec.encode(tensors["smooth"], 0)) < tensors["smooth"].nbytes


@pytest.mark.parametrize("codec_id", BOUNDED)
def test_bounded_codecs_keep_the_error_within_two_to_the_minus_q_of_the_range(codec_id, tensors):
    codec = needs(codec_id)
    sizes = {}
    for key in ("f32", "smooth", "f64"):
        t = tensors[key]
        x = t.data.astype(np.float64)
        for q in (2, 6, 10, 14, 18):
            data = codec.encode(t, q)
            y = codec.decode(data, t).data.astype(np.float64)
            bound = error_bound(t, q)
            assert bound == math.ldexp(float(x.max() - x.min()), -q)
            assert np.max(np.abs(x - y)) <= bound, (key, q)
            sizes[key, q] = len(data)
        rates = [sizes[key, q] for q in (2, 6, 10, 14, 18)]
        assert rates == sorted(rates) and rates[0] < rates[-1], (key, rates)  # a looser bound costs fewer bytes
    assert sizes["smooth", 10] < sizes["f32", 10] * tensors["smooth"].size / tensors["f32"].size  # smooth: cheaper


@pytest.mark.parametrize("codec_id", BOUNDED)
def test_half_precision_through_bounded_codecs_adds_at_most_half_an_ulp(codec_id, tensors):
    codec = needs(codec_id)
    for key, ulp_bits in (("bf16", 8), ("f16", 11)):
        t = tensors[key]
        x = t.as_float32().astype(np.float64)
        y = codec.decode(codec.encode(t, 8), t).as_float32().astype(np.float64)
        half_ulp = np.ldexp(np.abs(x), -ulp_bits)  # half a unit in the last place of |x| (or a bit more)
        assert np.all(np.abs(x - y) <= error_bound(t, 8) + half_ulp + 2**-24), key


@pytest.mark.parametrize("codec_id", BOUNDED)
def test_constant_tensors_come_back_exactly(codec_id):
    codec = needs(codec_id)
    for value in (0.0, 0.75):
        t = Tensor("c", "F32", (16, 16), np.full((16, 16), value, np.float32))
        assert error_bound(t, 10) == 0
        assert np.array_equal(codec.decode(codec.encode(t, 10), t).data, t.data)


def test_zfp_rate_spends_the_bits_it_is_given(tensors):
    codec = needs("zfp-rate")
    t = tensors["smooth"]
    errors = []
    for q in (2, 4, 8, 16):
        data = codec.encode(t, q)
        assert q <= 8 * len(data) / t.size <= q + 0.2  # 12 header bytes on 5120 values
        errors.append(float(np.max(np.abs(codec.decode(data, t).data - t.data))))
    assert errors == sorted(errors, reverse=True)
    bias = Tensor("bias", "F32", (1, 384), weights((1, 384), 11))  # a 1-D grid: zfp needs 3 bits per value there
    for q in (1, 2, 3):
        data = codec.encode(bias, q)
        assert 3 <= 8 * len(data) / bias.size <= 3.5  # and the 12-byte header on 384 values
        assert codec.decode(data, bias).shape == (1, 384)


@pytest.mark.parametrize("codec_id", [*LOSSLESS, *LOSSY])
def test_bad_qualities_and_inputs_are_refused(codec_id, tensors):
    codec = needs(codec_id)
    lo, hi = codec.quality_range
    for q in (lo - 1, hi + 1, 2.5, True, "3"):
        with pytest.raises(CodecError, match=f"{codec_id}: quality must be an integer in"):
            codec.encode(tensors["f32"], q)
    with pytest.raises(CodecError, match="must be an nctk.rd.baselines.tensors.Tensor"):
        codec.encode(tensors["f32"].data, codec.qualities[0])
    if not codec.lossless:
        with pytest.raises(CodecError, match=f"{codec_id} does not take I64 tensors"):
            codec.encode(tensors["i64"], codec.qualities[0])
        nan = Tensor("n", "F32", (3,), np.float32([1, np.nan, 2]))
        with pytest.raises(CodecError, match="holds NaN or infinity"):
            codec.encode(nan, codec.qualities[0])


def test_decoding_damaged_bytes_is_a_codec_error(tensors):
    t = tensors["f32"]
    for cid in ("zstd-3", "pcodec", "sz3", "blosc2"):
        codec = needs(cid)
        data = codec.encode(t, codec.qualities[0])
        with pytest.raises(CodecError, match=f"{cid}"):
            codec.decode(data[: len(data) // 3], t)


# ------------------------------------------------------------------------------------------------ measure

def test_measure_lossless_reports_rate_only_and_stores_untaken_tensors_raw(tensors):
    items = [tensors[k] for k in ("f32", "bf16", "i64", "smooth")]
    payload = sum(t.nbytes for t in items)
    for cid in ("zstd-3", "zipnn"):
        m = measure_tensors(needs(cid), items, 0)
        assert m["values"] == sum(t.size for t in items) and m["original_bytes"] == payload
        assert m["bits_per_value"] == pytest.approx(8 * m["bytes"] / m["values"])
        assert m["ratio"] == pytest.approx(m["bytes"] / payload) and m["ratio"] < 1
        assert m["encoding_time"] > 0 and m["decoding_time"] > 0
        assert not set(LOSSY_KEYS) & set(m)
        assert m["raw_tensors"] == (1 if cid == "zipnn" else 0)  # ZipNN takes no integer tensors


def test_measure_lossy_aggregates_the_whole_file(tensors):
    codec = needs("sz3")
    items = [tensors["f32"], tensors["smooth"], tensors["i64"]]
    m = measure_tensors(codec, items, 8)
    xs = [t.data.astype(np.float64) for t in items[:2]]
    ys = [codec.decode(codec.encode(t, 8), t).data.astype(np.float64) for t in items[:2]]  # SZ3 is deterministic
    err = np.concatenate([(x - y).ravel() for x, y in zip(xs, ys, strict=True)])
    ref = np.concatenate([x.ravel() for x in xs])
    assert m["raw_tensors"] == 1 and m["tensors"] == 3
    assert m["max-abs-error"] == pytest.approx(np.abs(err).max())
    assert m["rel-frobenius"] == pytest.approx(np.linalg.norm(err) / np.linalg.norm(ref))
    peak = ref.max() - ref.min()
    assert m["psnr-range"] == pytest.approx(10 * np.log10(peak**2 / np.mean(err**2)))
    with pytest.raises(CodecError, match="takes none of these tensors"):
        measure_tensors(codec, [tensors["i64"]], 8)
    with pytest.raises(CodecError, match="at least one non-empty tensor"):
        measure_tensors(codec, [], 8)


class FlippingCodec(BaseTensorCodec):
    """A broken lossless codec: it flips the lowest bit of the last byte."""

    def _versions(self) -> list[str]:
        return ["test"]

    def _encode(self, t: Tensor, quality: int) -> bytes:
        raw = bytearray(t.data.tobytes())
        raw[-1] ^= 1
        return bytes(raw)

    def _decode(self, data: bytes, like: Tensor) -> Tensor:
        return Tensor(like.name, like.dtype, like.shape, np.frombuffer(data, like.data.dtype).reshape(like.shape))


def test_measure_catches_a_lossless_codec_that_is_not_exact(tensors):
    codec = FlippingCodec("flip", "broken", True, (0,), (0, 0), "nothing", (), frozenset({"F32"}))
    big = Tensor("big", "F32", (5000,), weights((5000,), 9))  # larger than the warm-up slice
    with pytest.raises(CodecError, match="codec flip did not round-trip tensor 'big' exactly"):
        measure_tensors(codec, [big], 0)


# -------------------------------------------------------------------------------------------------- files

def test_safetensors_files_load_with_their_dtypes(tmp_path, tensors):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"a.weight": tensors["f32"].data, "ids": tensors["i64"].data, "h": tensors["f16"].data,
               "empty": np.zeros((0, 4), np.float32)}, str(path))
    assert probe(path) == {"tensors": 3, "values": sum(tensors[k].size for k in ("f32", "i64", "f16")),
                           "bytes": sum(tensors[k].nbytes for k in ("f32", "i64", "f16")), "skipped": 1}
    got = {t.name: t for t in load(path)}
    assert set(got) == {"a.weight", "ids", "h"}
    for name, key in (("a.weight", "f32"), ("ids", "i64"), ("h", "f16")):
        assert got[name].dtype == tensors[key].dtype and np.array_equal(got[name].data, tensors[key].data)


def test_bf16_safetensors_written_by_torch_load_bit_for_bit(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    w = torch.randn(33, 17).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    save_file({"w": w, "b": torch.randn(5, dtype=torch.float16)}, str(path))
    got = {t.name: t for t in load(path)}
    assert got["w"].dtype == "BF16" and got["w"].shape == (33, 17)
    assert np.array_equal(got["w"].as_float32(), w.float().numpy())
    assert got["b"].dtype == "F16"
    assert probe(path)["bytes"] == 33 * 17 * 2 + 5 * 2


def test_npy_files_load_in_c_order_and_native_bytes(tmp_path):
    x = np.asfortranarray(weights((6, 7), 10).astype(">f4"))  # big-endian, Fortran-ordered
    path = tmp_path / "emb.npy"
    np.save(path, x)
    (t,) = load(path)
    assert (t.name, t.dtype, t.shape) == ("emb", "F32", (6, 7)) and np.array_equal(t.data, x)
    assert probe(path) == {"tensors": 1, "values": 42, "bytes": 168, "skipped": 0}


def test_torch_state_dicts_are_flattened_with_dotted_names(tmp_path):
    torch = pytest.importorskip("torch")
    shared = torch.randn(8, 4)
    state = {"model": {"enc": {"w": shared, "b": torch.zeros(4, dtype=torch.bfloat16)},
                       "head": shared, "layers": [torch.arange(5), torch.ones(2, 2, dtype=torch.float16)]},
             "step": 7, "name": "run", "empty": torch.zeros(0)}
    path = tmp_path / "ckpt.pt"
    torch.save(state, path)
    got = {t.name: t for t in load(path)}
    assert list(got) == ["model.enc.w", "model.enc.b", "model.layers.0", "model.layers.1"]
    assert got["model.enc.b"].dtype == "BF16" and got["model.layers.0"].dtype == "I64"
    assert np.array_equal(got["model.enc.w"].data, shared.numpy())
    # skipped: the tied "head", "step", "name" and the empty tensor
    assert probe(path) == {"tensors": 4, "values": 32 + 4 + 5 + 4, "bytes": 128 + 8 + 40 + 8, "skipped": 4}
    bare = tmp_path / "vec.pth"
    torch.save(torch.ones(3), bare)
    assert [t.name for t in load(bare)] == ["vec"]


class NotAllowed:
    """A class torch.load(weights_only=True) must refuse to build."""


def test_files_that_are_not_tensors_raise_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    cases = {"notes.txt": b"hello, these are not tensors\n", "junk.bin": b"\x00\x01garbage" * 10,
             "short.safetensors": b"\x10"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    torch.save({"obj": NotAllowed()}, tmp_path / "evil.pt")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"x": 1}))
    torch.save({"n": 3}, tmp_path / "none.pt")
    hdr = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}}'
    (tmp_path / "bad.safetensors").write_bytes(len(hdr).to_bytes(8, "little") + hdr + bytes(16))
    names = [*cases, "objects.npy", "strings.npy", "evil.pt", "pickle.pt", "none.pt", "bad.safetensors", "gone.pt"]
    for name in names:
        for fn in (probe, load):
            with pytest.raises(CodecError, match="cannot read tensors from .*" + name) as e:
                fn(tmp_path / name)
            assert "\n" not in str(e.value), name


def test_tensor_modules_import_no_numpy():
    code = ("import sys, nctk.rd.baselines.tensors, nctk.rd.tensor_files, nctk.rd.tensor_measure\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'torch', 'zstandard', 'zfpy'}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert p.stdout.strip() == "[]"
