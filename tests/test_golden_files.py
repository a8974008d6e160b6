"""Golden .nctk files: today's encoder must write exactly these bytes, and they must keep decoding.

If a change breaks this test on purpose (a new format or codec version), bump the version, document it in
docs/FORMAT.md, keep the old files decoding, and add new golden files beside the old ones. Regenerate with
``python tests/test_golden_files.py --write``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

import nctk

GOLDEN = Path(__file__).with_name("golden")


def _npy_bytes() -> bytes:
    # Smooth-ish float32 values (a structured exponent stream) and a few specials.
    x = (np.sin(np.arange(20000, dtype=np.float64) / 37.0) * np.exp(np.arange(20000) % 50 / 10.0)).astype(np.float32)
    x[:4] = [np.nan, -np.inf, -0.0, 1e-42]
    buf = io.BytesIO()
    np.save(buf, x.reshape(100, 200))
    return buf.getvalue()


def _safetensors_bytes() -> bytes:
    from safetensors.numpy import save

    rng = np.random.default_rng(7)
    tensors = {
        "w": rng.normal(0, 0.05, (64, 96)).astype(np.float16),
        "b": np.arange(-40, 40, dtype=np.int32),
        "mask": (np.arange(500) % 3 == 0),
    }
    return save(tensors, metadata={"golden": "1"})


CASES = {
    "float32_100x200.npy": _npy_bytes,
    "mixed.safetensors": _safetensors_bytes,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_file_bytes_and_decoding(name):
    original = CASES[name]()
    golden = (GOLDEN / f"{name}.nctk").read_bytes()
    assert nctk.decompress_file(golden) == (name, original)
    assert nctk.compress(original, name=name) == golden, "encoder output changed: see module docstring"


def test_golden_array_mode():
    arr = np.arange(-500, 500, dtype=np.int16).reshape(10, 100)
    golden = (GOLDEN / "int16_array.nctk").read_bytes()
    out = nctk.decompress(golden)
    assert out.dtype == arr.dtype and np.array_equal(out, arr)
    assert nctk.compress(arr) == golden


if __name__ == "__main__" and "--write" in sys.argv:
    for name, make in CASES.items():
        (GOLDEN / f"{name}.nctk").write_bytes(nctk.compress(make(), name=name))
    (GOLDEN / "int16_array.nctk").write_bytes(nctk.compress(np.arange(-500, 500, dtype=np.int16).reshape(10, 100)))
    print("wrote", sorted(p.name for p in GOLDEN.iterdir()))
