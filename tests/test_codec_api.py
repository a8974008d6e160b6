"""The public API in codec/__init__.py and the registry: choosing codecs, headers, errors users see."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save_numpy

import nctk
from nctk.codec import registry
from nctk.codec.registry import Encoded, FileItem
from nctk.entropy import container
from nctk.entropy.coder import CODER_ID, CODER_VERSION
from nctk.entropy.errors import CodecError, FormatError, NctkError, NotNctkError, UnsupportedVersionError


def npy_bytes(arr: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


SAFETENSORS = st_save_numpy({"w": np.linspace(-1, 1, 1000, dtype=np.float32)})
NPY = npy_bytes(np.arange(1000, dtype=np.int32))


def test_codecs_lists_tensor_lossless():
    entries = {c["id"]: c for c in nctk.codecs()}
    c = entries["tensor-lossless"]
    assert c["version"] == 1 and c["modality"] == "tensor" and c["lossless"] is True
    assert c["quality_range"] is None
    assert c["extensions"] == [".safetensors", ".npy"]
    assert c["description"]
    assert set(c) == {"id", "version", "modality", "lossless", "quality_range", "extensions", "description"}


def test_registry_get_and_protocol():
    c = registry.get("tensor-lossless")
    assert isinstance(c, registry.Codec)
    assert c in registry.all_codecs()
    with pytest.raises(CodecError, match="tensor-lossless") as e:
        registry.get("jpeg-xl")
    assert "jpeg-xl" in str(e.value)
    with pytest.raises(CodecError, match="already registered"):
        registry.register(type(c)())


def test_unknown_codec_name_lists_known():
    with pytest.raises(CodecError) as e:
        nctk.compress(np.zeros(3), codec="zstd")
    assert "'zstd'" in str(e.value) and "tensor-lossless" in str(e.value)


def test_for_input_sniffs_content_before_extension():
    c = registry.get("tensor-lossless")
    assert registry.for_input(SAFETENSORS[:512], None) is c
    assert registry.for_input(NPY[:512], "misnamed.png") is c
    assert registry.for_input(b"", "model.safetensors") is c  # extension fallback
    assert registry.for_input(b"", "ARRAY.NPY") is c
    with pytest.raises(CodecError) as e:
        registry.for_input(b"plain text", "notes.foo")
    msg = str(e.value)
    assert "no codec handles 'notes.foo'" in msg and ".safetensors" in msg and ".npy" in msg
    with pytest.raises(CodecError, match="supported"):
        nctk.compress(b"plain text")


def test_sniffing_without_extension(tmp_path):
    path = tmp_path / "weights_without_extension"
    path.write_bytes(SAFETENSORS)
    blob = nctk.compress(path)
    assert nctk.decompress_file(blob) == ("weights_without_extension", SAFETENSORS)
    blob = nctk.compress(NPY)
    assert nctk.decompress_file(blob) == (None, NPY)
    assert nctk.info(blob)["format"] == "npy"


def test_compress_path_records_basename(tmp_path):
    path = tmp_path / "sub" / "model.safetensors"
    path.parent.mkdir()
    path.write_bytes(SAFETENSORS)
    for arg in (path, str(path)):
        blob = nctk.compress(arg)
        assert nctk.decompress(blob) == SAFETENSORS
        assert nctk.decompress_file(blob) == ("model.safetensors", SAFETENSORS)
    assert nctk.decompress_file(nctk.compress(path, name="renamed.safetensors"))[0] == "renamed.safetensors"
    with pytest.raises(OSError):
        nctk.compress(tmp_path / "missing.npy")


def test_bytes_with_name_and_forced_codec():
    blob = nctk.compress(bytearray(NPY), name="a.npy", codec="tensor-lossless")
    assert nctk.decompress_file(blob) == ("a.npy", NPY)


def test_header_has_the_common_keys():
    header, _ = container.read_header(nctk.compress(SAFETENSORS, name="m.safetensors"))
    assert header["codec"] == "tensor-lossless" and header["codec_version"] == 1
    assert header["coder"]["id"] == CODER_ID and header["coder"]["version"] == CODER_VERSION
    assert header["coder"]["lanes"] >= 1 and header["coder"]["chunk_size"] >= 1
    assert header["original_name"] == "m.safetensors" and header["kind"] == "file"
    assert nctk.info(nctk.compress(np.zeros(3)))["kind"] == "array"
    assert nctk.info(nctk.compress(torch.zeros(3)))["kind"] == "tensor"


def test_arrays_and_tensors_come_back_as_their_type():
    a = np.arange(6, dtype=np.uint16).reshape(2, 3)
    out = nctk.decompress(nctk.compress(a))
    assert type(out) is np.ndarray and out.dtype == a.dtype and np.array_equal(out, a)
    out.fill(0)  # writable
    scalar = nctk.decompress(nctk.compress(np.asarray(np.float32(1.5))))
    assert type(scalar) is np.ndarray and scalar.shape == () and scalar.dtype == np.float32 and scalar == 1.5
    t = torch.arange(6, dtype=torch.bfloat16).reshape(3, 2)
    out = nctk.decompress(nctk.compress(t))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16 and torch.equal(out, t)


def test_decompress_file_refuses_arrays():
    with pytest.raises(CodecError, match="decompress"):
        nctk.decompress_file(nctk.compress(np.zeros(4)))


def test_bad_arguments():
    with pytest.raises(CodecError, match="cannot compress"):
        nctk.compress(12345)
    with pytest.raises(CodecError, match="quality"):
        nctk.compress(np.zeros(4), quality=0.5)
    with pytest.raises(CodecError, match="name"):
        nctk.compress(np.zeros(4), name="x.npy")
    with pytest.raises(CodecError):
        nctk.decompress("not bytes")
    with pytest.raises(NotNctkError):
        nctk.decompress(b"definitely not an nctk file")
    with pytest.raises(NctkError):
        nctk.info(b"")


def test_info_reports_sizes():
    w = np.random.default_rng(0).normal(0, 0.02, 100_000).astype(np.float32)
    blob = nctk.compress(w)
    info = nctk.info(blob)
    assert info["file_size"] == len(blob)
    assert info["original_size"] == w.nbytes
    assert info["ratio"] == pytest.approx(w.nbytes / len(blob))
    assert info["array"] == {"dtype": "<f4", "shape": [100_000], "order": "C"}
    names = [s["name"] for s in info["sections"]]
    assert names[0] == "layout" and "f32.e" in names
    assert info["payload_bytes"] == sum(s["bytes"] for s in info["sections"])


def _with_header(blob: bytes, **changes) -> bytes:
    box = container.loads(blob)
    header = {**box.header, **changes}
    return container.dumps(header, list(box.sections.values()))


def test_unknown_codec_or_newer_version_in_file():
    blob = nctk.compress(np.arange(10))
    with pytest.raises(UnsupportedVersionError, match="'future-codec'"):
        nctk.decompress(_with_header(blob, codec="future-codec"))
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        nctk.decompress(_with_header(blob, codec_version=2))
    with pytest.raises(UnsupportedVersionError, match="coder"):
        nctk.decompress(_with_header(blob, coder={"id": "tans", "version": 1, "lanes": 8, "chunk_size": 4}))
    with pytest.raises(UnsupportedVersionError):
        nctk.decompress(_with_header(blob, coder={"id": CODER_ID, "version": CODER_VERSION + 1,
                                                   "lanes": 8, "chunk_size": 4}))
    with pytest.raises(FormatError, match="kind"):
        nctk.decompress(_with_header(blob, kind="video"))


def test_codec_encode_decode_without_container():
    c = registry.get("tensor-lossless")
    enc = c.encode(FileItem(NPY, "x.npy"))
    assert isinstance(enc, Encoded) and enc.header["kind"] == "file"
    assert c.decode(enc) == FileItem(NPY, "x.npy")
    with pytest.raises(FormatError, match="missing section"):
        Encoded(enc.header, []).section("layout")
    with pytest.raises(CodecError, match="neither"):
        c.encode(FileItem(b"abc", "x.txt"))
    # the content decides the format, whatever the name says; the name only helps unrecognised content
    assert c.encode(FileItem(NPY, "x.safetensors")).header["format"] == "npy"
    assert c.encode(FileItem(SAFETENSORS, "x.npy")).header["format"] == "safetensors"
    with pytest.raises(CodecError):
        c.encode(object())


def test_structured_array_with_overlapping_fields_is_a_codec_error():
    dt = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [0, 2], "itemsize": 8})
    with pytest.raises(CodecError, match="overlap"):
        nctk.compress(np.zeros(4, dt))


def test_packed_structured_array_round_trips():
    dt = np.dtype([("a", "<i4"), ("b", "<f8")])
    x = np.zeros(5, dt)
    x["a"] = np.arange(5)
    x["b"] = np.linspace(0, 1, 5)
    y = nctk.decompress(nctk.compress(x))
    assert y.dtype == dt and y.tobytes() == x.tobytes()
