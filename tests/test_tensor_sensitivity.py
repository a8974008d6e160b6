"""Sensitivity-allocated bounds (``sensitivity=`` / ``--sensitivity``) and :func:`nctk.sensitivity`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

import nctk
from nctk.cli.main import main
from nctk.entropy.container import loads, read_header
from nctk.entropy.errors import CodecError


def checkpoint() -> bytes:
    rng = np.random.default_rng(3)
    return st_save({"a": rng.normal(0, 0.1, (40, 25)).astype(np.float32),   # 1000 values
                    "b": rng.normal(0, 0.1, (80, 50)).astype(np.float32),   # 4000 values
                    "c": rng.normal(0, 0.1, (30, 30)).astype(np.float32),   # not named: exact
                    "ids": np.arange(100, dtype=np.int64),                  # named but integer: exact
                    "tiny": np.ones(8, np.float32)})                        # named but tiny: exact


def records(blob: bytes) -> list[dict]:
    box = loads(blob)
    return json.loads(bytes(box.sections["tensors"].chunks[0]))["tensors"]


def test_bounds_follow_sqrt_n_over_s_and_unnamed_tensors_stay_exact():
    data = checkpoint()
    sens = {"a": 4.0, "b": 1.0, "ids": 1.0, "tiny": 1.0}
    blob = nctk.compress(data, name="m.safetensors", max_error=1e-2, sensitivity=sens)
    # need = sqrt(n / s): a 15.8, b 63.2; the median of the two (upper) is b's, so b gets the bound, a a quarter
    by_rows = {r["rows"]: r["max_error"] for r in records(blob)}
    assert by_rows == {40: pytest.approx(2.5e-3, rel=1e-12), 80: pytest.approx(1e-2, rel=1e-12)}
    orig, out = st_load(data), st_load(bytes(nctk.decompress(blob)))
    assert np.abs(out["a"].astype(np.float64) - orig["a"]).max() <= 2.5e-3
    assert np.abs(out["b"].astype(np.float64) - orig["b"]).max() <= 1e-2
    for k in ("c", "ids", "tiny"):
        assert np.array_equal(out[k], orig[k])
    bound = read_header(blob)[0]["bound"]
    assert bound["max_error"] == 1e-2 and bound["sensitivity"]["tensors"] == 4
    assert len(bound["sensitivity"]["sha256"]) == 64


def test_relative_bounds_scale_by_the_largest_range_and_rate_targets_work():
    data = checkpoint()
    sens = {"a": 1.0, "b": 1.0}
    arrays = st_load(data)
    widest = max(float(np.ptp(arrays[k].astype(np.float64))) for k in sens)
    blob = nctk.compress(data, name="m.safetensors", rel_error=1e-3, sensitivity=sens)
    need = {40: math.sqrt(1000), 80: math.sqrt(4000)}
    assert {r["rows"]: r["max_error"] for r in records(blob)} == {
        rows: pytest.approx(1e-3 * widest * n / need[80], rel=1e-12) for rows, n in need.items()}
    values = sum(a.size for a in arrays.values())
    small = nctk.compress(data, name="m.safetensors", bits=12, sensitivity=sens)
    assert 8 * len(small) / values <= 12
    assert read_header(small)[0]["target"]["metric"] == "bits_per_value"


def test_zero_sensitivity_gets_a_floor_not_an_infinite_bound():
    data = checkpoint()
    blob = nctk.compress(data, name="m.safetensors", max_error=1e-3, sensitivity={"a": 0.0, "b": 1.0})
    by_rows = {r["rows"]: r["max_error"] for r in records(blob)}
    # a: s raised to 1% of the median positive sensitivity (1.0): need sqrt(1000 / 0.01) = 316 vs b's 63
    assert by_rows[40] == pytest.approx(1e-3 * math.sqrt(1000 / 0.01) / math.sqrt(1000 / 0.01), rel=1e-12)
    assert by_rows[80] == pytest.approx(1e-3 * math.sqrt(4000) / math.sqrt(1000 / 0.01), rel=1e-12)


@pytest.mark.parametrize("sens, match", [
    ({"nope": 1.0}, "does not have"),
    ({}, "non-empty mapping"),
    ({"a": -1.0}, ">= 0"),
    ({"a": float("nan")}, ">= 0"),
    ({"a": "1"}, "name: number"),
    ({"a": True}, "name: number"),
    ({"a": 0.0}, "every sensitivity is 0"),
    ([("a", 1.0)], "mapping"),
])
def test_bad_sensitivities_give_one_clear_error(sens, match):
    with pytest.raises(CodecError, match=match):
        nctk.compress(checkpoint(), name="m.safetensors", max_error=1e-3, sensitivity=sens)


def test_sensitivity_needs_a_safetensors_file_and_the_bounded_codec():
    with pytest.raises(CodecError, match="safetensors files only"):
        nctk.compress(np.ones((10, 10), np.float32), max_error=1e-3, sensitivity={"a": 1.0})
    with pytest.raises(CodecError, match="takes no sensitivity"):
        nctk.compress(checkpoint(), name="m.safetensors", codec="tensor-lossless", sensitivity={"a": 1.0})


def test_the_cli_reads_a_sensitivity_file(tmp_path, capsys):
    src = tmp_path / "m.safetensors"
    src.write_bytes(checkpoint())
    (tmp_path / "s.json").write_text(json.dumps({"a": 4.0, "b": 1.0}))
    assert main(["compress", str(src), "--max-error", "1e-2", "--sensitivity", str(tmp_path / "s.json")]) == 0
    blob = (tmp_path / "m.safetensors.nctk").read_bytes()
    assert blob == nctk.compress(src, max_error=1e-2, sensitivity={"a": 4.0, "b": 1.0})
    (tmp_path / "bad.json").write_text("[1, 2]")
    out = tmp_path / "x.nctk"
    assert main(["compress", str(src), "-o", str(out), "--max-error", "1e-2", "--sensitivity",
                 str(tmp_path / "bad.json")]) == 1
    assert main(["compress", str(src), "-o", str(out), "--max-error", "1e-2", "--sensitivity",
                 str(tmp_path / "missing.json")]) == 1
    err = capsys.readouterr().err
    assert "JSON object" in err and "cannot read sensitivity file" in err and not out.exists()


class TwoLayers(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.first = torch.nn.Linear(16, 16)
        self.second = torch.nn.Linear(16, 8)
        self.unused = torch.nn.Linear(16, 16)
        with torch.no_grad():
            self.second.weight.mul_(10.0)  # errors in `first` are amplified tenfold by `second`

    def forward(self, x):
        return self.second(torch.tanh(self.first(x)))


def test_sensitivity_measures_noise_damage_and_restores_the_weights():
    model = TwoLayers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    sens = nctk.sensitivity(model, lambda m: m(x), prefix="")
    assert set(sens) == {"first.weight", "second.weight", "unused.weight"}  # biases have under 64 values
    assert sens["unused.weight"] == 0.0 and sens["first.weight"] > 0 and sens["second.weight"] > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = nctk.sensitivity(model, lambda m: m(x))
    assert again == sens  # seeded noise: the same numbers every run
    some = nctk.sensitivity(model, lambda m: m(x), names=["first.bias"], prefix="first.")
    assert set(some) == {"bias"}
    with pytest.raises(CodecError, match="no parameters"):
        nctk.sensitivity(model, lambda m: m(x), names=["third.weight"])


def test_sensitivity_restores_weights_when_run_fails():
    model = TwoLayers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def run(m):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return m(torch.ones(4, 16))

    with pytest.raises(RuntimeError, match="boom"):
        nctk.sensitivity(model, run)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
