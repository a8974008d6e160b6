"""tensor-bounded: the error bound on every element, exact specials, exact layout, determinism, golden bytes,
hostile streams, bad arguments. Regenerate the golden files with ``python tests/test_tensor_bounded.py --write``
(only on purpose: a new codec version, documented in docs/FORMAT.md, with the old files still decoding)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import load as st_load_numpy
from safetensors.numpy import save as st_save_numpy
from safetensors.torch import load as st_load_torch
from safetensors.torch import save as st_save_torch

import nctk
from nctk.codec import registry
from nctk.codec.registry import Encoded
from nctk.codec.tensor import predictors as P
from nctk.codec.tensor import quantizer as Q
from nctk.codec.tensor.bounded import MIN_ELEMENTS, TensorBounded
from nctk.entropy import container
from nctk.entropy.errors import CodecError, FormatError, NctkError

GOLDEN = Path(__file__).with_name("golden")

# ------------------------------------------------------------------------------------------ helpers


def as_f64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().double().numpy()
    with np.errstate(invalid="ignore"):  # signalling NaNs
        return np.asarray(a, dtype=np.float64)


def bits(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]).numpy()
    return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")


def tiny(a) -> float:
    if isinstance(a, torch.Tensor):
        return float(torch.finfo(a.dtype).tiny)
    return float(np.finfo(a.dtype).tiny)


def assert_within(orig, out, bound: float) -> None:
    """Same type, dtype and shape; every finite value within ``bound`` (float64); NaN, +/-Inf, -0.0 and
    subnormals bit for bit."""
    assert type(out) is type(orig) and out.dtype == orig.dtype and tuple(out.shape) == tuple(orig.shape)
    x, y = as_f64(orig), as_f64(out)
    special = ~np.isfinite(x) | ((x == 0) & np.signbit(x)) | ((x != 0) & (np.abs(x) < tiny(orig)))
    assert (bits(orig)[special] == bits(out)[special]).all(), "special values must come back bit for bit"
    with np.errstate(invalid="ignore"):
        err = np.abs(y - x)
    assert (err[~special] <= bound).all(), f"max error {err[~special].max()} > bound {bound}"


def roundtrip(x, **kw):
    blob = nctk.compress(x, **kw)
    return blob, nctk.decompress(blob)


def rel_bound(x, rel: float) -> float:
    v = as_f64(x)
    v = v[np.isfinite(v)]
    return rel * (float(v.max()) - float(v.min())) if v.size else 0.0


def records(blob: bytes) -> list[dict]:
    box = container.loads(blob)
    if "tensors" not in box.sections:
        return []
    return json.loads(bytes(box.sections["tensors"].chunks[0]))["tensors"]


def smooth(rows: int, cols: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    i, j = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    f = np.sin(2 * np.pi * (3 * j + 2 * i)) + 0.5 * np.cos(2 * np.pi * (5 * j - 4 * i) + 1)
    return f + np.random.default_rng(seed).normal(0, noise, f.shape)


# ---------------------------------------------------------------------------------- the bound, property

BITS_SMOOTH = 2.5  # bits per value of a smooth 300 x 300 field with noise of half a step (measured 2.07)
SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-310, -4e-320, 1e-40, -1e-42, 3e-6, 1e30, -1e30, 6e4, 65504.0]
BOUNDS = [1e-9, 1e-6, 1e-4, 1e-3, 0.05, 1.0, 1e3]


@st.composite
def adversarial(draw, dtype):
    """Float data with a random scale, then specials, cell midpoints and neighbours of values at random spots."""
    n = draw(st.integers(MIN_ELEMENTS, 400))
    scale = draw(st.sampled_from([1e-5, 1e-2, 1.0, 1e2, 1e5]))
    x = draw(hnp.arrays(np.float64, n, elements=st.floats(-1, 1))) * scale
    b = draw(st.sampled_from(BOUNDS))
    for _ in range(draw(st.integers(0, 12))):
        i = draw(st.integers(0, n - 1))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            x[i] = draw(st.sampled_from(SPECIALS))
        elif kind == 1:  # exactly half a step away from an index: the rounding worst case
            x[i] = (draw(st.integers(-1000, 1000)) + 0.5) * Q.step_for(b)
        else:
            x[i] = np.nextafter(x[draw(st.integers(0, n - 1))], np.inf)
    with np.errstate(over="ignore"):
        arr = x.astype(dtype)
    cols = draw(st.sampled_from([1, 2, 7, n]))
    return arr[: n // cols * cols].reshape(-1, cols), b


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from([np.float16, np.float32, np.float64]).flatmap(adversarial))
def test_bound_holds_on_every_element_numpy(case):
    x, b = case
    _, y = roundtrip(x, max_error=b)
    assert_within(x, y, b)


@settings(max_examples=40, deadline=None)
@given(case=adversarial(np.float32), dtype=st.sampled_from([torch.bfloat16, torch.float16, torch.float32]))
def test_bound_holds_on_every_element_torch(case, dtype):
    x, b = case
    t = torch.from_numpy(x).to(dtype)
    _, y = roundtrip(t, max_error=b)
    assert_within(t, y, b)


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from([np.float16, np.float32, np.float64]).flatmap(adversarial),
       rel=st.sampled_from([1e-7, 1e-4, 1e-2, 0.3, 5.0]))
def test_relative_bound(case, rel):
    x, _ = case
    blob, y = roundtrip(x, rel_error=rel)
    assert_within(x, y, rel_bound(x, rel))
    assert nctk.info(blob)["bound"] == {"rel_error": rel}


@pytest.mark.parametrize("q", [1, 4.5, 12, 24])
def test_quality_means_relative_bound_two_to_minus_q(q):
    x = smooth(40, 50, 0.01).astype(np.float32)
    blob, y = roundtrip(x, codec="tensor-bounded", quality=q)
    assert_within(x, y, rel_bound(x, 2.0**-q))
    assert nctk.info(blob)["bound"] == {"quality": q}


def test_huge_dynamic_range_escapes_to_exact_values():
    rng = np.random.default_rng(1)
    x = (rng.uniform(-1, 1, 5000) * 10.0 ** rng.integers(-30, 31, 5000)).astype(np.float32)
    x[:4] = [1e30, -1e30, 3.4e38, 1e-3]
    _, y = roundtrip(x, max_error=1e-3)
    assert_within(x, y, 1e-3)
    big = np.abs(x) > Q.Q_MAX * Q.step_for(1e-3)
    assert (y[big] == x[big]).all()  # beyond +/-2**27 indices: stored exactly


def test_specials_kept_bit_for_bit():
    x = smooth(30, 40).astype(np.float32)
    x[0, :8] = [np.nan, np.inf, -np.inf, -0.0, 1e-42, -1e-40, 0.0, 5.0]
    x.view(np.uint32)[1, 0] = 0x7FC0_1234  # a NaN with a payload
    x.view(np.uint32)[1, 1] = 0xFF80_0001  # a negative signalling NaN
    _, y = roundtrip(x, max_error=1e-2)
    assert_within(x, y, 1e-2)
    assert (y.view(np.uint32)[:2, :2] == x.view(np.uint32)[:2, :2]).all()
    assert np.signbit(y[0, 3]) and y[0, 6] == 0 and not np.signbit(y[0, 6])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_bound_near_the_dtype_precision(dtype):
    t = torch.from_numpy(smooth(64, 64, 0.1)).to(dtype)
    for b in (1e-2, 4e-3, 1e-3, 1e-4):
        _, y = roundtrip(t, max_error=b)
        assert_within(t, y, b)


def test_bound_below_dtype_precision_stores_the_tensor_exactly():
    x = np.random.default_rng(2).normal(0, 1, (64, 64)).astype(np.float16)
    for b in (1e-9, 1e-5):  # indices beyond the range; a step below the dtype's spacing
        blob, y = roundtrip(x, max_error=b)
        assert not records(blob) and np.array_equal(bits(y), bits(x))
        assert len(blob) < len(nctk.compress(x)) + 600  # the lossless codec's size plus this codec's header


@pytest.mark.parametrize("x", [np.full(1000, 2.5, np.float32), np.full(1000, np.nan, np.float32),
                               np.zeros(1000, np.float64)])
def test_zero_value_range_comes_back_exactly(x):
    _, y = roundtrip(x, rel_error=1e-3)
    assert np.array_equal(bits(y), bits(x))


def test_extreme_bounds():
    x = smooth(32, 32).astype(np.float64)
    for b in (1e-300, 1e300, 1.7e308):
        _, y = roundtrip(x, max_error=b)
        assert_within(x, y, b)


# ---------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("shape", [(), (0,), (0, 5), (5,), (63,), (64,), (1, 300), (300, 1), (7, 11, 13), (2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", ["<f2", "<f4", ">f4", "<f8", ">f8"])
def test_arrays_keep_dtype_shape_and_order(shape, dtype):
    x = np.asarray(np.random.default_rng(3).normal(0, 1, shape)).astype(dtype)
    for arr in (x, np.asfortranarray(x)):
        blob, y = roundtrip(arr, max_error=1e-3)
        assert_within(arr, y, 1e-3)
        fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
        assert y.flags.f_contiguous if fortran else y.flags.c_contiguous
        h = nctk.info(blob)
        assert h["codec"] == "tensor-bounded" and h["kind"] == "array" and h["original_size"] == arr.nbytes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_tensors(dtype):
    t = torch.from_numpy(smooth(50, 70, 0.01)).to(dtype)
    blob, y = roundtrip(t, max_error=1e-2)
    assert_within(t, y, 1e-2)
    assert nctk.info(blob)["kind"] == "tensor"


def test_predictors_are_chosen_by_content():
    noise = np.random.default_rng(4).normal(0, 1, (200, 300)).astype(np.float32)
    assert records(nctk.compress(noise, max_error=1e-2))[0]["pred"] == "none"
    field = smooth(300, 300, 0.001).astype(np.float32)
    blob = nctk.compress(field, max_error=1e-3)
    rec = records(blob)[0]
    assert rec["pred"] == "interp" and rec["weights"]
    assert len(blob) * 8 / field.size < BITS_SMOOTH


def test_large_tensor_spanning_many_chunks():
    x = smooth(300, 400, 0.01).astype(np.float32)
    codec = TensorBounded(chunk_size=5000)
    enc = codec.encode(x, max_error=1e-3)
    blob = container.dumps(enc.header, enc.sections)
    assert len(container.loads(blob).sections["indices"].chunks) == 24
    assert_within(x, nctk.decompress(blob), 1e-3)


def npy(arr: np.ndarray, **kw) -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array(f, arr, **kw)
    return f.getvalue()


@pytest.mark.parametrize("arr", [smooth(30, 50).astype(np.float32), np.asfortranarray(smooth(30, 50)),
                                 smooth(30, 50).astype(">f2"), np.float32(1.5) * np.ones(3, np.float32)])
def test_npy_files(arr, tmp_path):
    data = npy(arr)
    path = tmp_path / "x.npy"
    path.write_bytes(data)
    blob = nctk.compress(path, max_error=1e-3)
    name, out = nctk.decompress_file(blob)
    assert name == "x.npy" and len(out) == len(data)
    hlen = len(data) - arr.nbytes
    assert out[:hlen] == data[:hlen]  # the .npy header, byte for byte
    assert_within(arr, np.load(io.BytesIO(bytes(out))), 1e-3)
    assert nctk.info(blob)["format"] == "npy"


def mixed_safetensors() -> bytes:
    rng = np.random.default_rng(23)
    ti, tj = np.mgrid[0:32, 0:40]
    tensors = {
        "noise": torch.tensor(rng.normal(0, 0.05, (48, 64)), dtype=torch.float16),
        "ramp": torch.tensor(0.01 * ti + 0.02 * tj + rng.normal(0, 1e-4, (32, 40)), dtype=torch.float32),
        "bias": torch.arange(10, dtype=torch.float32) / 7,
        "ids": torch.arange(100, dtype=torch.int64),
        "mask": torch.arange(300) % 3 == 0,
        "emb": torch.tensor(np.sin(np.arange(2000) / 50.0).reshape(20, 100), dtype=torch.bfloat16),
        "f64": torch.tensor(np.outer(np.linspace(0, 1, 20), np.linspace(-1, 1, 30)) ** 3, dtype=torch.float64),
    }
    return st_save_torch(tensors, metadata={"golden": "bounded"})


def test_safetensors_round_trip_keeps_keys_dtypes_shapes_metadata_and_exact_tensors():
    data = mixed_safetensors()
    blob = nctk.compress(data, name="m.safetensors", max_error=1e-3)
    name, out = nctk.decompress_file(blob)
    assert name == "m.safetensors" and len(out) == len(data)
    (n,) = struct.unpack_from("<Q", data)
    assert out[: 8 + n] == data[: 8 + n]  # header with metadata, byte for byte
    a, b = st_load_torch(data), st_load_torch(bytes(out))
    assert a.keys() == b.keys()
    for k in a:
        if a[k].is_floating_point():
            assert_within(a[k], b[k], 1e-3)
        if not a[k].is_floating_point() or a[k].numel() < MIN_ELEMENTS:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k])
    assert sorted(r["scheme"] for r in records(blob)) == ["bf16", "f16", "f32", "f64"]
    assert nctk.info(blob)["format"] == "safetensors"


def test_safetensors_without_float_tensors_is_exact():
    data = st_save_numpy({"a": np.arange(1000, dtype=np.int32)})
    blob = nctk.compress(data, max_error=1e-3)
    assert nctk.decompress(blob) == data and not records(blob)


def test_checkpoint_via_compress_to(tmp_path):
    rng = np.random.default_rng(5)
    data = st_save_numpy({f"l{i}.w": rng.normal(0, 0.04, (96, 64)).astype(np.float32) for i in range(4)}
                         | {"pos": np.arange(64, dtype=np.int64)})
    with open(tmp_path / "out.nctk", "wb") as f:
        n = nctk.compress_to(data, f, max_error=1e-3, name="m.safetensors")
    blob = (tmp_path / "out.nctk").read_bytes()
    assert n == len(blob) == len(nctk.compress(data, max_error=1e-3, name="m.safetensors"))
    a, b = st_load_numpy(data), st_load_numpy(bytes(nctk.decompress(blob)))
    for k in a:
        if a[k].dtype.kind == "f":
            assert_within(a[k], b[k], 1e-3)
        else:
            assert np.array_equal(a[k], b[k])
    # order-0 entropy of the indices is 6.37 bits; headers, records and tables add ~0.85 on this small file
    assert len(blob) * 8 / (4 * 96 * 64) < 7.5


# ------------------------------------------------------------------------------ parts and determinism


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(1, 40), cols=st.integers(1, 40), kind=st.sampled_from(P.PREDICTORS), data=st.data())
def test_predictors_invert_exactly(rows, cols, kind, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    q = rng.integers(-P.Q_MAX if data.draw(st.booleans()) else -50, P.Q_MAX, (rows, cols))
    weights = None
    if kind == "interp":
        weights = {}
        for p, (_, k) in enumerate(P.passes(rows, cols)):
            if data.draw(st.booleans()):
                taps = P.STENCILS[(k, data.draw(st.sampled_from([1, 2])))]
                weights[p] = [(di, dj, int(w)) for (di, dj), w in
                              zip(taps, rng.integers(-P.MAX_WEIGHT, P.MAX_WEIGHT, len(taps)), strict=True)]
        assert P.check_weights(P.weights_json(weights), rows, cols) == weights
    r = P.residuals(q, kind, weights)
    assert r.dtype == np.int32 and r.size == q.size and np.abs(r.astype(np.int64)).max() < 2**30
    assert np.array_equal(P.reconstruct(r, rows, cols, kind, weights), q)


def test_bfloat16_rounding_matches_torch():
    rng = np.random.default_rng(6)
    v = np.concatenate([rng.normal(0, 1, 20000) * 10.0 ** rng.integers(-30, 30, 20000),
                        (np.arange(-3000, 3000) + 0.5) * 2.0**-7])  # exact ties of bfloat16 near 1
    ours = Q.from_float64(v, "bf16")
    theirs = torch.from_numpy(v.astype(np.float32)).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(Q.to_float64(ours, "bf16"), torch.from_numpy(theirs.view(np.int16)).view(
        torch.bfloat16).double().numpy())


def test_encoding_is_deterministic():
    x = smooth(120, 90, 0.01).astype(np.float32)
    assert nctk.compress(x, max_error=1e-3) == nctk.compress(x.copy(), max_error=1e-3)


THREAD_PROBE = """
import hashlib, sys, numpy as np, nctk
from nctk.entropy import rans_numba
rans_numba._aot_module = lambda n: None  # the parallel JIT kernels, whatever the job size
from nctk.codec.tensor.bounded import TensorBounded
from nctk.entropy import container
i, j = np.mgrid[0:400, 0:500] / 100.0
x = (np.sin(i) * np.cos(j) + np.random.default_rng(0).normal(0, .01, i.shape)).astype(np.float32)
enc = TensorBounded(chunk_size=4096).encode(x, max_error=1e-3)
blob = container.dumps(enc.header, enc.sections)
y = nctk.decompress(blob)
print(hashlib.sha256(blob).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest())
"""


def test_same_bytes_across_thread_counts():
    out = set()
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        p = subprocess.run([sys.executable, "-c", THREAD_PROBE], env=env, capture_output=True, text=True,
                           timeout=300, check=True)
        out.add(p.stdout.strip())
    assert len(out) == 1


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("quality", [14, 20, 24])
def test_tight_bounds_store_low_bits_raw_and_stay_below_exact_size(dtype, quality):
    """Bounds near the dtype's precision spread residuals over millions of values: their low bits go raw
    (version 2) instead of escapes, so the file stays near the noise's own entropy, never above raw size."""
    x = np.random.default_rng(quality).normal(0, 0.05, (300, 400)).astype(dtype)
    blob = nctk.compress(x, codec="tensor-bounded", quality=quality)
    assert_within(x, nctk.decompress(blob), 2.0**-quality * float(np.ptp(x.astype(np.float64))))
    assert len(blob) < 0.9 * x.nbytes or len(blob) < len(nctk.compress(x)) * 1.02
    recs = records(blob)
    if recs and np.dtype(dtype).itemsize >= 4:
        assert recs[0]["shift"] > 0 and container.loads(blob).header["codec_version"] == 2


def test_low_bits_of_large_tensors_come_in_chunks_of_chunk_size_values():
    x = np.random.default_rng(5).normal(0, 1, (50, 100)).astype(np.float32)
    codec = TensorBounded(chunk_size=1000)
    enc = codec.encode(x, quality=20)
    low = next(s for s in enc.sections if s.name == "low")
    assert list(low.counts) == [1000] * 5 and enc.header["codec_version"] == 2
    assert_within(x, codec.decode(enc), 2.0**-20 * float(np.ptp(x.astype(np.float64))))
    rechunked = [container.Section(s.name, [s.chunks[0] + s.chunks[1], *s.chunks[2:]], [2000, *s.counts[2:]])
                 if s.name == "low" else s for s in enc.sections]
    with pytest.raises(FormatError, match="low section"):
        codec.decode(Encoded(enc.header, rechunked))


# ------------------------------------------------------------------------------------------- golden


def golden_array() -> np.ndarray:
    i, j = np.mgrid[0:64, 0:96]
    f = (np.sin(i / 9.0) * np.cos(j / 13.0) + 0.001 * ((i * 7 + j * 13) % 17)).astype(np.float32)
    f[3, :5] = [np.nan, -np.inf, -0.0, 1e-42, 1e30]
    return f


GOLDEN_CASES = {
    "bounded_float32_64x96.nctk": lambda: nctk.compress(golden_array(), max_error=1e-3),
    "bounded_mixed.safetensors.nctk": lambda: nctk.compress(mixed_safetensors(), name="mixed.safetensors",
                                                            max_error=1e-3),
    "bounded_bf16_quality8.nctk": lambda: nctk.compress(torch.from_numpy(golden_array()).to(torch.bfloat16),
                                                        codec="tensor-bounded", quality=8),
    # a bound near float32 precision: residual low bits stored raw (version 2, record "shift")
    "bounded_float32_tight.nctk": lambda: nctk.compress(golden_array(), max_error=2e-7),
}
# files written by earlier encoders: they must keep decoding to exactly this (never regenerated)
LEGACY_DECODED = {
    "bounded_mixed_v1.safetensors.nctk": "1d38d39397e88b7e4686dbd992601bc1fe6f052b9b4e8ebb0a72197506f43b7b",
}
# sha256 of what each golden file decodes to: the decoder's reconstruction is pinned too
GOLDEN_DECODED = {
    "bounded_float32_64x96.nctk": "c5dc619049eddc3f600c932d3beb4392957bce85c055fb63613485171b27af3b",
    "bounded_mixed.safetensors.nctk": "1d38d39397e88b7e4686dbd992601bc1fe6f052b9b4e8ebb0a72197506f43b7b",
    "bounded_float32_tight.nctk": "b6c690d5a8318392ffe936d9e92366a6ff2ebfcef623ca96e95040aa3fb960ab",
    "bounded_bf16_quality8.nctk": "c9ab81e6d452f71090f447d5c6190b6099b5137c4d041b2d6ed2849f701b2103",
}


def decoded_digest(blob: bytes) -> str:
    out = nctk.decompress(blob)
    raw = bytes(out) if isinstance(out, bytearray) else bits(out).tobytes()
    return hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_bitstreams(name):
    golden = (GOLDEN / name).read_bytes()
    assert decoded_digest(golden) == GOLDEN_DECODED[name], "decoder output changed: see module docstring"
    assert GOLDEN_CASES[name]() == golden, "encoder output changed: see module docstring"


@pytest.mark.parametrize("name", sorted(LEGACY_DECODED))
def test_files_of_earlier_versions_keep_decoding(name):
    assert decoded_digest((GOLDEN / name).read_bytes()) == LEGACY_DECODED[name]


def test_golden_files_cover_every_predictor_dtype_and_version():
    recs = [r for name in GOLDEN_CASES for r in records((GOLDEN / name).read_bytes())]
    assert {r["pred"] for r in recs} == set(P.PREDICTORS)
    assert {r["scheme"] for r in recs} == set(Q.SCHEMES)
    assert any(r["pred"] == "interp" and r["weights"] for r in recs)
    assert any(r.get("shift", 0) > 0 for r in recs)
    versions = {container.loads((GOLDEN / n).read_bytes()).header["codec_version"]
                for n in [*GOLDEN_CASES, *LEGACY_DECODED]}
    assert versions == {1, 2}


def test_golden_float32_values():
    y = nctk.decompress((GOLDEN / "bounded_float32_64x96.nctk").read_bytes())
    assert_within(golden_array(), y, 1e-3)


# ------------------------------------------------------------------------------------- hostile input


def golden_blob() -> bytes:
    return (GOLDEN / "bounded_mixed.safetensors.nctk").read_bytes()


def test_truncated_and_flipped_streams_raise_format_errors():
    blob = golden_blob()
    for cut in list(range(0, 200, 7)) + list(range(200, len(blob), max(1, len(blob) // 97))):
        with pytest.raises(FormatError):
            nctk.decompress(blob[:cut])
    rng = np.random.default_rng(7)
    for pos in rng.integers(0, len(blob), 200):
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(FormatError):
            nctk.decompress(bytes(bad))


def rewrite(blob: bytes, header=None, sections=None) -> bytes:
    """Re-frame a file with a changed header or sections: valid CRCs, hostile content."""
    box = container.loads(blob)
    h = json.loads(json.dumps(box.header))
    secs = [container.Section(s.name, [bytes(c) for c in s.chunks], list(s.counts)) for s in box.sections.values()]
    if header:
        header(h)
    if sections:
        secs = sections(secs)
    return container.dumps(h, secs)


def with_records(change):
    def edit(secs):
        for s in secs:
            if s.name == "tensors":
                obj = json.loads(s.chunks[0])
                change(obj["tensors"])
                s.chunks[0] = json.dumps(obj).encode()
                s.counts[0] = len(obj["tensors"])
        return secs
    return edit


def _set(i, key, value):
    def change(recs):
        recs[i][key] = value
    return change


HOSTILE = {
    "step zero": with_records(_set(0, "step", (0.0).hex())),
    "step nan": with_records(_set(0, "step", "nan")),
    "step number": with_records(_set(0, "step", 0.002)),
    "step huge": with_records(_set(0, "step", (2.0**1000).hex())),
    "unknown predictor": with_records(_set(0, "pred", "cubic")),
    "bad scheme": with_records(_set(0, "scheme", "f8")),
    "bad order": with_records(_set(0, "order", "|")),
    "rows zero": with_records(_set(0, "rows", 0)),
    "rows bool": with_records(_set(0, "rows", True)),
    "past the end": with_records(_set(0, "start", 10**9)),
    "negative start": with_records(_set(0, "start", -4)),
    "overlap": with_records(lambda r: r[1].update(start=r[0]["start"])),
    "more elements": with_records(lambda r: r[0].update(rows=r[0]["rows"] + 1)),
    "dropped record": with_records(lambda r: r.pop()),
    "no records": with_records(lambda r: r.clear()),
    "weights not list": with_records(lambda r: r[0].update(pred="interp", weights=5)),
    "weights odd di in A": with_records(lambda r: r[0].update(pred="interp", weights=[[0, [[1, 1, 4096]]]])),
    "weights far tap": with_records(lambda r: r[0].update(pred="interp", weights=[[1, [[9, 0, 4096]]]])),
    "weights huge": with_records(lambda r: r[0].update(pred="interp", weights=[[1, [[1, 0, 2**40]]]])),
    "weights pass order": with_records(lambda r: r[0].update(pred="interp", weights=[[1, [[1, 0, 1]]],
                                                                                     [1, [[1, 0, 1]]]])),
    "records not json": lambda secs: [container.Section(s.name, [b"{"], s.counts) if s.name == "tensors" else s
                                      for s in secs],
    "tables missing": lambda secs: [s for s in secs if s.name != "tables"],
    "indices missing": lambda secs: [s for s in secs if s.name != "indices"],
    "skeleton missing": lambda secs: [s for s in secs if not s.name.startswith("x.")],
    "extra section": lambda secs: [*secs, container.Section("extra", [b""], [0])],
    "indices rechunked": lambda secs: [container.Section(s.name, [s.chunks[0][:16], s.chunks[0][16:], *s.chunks[1:]],
                                                         [1, s.counts[0] - 1, *s.counts[1:]])
                                       if s.name == "indices" else s for s in secs],
    "tables swapped": lambda secs: [container.Section(s.name, s.chunks, [s.counts[0] + 1])
                                    if s.name == "tables" else s for s in secs],
    # version 2: raw low bits of the residuals (record 0 has shift 1, record 1 none, record 2 shift 3)
    "shift negative": with_records(_set(0, "shift", -1)),
    "shift too wide": with_records(_set(0, "shift", 31)),
    "shift bool": with_records(_set(0, "shift", True)),
    "shift string": with_records(_set(0, "shift", "1")),
    "shift dropped": with_records(lambda r: r[0].pop("shift")),
    "shift added": with_records(_set(1, "shift", 2)),
    "shift changed": with_records(_set(2, "shift", 5)),
    "low missing": lambda secs: [s for s in secs if s.name != "low"],
    "low chunk dropped": lambda secs: [container.Section(s.name, s.chunks[1:], s.counts[1:])
                                       if s.name == "low" else s for s in secs],
    "low chunk short": lambda secs: [container.Section(s.name, [s.chunks[0][:-1], *s.chunks[1:]], s.counts)
                                     if s.name == "low" else s for s in secs],
    "low count changed": lambda secs: [container.Section(s.name, s.chunks, [s.counts[0] + 1, *s.counts[1:]])
                                       if s.name == "low" else s for s in secs],
    "no shift but low": with_records(lambda r: [rec.update(shift=0) for rec in r]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_records_and_sections_raise_format_errors(case):
    with pytest.raises(FormatError):
        nctk.decompress(rewrite(golden_blob(), sections=HOSTILE[case]))


@pytest.mark.parametrize("change", [
    lambda h: h.pop("skeleton"),
    lambda h: h.update(skeleton=[]),
    lambda h: h["skeleton"].update(kind="array"),
    lambda h: h["skeleton"].update(codec="tensor-bounded"),
    lambda h: h.update(original_size=h["original_size"] + 1),
    lambda h: h.update(original_size="12"),
    lambda h: h.update(kind="image"),
    lambda h: h.update(codec_version=3),
    lambda h: h.update(codec_version=1),  # version 1 records carry no shift
    lambda h: h.update(codec_version="2"),
])
def test_hostile_headers_raise_format_errors(change):
    with pytest.raises(FormatError):
        nctk.decompress(rewrite(golden_blob(), header=change))


def test_records_pointing_elsewhere_decode_without_crashing():
    """Consistent but wrong records (another predictor, another step) decode to garbage, never crash."""
    for change in (_set(0, "pred", "lorenzo"), lambda r: r[0].update(pred="interp", weights=[]),
                   _set(1, "pred", "none"), _set(0, "step", (2.0**900).hex())):
        out = nctk.decompress(rewrite(golden_blob(), sections=with_records(change)))
        assert len(out) == len(mixed_safetensors())


# ------------------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("kw, match", [
    ({"max_error": 0}, "finite number > 0"),
    ({"max_error": -1e-3}, "finite number > 0"),
    ({"max_error": float("nan")}, "finite number > 0"),
    ({"max_error": float("inf")}, "finite number > 0"),
    ({"rel_error": 0.0}, "finite number > 0"),
    ({"rel_error": float("nan")}, "finite number > 0"),
    ({"max_error": "1e-3"}, "must be a number"),
    ({"max_error": True}, "must be a number"),
    ({"max_error": 1e-3, "rel_error": 1e-3}, "one error bound"),
    ({"max_error": 1e-3, "quality": 5}, "one error bound"),
    ({"codec": "tensor-bounded"}, "needs an error bound"),
    ({"codec": "tensor-bounded", "quality": 30}, "outside"),
    ({"codec": "tensor-bounded", "quality": 0}, "outside"),
    ({"codec": "tensor-lossless", "max_error": 1e-3}, "takes no max_error"),
])
def test_bad_bounds_give_one_clear_codec_error(kw, match):
    with pytest.raises(CodecError, match=match):
        nctk.compress(np.ones(100, np.float32), **kw)


@pytest.mark.parametrize("obj", [
    np.arange(100, dtype=np.int32), np.ones(100, bool), np.ones(100, np.complex64), np.ones(100, np.longdouble),
    np.zeros(100, dtype=[("a", "<f4")]), torch.arange(100), torch.ones(100, dtype=torch.complex64),
    npy(np.arange(100, dtype=np.int16)), b"plain text", np.float32(1.0),
])
def test_unsupported_inputs_give_one_clear_codec_error(obj):
    with pytest.raises(CodecError):
        nctk.compress(obj, max_error=1e-3)


def test_integer_tensor_error_names_the_lossless_codec():
    with pytest.raises(CodecError, match="tensor-lossless"):
        nctk.compress(np.arange(100), max_error=1e-3)


def test_catalogue_entry_and_selection():
    entry = {c["id"]: c for c in nctk.codecs()}["tensor-bounded"]
    assert entry["lossless"] is False and entry["quality_range"] == [1, 24] and entry["extensions"] == []
    c = registry.get("tensor-bounded")
    assert isinstance(c, registry.Codec) and not c.sniff(npy(np.ones(3, np.float32)), "x.npy")
    assert registry.for_input(npy(np.ones(3, np.float32)), "x.npy").id == "tensor-lossless"
    assert nctk.info(nctk.compress(np.ones(100, np.float32), rel_error=0.1))["codec"] == "tensor-bounded"
    assert nctk.info(nctk.compress(np.ones(100, np.float32)))["codec"] == "tensor-lossless"


def test_decode_refuses_another_codecs_header():
    enc = registry.get("tensor-lossless").encode(np.ones(10, np.float32))
    with pytest.raises(FormatError):
        TensorBounded().decode(Encoded(enc.header, enc.sections))
    with pytest.raises(NctkError):
        TensorBounded().decode(Encoded({**enc.header, "codec": "tensor-bounded"}, enc.sections))


if __name__ == "__main__" and "--write" in sys.argv:
    for name, make in GOLDEN_CASES.items():
        blob = make()
        (GOLDEN / name).write_bytes(blob)
        print(name, len(blob), decoded_digest(blob))
