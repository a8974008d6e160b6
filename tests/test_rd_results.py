"""Results files in CompressAI's schema: round trips, atomic writes, every published Kodak file, and refusals."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from nctk.entropy.errors import NctkError
from nctk.rd import results
from nctk.rd.results import ResultsError, curve, load, rate_key, save, validate

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "rd_results" / "kodak"
PUBLISHED = sorted(KODAK.glob("*.json")) if KODAK.is_dir() else []


def example(**extra) -> dict:
    return {"name": "mine", "description": "a test codec",
            "results": {"psnr-rgb": [34.0, 28.5, 31.0], "bpp": [0.9, 0.25, 0.5], "encoding_time": [1, 1, 2]},
            **extra}


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------- round trip


def test_round_trip_keeps_everything_in_a_stable_order(tmp_path):
    path = tmp_path / "mine.json"
    meta = {"versions": {"nctk": "0.1.0", "numpy": "1.26.4"}, "dataset": "kodak", "date": "2025-01-01"}
    per_file = [{"file": "kodim01.png", "bpp": 0.3, "psnr-rgb": 29.0}]
    original = example(per_file=per_file, meta=meta)
    save(original, path)
    assert load(path) == original
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "name": "mine",\n  "description": "a test codec",\n')
    assert list(json.loads(text)) == ["name", "description", "results", "meta", "per_file"]
    assert list(json.loads(text)["results"]) == ["bpp", "encoding_time", "psnr-rgb"]  # rate first, then sorted
    assert list(json.loads(text)["meta"]) == ["dataset", "date", "versions"]
    save(json.loads(text), path)
    assert path.read_text() == text  # saving what was loaded gives the same bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json"]  # no temporary file left behind


def test_save_writes_numpy_scalars_and_tuples_as_plain_numbers(tmp_path):
    path = tmp_path / "r.json"
    save({"name": "n", "results": {"kbps": (np.float32(6.0), np.int64(12)), "si-sdr": [np.float64(3.5), 7]}}, path)
    assert load(path) == {"name": "n", "description": "", "results": {"kbps": [6.0, 12], "si-sdr": [3.5, 7]}}


def test_save_permissions_new_and_replaced(tmp_path):
    path = tmp_path / "r.json"
    save(example(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask()
    path.chmod(0o640)
    save(example(name="again"), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and load(path)["name"] == "again"


def test_save_failure_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    save(example(), path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(ResultsError, match=r"r\.json: cannot write: No space left on device$"):
        save(example(name="new"), path)
    monkeypatch.undo()
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("result, message", [
    (example(meta={"when": object()}), r"cannot be written as JSON: Object of type object is not JSON serializable"),
    (example(meta={"x": [float("nan")]}), r"cannot be written as JSON: NaN is not a number"),
    ({"name": "n", "results": {"bpp": [1.0, float("nan")]}}, r"results\['bpp'\]\[1\] is NaN, not a number"),
    ({"name": "n", "results": {"psnr": [30.0]}}, r"'results' must hold exactly one rate key"),
])
def test_save_refuses_what_it_cannot_write_back(tmp_path, result, message):
    path = tmp_path / "r.json"
    with pytest.raises(ResultsError, match=rf"^{path}: {message}"):
        save(result, path)
    assert not list(tmp_path.iterdir())


def test_infinite_psnr_of_an_exact_reconstruction_round_trips(tmp_path):
    path = tmp_path / "lossless.json"
    save({"name": "png", "results": {"bpp": [12.1], "psnr-rgb": [float("inf")]}}, path)
    assert '"psnr-rgb": [\n      Infinity\n    ]' in path.read_text()  # as Python's json (CompressAI) reads it
    assert load(path)["results"]["psnr-rgb"] == [float("inf")]


def test_save_into_a_missing_folder(tmp_path):
    path = tmp_path / "no" / "r.json"
    with pytest.raises(ResultsError, match=rf"^{path}: cannot write: No such file or directory$"):
        save(example(), path)


# ------------------------------------------------------------------------------------- rate key, curves


@pytest.mark.parametrize("key", ["bpp", "kbps", "bits_per_value"])
def test_rate_key(key):
    assert rate_key({"name": "n", "results": {"mse": [1.0], key: [2.0]}}) == key


def test_curve_is_sorted_by_rate():
    assert curve(example(), "psnr-rgb") == ([0.25, 0.5, 0.9], [28.5, 31.0, 34.0])
    assert curve(example(), "encoding_time") == ([0.25, 0.5, 0.9], [1.0, 2.0, 1.0])
    with pytest.raises(ResultsError, match=r"^'mine': no metric 'ms-ssim-rgb'; the results hold 'psnr-rgb', "
                                           r"'encoding_time'$"):
        curve(example(), "ms-ssim-rgb")


# ------------------------------------------------------------------------------- published Kodak files


@pytest.mark.skipif(not PUBLISHED, reason=f"published RD curves not found at {KODAK} (../shared is absent)")
@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.stem)
def test_every_published_kodak_file_loads(path):
    r = load(path)
    assert rate_key(r) == "bpp" and r["name"]
    for metric in [k for k in r["results"] if k != "bpp"]:
        rates, values = curve(r, metric)
        assert rates == sorted(rates) and len(values) == len(r["results"]["bpp"]) >= 6
        assert sorted(zip(r["results"]["bpp"], r["results"][metric], strict=True)) == list(zip(rates, values,
                                                                                                 strict=True))


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("text, message", [
    ("{\"name\": \"x\", ", r"not JSON \(Expecting property name enclosed in double quotes: line 1 column 15 "
     r"\(char 14\)\)$"),
    ("", r"not JSON \(Expecting value: line 1 column 1"),
    ('{"name": "x", "results": {"bpp": [0.5], "psnr-rgb": [NaN]}}',
     r"results\['psnr-rgb'\]\[0\] is NaN, not a number$"),
    ('{"name": "x", "results": {"bpp": [0.5], "psnr-rgb": [-Infinity]}}',
     r"results\['psnr-rgb'\]\[0\] is -inf; only a metric may be infinite, and only \+inf \(the PSNR of an exact"),
    ('[1, 2]', r"expected a JSON object at the top level, got a list"),
    ('{"results": {"bpp": [1]}}', r"missing key 'name' \(a results file needs 'name' and 'results'\)"),
    ('{"description": ""}', r"missing keys 'name', 'results'"),
    ('{"name": 3, "results": {"bpp": [1]}}', r"'name' must be a non-empty string, got 3"),
    ('{"name": "", "results": {"bpp": [1]}}', r"'name' must be a non-empty string, got ''"),
    ('{"name": "x", "description": null, "results": {"bpp": [1]}}', r"'description' must be a string, got null"),
    ('{"name": "x", "results": [1, 2]}', r"'results' must be a non-empty object of lists, got a list"),
    ('{"name": "x", "results": {}}', r"'results' must be a non-empty object of lists, got an object"),
    ('{"name": "x", "results": {"bpp": 0.5}}', r"results\['bpp'\] must be a list of numbers, got float"),
    ('{"name": "x", "results": {"bpp": [0.5, "0.7"]}}', r"results\['bpp'\]\[1\] is not a number: '0.7'"),
    ('{"name": "x", "results": {"bpp": [0.5, null]}}', r"results\['bpp'\]\[1\] is not a number: None"),
    ('{"name": "x", "results": {"bpp": [true]}}', r"results\['bpp'\]\[0\] is not a number: True"),
    ('{"name": "x", "results": {"bpp": [1e999]}}', r"results\['bpp'\]\[0\] is inf; only a metric may be infinite"),
    ('{"name": "x", "results": {"bpp": [1, 2], "psnr-rgb": [30]}}',
     r"the lists in 'results' differ in length \(bpp: 2, psnr-rgb: 1\); each needs one entry per point"),
    ('{"name": "x", "results": {"bpp": [], "psnr-rgb": []}}', r"'results' holds no points \(the lists are empty\)"),
    ('{"name": "x", "results": {"psnr-rgb": [30]}}',
     r"'results' must hold exactly one rate key of 'bpp', 'kbps', 'bits_per_value'; found none"),
    ('{"name": "x", "results": {"bpp": [1], "kbps": [2]}}', r"'results' must hold exactly one rate key .*; found 'bpp' "
     r"and 'kbps'"),
])
def test_load_refuses_with_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=rf"^{path}: {message}") as e:
        load(path)
    assert isinstance(e.value, NctkError) and "\n" not in str(e.value)


def test_load_refuses_unreadable_files(tmp_path):
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    with pytest.raises(ResultsError, match=r"latin1\.json: not JSON \(not UTF-8 text at byte 13\)$"):
        load(tmp_path / "latin1.json")
    with pytest.raises(ResultsError, match=r"missing\.json: cannot read: No such file or directory$"):
        load(tmp_path / "missing.json")
    with pytest.raises(ResultsError, match=r": cannot read: Is a directory$"):
        load(tmp_path)


def test_validate_names_its_source():
    with pytest.raises(ResultsError, match=r"^sweep output: results\['bpp'\]\[0\] is NaN, not a number$"):
        validate({"name": "x", "results": {"bpp": [float("nan")]}}, "sweep output")
    assert validate(example()) == example()
