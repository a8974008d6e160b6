"""Rate control: --target-bits-per-value / --target-psnr (and the API's target=) pick the quality that meets a
target, never overshoot it, come close to the best quality that does, and record what was asked and reached."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nctk
from nctk.cli.main import main
from nctk.codec import registry
from nctk.entropy.container import read_header
from nctk.entropy.errors import CodecError
from nctk.rd.metrics import psnr_range


@pytest.fixture(scope="module")
def weights() -> np.ndarray:
    return (0.05 * np.random.default_rng(1).standard_normal((128, 160))).astype(np.float32)


def target_of(blob: bytes) -> dict:
    return read_header(blob)[0]["target"]


@pytest.mark.parametrize("asked", [0.8, 3.0, 6.5])
def test_a_rate_target_is_never_exceeded_and_nearly_reached(weights, asked):
    blob = nctk.compress(weights, target=("bits_per_value", asked))
    t, rate = target_of(blob), 8 * len(blob) / weights.size
    assert read_header(blob)[0]["codec"] == "tensor-bounded"
    assert t["metric"] == "bits_per_value" and t["asked"] == asked
    assert rate <= t["reached"] <= asked and t["reached"] - rate < 8 * 48 / weights.size  # the record at its longest
    # A quarter step more quality (about half a bit per value) no longer fits: the search got close. Finer than
    # that, rate is not monotone in quality (entropy coding noise), which the search tolerates.
    finer = nctk.compress(weights, codec="tensor-bounded", quality=t["quality"] + 0.25)
    assert 8 * len(finer) / weights.size > asked


def test_a_psnr_target_is_met_as_the_decoded_values_show(weights):
    blob = nctk.compress(weights, target=("psnr", 55.0))
    t = target_of(blob)
    decoded = nctk.decompress(blob)
    assert psnr_range(weights, decoded) == pytest.approx(t["reached"], rel=1e-9) and t["reached"] >= 55.0
    cheaper = nctk.compress(weights, codec="tensor-bounded", quality=t["quality"] - 0.1)
    assert psnr_range(weights, nctk.decompress(cheaper)) < 55.0


def test_rate_control_is_deterministic(weights):
    assert nctk.compress(weights, target=("bits_per_value", 2.5)) == nctk.compress(weights,
                                                                                    target=("bits_per_value", 2.5))


def test_a_target_no_quality_reaches_is_one_clear_error(weights):
    with pytest.raises(CodecError, match=r"cannot fit 0.001 bits/value on this input: its lowest quality takes"):
        nctk.compress(weights, target=("bits_per_value", 0.001))
    # asking more than the best quality needs is fine: the best quality is used
    t = target_of(nctk.compress(weights, target=("bits_per_value", 64)))
    assert t["quality"] == registry.get("tensor-bounded").quality_range[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"target": ("bpp", 1.0)}, "measures its rate in bits_per_value"),
    ({"target": ("kbps", 1.0)}, "measures its rate in bits_per_value"),
    ({"target": ("size", 1.0)}, "target must be"),
    ({"target": ("psnr", -3)}, "positive finite"),
    ({"target": ("psnr", math.nan)}, "positive finite"),
    ({"target": ("psnr", 40), "quality": 5}, "not several"),
    ({"target": ("psnr", 40), "max_error": 1e-3}, "not several"),
    ({"target": ("psnr", 40), "codec": "tensor-lossless"}, "has no rate control"),
])
def test_bad_targets_are_refused(weights, kwargs, message):
    with pytest.raises(CodecError, match=message):
        nctk.compress(weights, **kwargs)


def test_targets_on_files_count_every_float_value(tmp_path, weights):
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": weights, "b": weights[:3, :5].copy(), "ids": np.arange(9, dtype=np.int64)}, str(path))
    blob = nctk.compress(path, target=("bits_per_value", 4.0))
    assert 8 * len(blob) / (weights.size + 15) <= target_of(blob)["reached"] <= 4.0


def test_the_cli_takes_targets_and_error_bounds(tmp_path, weights, capsys):
    src = tmp_path / "w.npy"
    np.save(src, weights)
    assert main(["compress", str(src), "--target-bits-per-value", "3"]) == 0
    assert "[tensor-bounded; bits_per_value 2.9" in capsys.readouterr().err
    blob = (tmp_path / "w.npy.nctk").read_bytes()
    assert target_of(blob)["reached"] <= 3
    assert main(["compress", str(src), "-o", str(tmp_path / "b.nctk"), "--max-error", "1e-3"]) == 0
    assert main(["decompress", str(tmp_path / "b.nctk"), "-o", str(tmp_path / "b.npy")]) == 0
    assert np.max(np.abs(np.load(tmp_path / "b.npy").astype(np.float64) - weights)) <= 1e-3
    assert main(["compress", str(src), "-o", str(tmp_path / "c.nctk"), "--target-bpp", "1"]) == 1
    assert "use --target-bits-per-value" in capsys.readouterr().err
    for bad in (["--quality", "5", "--target-psnr", "40"], ["--target-psnr", "0"], ["--max-error", "nan"]):
        with pytest.raises(SystemExit) as e:
            main(["compress", str(src), "-o", str(tmp_path / "d.nctk"), *bad])
        assert e.value.code == 2
    assert not (tmp_path / "c.nctk").exists() and not (tmp_path / "d.nctk").exists()
    # --bits B is short for --target-bits-per-value B (and bits=B in the API)
    assert main(["compress", str(src), "-o", str(tmp_path / "e.nctk"), "--bits", "3"]) == 0
    assert (tmp_path / "e.nctk").read_bytes() == blob == nctk.compress(src, bits=3)
    with pytest.raises(SystemExit):
        main(["compress", str(src), "-o", str(tmp_path / "f.nctk"), "--bits", "3", "--target-bits-per-value", "3"])
    with pytest.raises(CodecError, match="bits or a target"):
        nctk.compress(weights, bits=3, target=("psnr", 40.0))
