"""The API's limits and memory: decompression bombs stop at a limit before anything is allocated, inputs
are used in place, outputs are handed over without copies, and the container can stream to a file."""

from __future__ import annotations

import io
import json
import mmap
import tracemalloc

import numpy as np
import pytest

import nctk
from nctk.codec import api
from nctk.entropy import container
from nctk.entropy.errors import CodecError, FormatError, LimitError


def npy_bytes(arr: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


def constant_bomb(elements: int, kind: str = "file") -> bytes:
    """A valid, tiny tensor-lossless file whose layout is one constant run of float32 1.0."""
    header = {"codec": "tensor-lossless", "codec_version": 1, "original_name": "bomb.bin", "kind": kind,
              "coder": {"id": "rans64", "version": 1, "lanes": 1, "chunk_size": 1 << 18}, "format": None,
              "original_size": 4 * elements, "summary": {}}
    if kind != "file":
        header["array"] = {"dtype": "<f4", "shape": [elements], "order": "C"}
    layout = {"segments": [["t", "f32", "<", elements, [-2 - 127, -2, -2, -2]]]}
    return container.dumps(header, [container.Section("layout", [json.dumps(layout).encode()], [1])])


# -------------------------------------------------------------------------------------- output limits


def test_default_guard():
    assert api.output_limit(300) == api.DEFAULT_MAX_OUTPUT == 1 << 30
    assert api.output_limit(10 << 20) == 1024 * (10 << 20)
    assert api.output_limit(300, 5) == 5
    for bad in (-1, 1.5, True, "1G"):
        with pytest.raises(CodecError, match="max_output_size"):
            api.output_limit(300, bad)


def test_bomb_is_refused_before_allocating_with_a_way_out():
    tb = constant_bomb(1 << 38)  # 1 TiB from a file of ~300 bytes
    assert len(tb) < 400
    for fn in (nctk.decompress, nctk.decompress_file):
        with pytest.raises(LimitError) as e:
            fn(tb)
        msg = str(e.value)
        assert f"decodes to {4 << 38} bytes" in msg and f"max_output_size={4 << 38}" in msg
        assert "--max-output-size" in msg and "1073741824" in msg
    assert issubclass(LimitError, FormatError) and nctk.LimitError is LimitError


def test_bomb_decodes_under_a_raised_limit_without_temporary_copies():
    n = 16 << 20  # 64 MiB of float32 1.0
    small = constant_bomb(n)
    with pytest.raises(LimitError, match=f"max_output_size={4 * n}"):
        nctk.decompress(small, max_output_size=4 * n - 1)
    tracemalloc.start()
    try:
        out = nctk.decompress_file(small, max_output_size=4 * n)[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(out, bytearray) and len(out) == 4 * n
    assert np.frombuffer(out, np.float32)[[0, n // 2, -1]].tolist() == [1.0] * 3
    assert peak < 1.1 * 4 * n  # the output itself, no field arrays, no bytes() copy
    arr = nctk.decompress(constant_bomb(1000, kind="array"), max_output_size=4000)
    assert arr.dtype == np.float32 and (arr == 1.0).all()


def test_ordinary_files_decode_under_the_default():
    data = npy_bytes(np.zeros((1000, 1000), np.float32))  # 4 MB from a few hundred bytes: under 1 GiB
    blob = nctk.compress(data)
    assert len(blob) < 1000 and nctk.decompress(blob) == data


# --------------------------------------------------------------------------------- inputs and outputs


def test_bytes_like_inputs_in_place(tmp_path):
    data = npy_bytes(np.random.default_rng(0).normal(0, 1, 20_000).astype(np.float32))
    blob = nctk.compress(data, name="x.npy")
    for obj in (bytearray(data), memoryview(data), memoryview(bytearray(data))[:],
                np.frombuffer(data, np.uint8).data):
        assert nctk.compress(obj, name="x.npy") == blob
    path = tmp_path / "x.npy"
    path.write_bytes(data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert nctk.compress(mm, name="x.npy") == blob
        with open(tmp_path / "out.nctk", "wb") as out:
            assert api.compress_to(mm, out, name="x.npy") == len(blob)
    # leaving the with block closed the mmap: nothing kept a view of it
    assert (tmp_path / "out.nctk").read_bytes() == blob
    with open(tmp_path / "out.nctk", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert nctk.decompress_file(mm) == ("x.npy", data)


def test_decompress_hands_over_a_bytearray():
    data = npy_bytes(np.arange(1000, dtype=np.int32))
    out = nctk.decompress(nctk.compress(data))
    assert type(out) is bytearray and out == data
    name, out = nctk.decompress_file(bytearray(nctk.compress(data, name="a.npy")))
    assert (name, type(out), out) == ("a.npy", bytearray, data)


def test_compress_to_writes_what_compress_returns_or_nothing():
    x = np.random.default_rng(1).normal(0, 1, (300, 70)).astype(np.float32)
    f = io.BytesIO()
    assert api.compress_to(x, f) == len(f.getvalue())
    assert f.getvalue() == nctk.compress(x)
    f = io.BytesIO()
    with pytest.raises(CodecError):
        api.compress_to(b"not a tensor file", f)
    assert f.getvalue() == b""


def test_memory_stays_near_the_input(tmp_path):
    """tracemalloc peaks for a 20 MB float32 .npy: the input is used in place and only the coded sections
    (not a joined copy) are held; decoding holds the output and bounded temporaries. Before, these were
    4x (compress, with its result) and 5x (decompress)."""
    x = np.random.default_rng(0).standard_normal(5_000_000, dtype=np.float32) * np.float32(0.02)
    data = npy_bytes(x)
    del x
    tracemalloc.start()
    try:
        with open(tmp_path / "x.nctk", "wb") as f:
            api.compress_to(data, f)
        compress_peak = tracemalloc.get_traced_memory()[1]
        blob = (tmp_path / "x.nctk").read_bytes()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = nctk.decompress(blob)
        decompress_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert out == data
    assert compress_peak < 2.0 * len(data)
    assert decompress_peak < 2.3 * len(data)
