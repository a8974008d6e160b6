"""Bjøntegaard deltas: hand-computable cases, symmetry, published Kodak curves, and every refusal."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nctk.entropy.errors import NctkError
from nctk.rd import results
from nctk.rd.bdrate import BDError, BDResult, bd_quality, bd_rate, bd_results

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "rd_results" / "kodak"

RATES = [0.2, 0.35, 0.6, 1.0, 1.7]
PSNR = [27.0, 29.5, 32.0, 34.0, 36.5]


def random_curve(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A strictly increasing, concave-ish rate-quality curve with a little noise."""
    rates = np.sort(rng.uniform(0.1, 3.0, n))
    return rates, 30 + 4 * np.log(rates) + np.cumsum(rng.uniform(0.01, 0.5, n))


# --------------------------------------------------------------------------------------- hand-computable


def test_identical_curves_give_zero_over_their_whole_range():
    for fn in (bd_rate, bd_quality):
        r = fn(RATES, PSNR, RATES, PSNR)
        assert r.value == 0.0 and r.anchor_coverage == r.test_coverage == 1.0
    assert bd_rate(RATES, PSNR, RATES, PSNR).overlap == (27.0, 36.5)
    assert bd_quality(RATES, PSNR, RATES, PSNR).overlap == pytest.approx((0.2, 1.7), rel=1e-15)


@pytest.mark.parametrize("factor, expected", [(0.5, -50.0), (2.0, 100.0), (0.25, -75.0)])
def test_constant_rate_factor_is_the_bd_rate(factor, expected):
    r = bd_rate(RATES, PSNR, [x * factor for x in RATES], PSNR)
    assert r.kind == "rate" and r.value == pytest.approx(expected, abs=1e-12)
    assert r.overlap == (27.0, 36.5) and r.anchor_coverage == r.test_coverage == 1.0


def test_constant_quality_shift_is_the_bd_quality():
    r = bd_quality(RATES, PSNR, RATES, [p + 1 for p in PSNR])
    assert r.kind == "quality" and r.value == pytest.approx(1.0, abs=1e-12)
    assert r.anchor_coverage == r.test_coverage == 1.0


def test_two_point_curves_are_straight_lines():
    # log r = (q - 30) / 10 * log 4 for the anchor, the same 2 dB later for the test: over the overlap [32, 40]
    # the test needs log-rate 0.2 * log 4 less, i.e. 4 ** -0.2 times the rate
    r = bd_rate([1, 4], [30, 40], [1, 4], [32, 42])
    assert r.value == pytest.approx((4**-0.2 - 1) * 100, abs=1e-12)
    assert r.overlap == (32.0, 40.0) and r.anchor_coverage == pytest.approx(0.8) and r.test_coverage == 0.8
    q = bd_quality([1, 4], [30, 40], [1, 4], [32, 42])
    assert q.value == pytest.approx(2.0, abs=1e-12) and q.overlap == pytest.approx((1.0, 4.0))


def test_partial_overlap_is_reported():
    # both on one straight line in (quality, log-rate), which PCHIP reproduces; the test covers only the upper
    # part of the anchor's quality range
    aq, tq = np.array(PSNR), np.array([32.0, 34.0, 36.5, 38.0])
    r = bd_rate(np.exp((aq - 30) / 5), aq, np.exp((tq - 30) / 5), tq)
    assert r.value == pytest.approx(0.0, abs=1e-12)
    assert r.overlap == (32.0, 36.5)
    assert r.anchor_coverage == pytest.approx(4.5 / 9.5) and r.test_coverage == pytest.approx(4.5 / 6)


def test_point_order_and_rate_unit_do_not_matter():
    rng = np.random.default_rng(1)
    (ar, aq), (tr, tq) = random_curve(rng, 6), random_curve(rng, 7)
    ref = bd_rate(ar, aq, tr, tq)
    p = rng.permutation(7)
    assert bd_rate(ar, aq, tr[p], tq[p]).value == pytest.approx(ref.value, abs=1e-12)
    assert bd_rate(ar * 768 * 512, aq, tr * 768 * 512, tq).value == pytest.approx(ref.value, abs=1e-9)
    assert bd_rate(list(ar), list(aq), tuple(tr), tuple(tq)) == ref


@pytest.mark.parametrize("seed", range(5))
def test_swapping_anchor_and_test_inverts_the_delta(seed):
    rng = np.random.default_rng(seed)
    (ar, aq), (tr, tq) = random_curve(rng, 5), random_curve(rng, 8)
    ab, ba = bd_rate(ar, aq, tr, tq), bd_rate(tr, tq, ar, aq)
    assert (1 + ab.value / 100) * (1 + ba.value / 100) == pytest.approx(1.0, abs=1e-12)
    assert ab.overlap == ba.overlap and ab.anchor_coverage == ba.test_coverage
    assert bd_quality(ar, aq, tr, tq).value == pytest.approx(-bd_quality(tr, tq, ar, aq).value, abs=1e-12)


def test_result_prints_on_one_line():
    text = str(bd_rate([1, 4], [30, 40], [1, 4], [32, 42]))
    assert text.startswith("BD-rate -24.21% over quality 32..40") and "80%" in text and "\n" not in text
    assert str(bd_quality(RATES, PSNR, RATES, PSNR)).startswith("BD-quality +0.000 over rate 0.2..1.7")
    assert isinstance(bd_rate(RATES, PSNR, RATES, PSNR), BDResult)


def test_import_stays_light():
    code = "import sys, nctk.rd.bdrate, nctk.rd.results; print(sorted({'numpy', 'scipy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------- results dicts


def as_results(name: str, rates, psnr, rate_key: str = "bpp") -> dict:
    return {"name": name, "description": "", "results": {rate_key: list(rates), "psnr-rgb": list(psnr)}}


def test_results_helper_matches_the_arrays():
    a, t = as_results("a", RATES, PSNR), as_results("t", [r / 2 for r in RATES], PSNR)
    assert bd_results(a, t).value == pytest.approx(-50.0, abs=1e-12)
    assert bd_results(a, t, "psnr-rgb", quality=True) == bd_quality(RATES, PSNR, [r / 2 for r in RATES], PSNR)
    ka, kt = as_results("a", RATES, PSNR, "kbps"), as_results("t", RATES, PSNR, "kbps")
    assert bd_results(ka, kt).value == 0.0 and bd_results(ka, kt, rate_key="kbps").value == 0.0


def test_results_helper_refusals():
    a = as_results("JPEG", RATES, PSNR)
    a_ms = {**a, "results": {**a["results"], "ms-ssim-rgb": [0.9, 0.92, 0.94, 0.96, 0.98]}}
    with pytest.raises(BDError, match=r"test 'mine': no metric 'ms-ssim-rgb'; the results hold 'bpp', 'psnr-rgb'"):
        bd_results(a_ms, as_results("mine", RATES, PSNR), "ms-ssim-rgb")
    with pytest.raises(BDError, match=r"anchor's rate is 'bpp' but the test's is 'kbps'"):
        bd_results(a, as_results("audio", RATES, PSNR, "kbps"))
    with pytest.raises(BDError, match=r"anchor 'JPEG': no rate key 'kbps'"):
        bd_results(a, a, rate_key="kbps")
    with pytest.raises(results.ResultsError, match=r"test 'x': the lists in 'results' differ in length"):
        bd_results(a, as_results("x", RATES, PSNR[:3]))
    with pytest.raises(BDError, match=r"test 'bad' curve is not monotone: .*\(point 1\).*\(point 2\)"):
        bd_results(a, as_results("bad", RATES, [27.0, 30.0, 29.0, 34.0, 36.0]))
    with pytest.raises(BDError, match=r"test 'png' curve: quality of point 1 is inf; every value must be finite "
                                      r"\(an infinite PSNR is an exact reconstruction: leave that point out\)$"):
        bd_results(a, as_results("png", [8.0, 12.0], [48.0, math.inf]))


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("args, message", [
    (([1.0], [30.0], RATES, PSNR), r"^anchor curve: 1 point; BD needs at least 2 points per curve"),
    ((RATES, PSNR, [], []), r"^test curve: 0 points; BD needs at least 2"),
    ((RATES, PSNR, [1, 2, 3], [30, 31]), r"^test curve: 3 rates but 2 qualities"),
    ((RATES, PSNR, [1, 2], [30, math.nan]), r"^test curve: quality of point 1 is nan; every value must be finite"),
    (([1, math.inf], [30, 31], RATES, PSNR), r"^anchor curve: rate of point 1 is inf; every value must be finite"),
    ((RATES, PSNR, [0.5, 0.0, 1.0], [30, 29, 31]), r"^test curve: rate of point 1 is 0; rates must be positive"),
    (([-1, 2], [30, 31], RATES, PSNR), r"^anchor curve: rate of point 0 is -1; rates must be positive"),
    ((RATES, PSNR, [0.5, 1.0, 0.5], [30, 31, 30]),
     r"^test curve: points 0 and 2 are the same point \(rate 0.5, quality 30\); remove the duplicate"),
    ((RATES, PSNR, [0.5, 1.0, 0.5], [30, 31, 30.5]),
     r"^test curve: points 0 and 2 have the same rate 0.5 but qualities 30 and 30.5; each rate may appear once"),
    ((RATES, PSNR, [0.3, 0.6, 1.2, 2.0], [28, 31, 31, 35]),
     r"^test curve is not monotone: quality goes from 31 at rate 0.6 \(point 1\) to 31 at the higher rate 1.2 "
     r"\(point 2\); quality must rise strictly with rate"),
    (([0.2, 0.4, 0.8], [0.01, 0.005, 0.002], RATES, PSNR), r"^anchor curve is not monotone: .*such as MSE"),
    ((RATES, PSNR, [2.0, 3.0], [40.0, 42.0]),
     r"^the curves do not overlap in quality \(anchor 27..36.5, test 40..42\): BD-rate needs a common quality"),
    ((RATES, PSNR, [1.0, 2.0], [36.5, 40.0]), r"^the curves do not overlap in quality"),  # touching is no overlap
    ((RATES, PSNR, ["0.5", "1"], [30, 31]), r"^test curve: rates must be numbers, got <U3 values such as '0.5'"),
    ((RATES, PSNR, [0.5, None], [30, 31]), r"^test curve: rates must be numbers"),
    ((RATES, PSNR, [0.5, 1.0], [True, False]), r"^test curve: qualities must be numbers, got bool"),
    ((RATES, PSNR, [[0.5, 1.0]], [[30, 31]]), r"^test curve: rates must be a flat list, got shape \(1, 2\)"),
    ((RATES, PSNR, [[0.5, 1.0], [2.0]], [30, 31]), r"^test curve: rates must be a flat list of numbers \("),
])
def test_bd_rate_refuses(args, message):
    with pytest.raises(BDError, match=message) as e:
        bd_rate(*args)
    assert isinstance(e.value, NctkError) and "\n" not in str(e.value)


def test_bd_quality_needs_overlap_in_rate():
    with pytest.raises(BDError, match=r"do not overlap in rate \(anchor 0.2..1.7, test 2..3\): BD-quality needs"):
        bd_quality(RATES, PSNR, [2.0, 3.0], [30.0, 31.0])
    # overlap in rate is enough for BD-quality even when the quality ranges are disjoint
    assert bd_quality(RATES, PSNR, RATES, [p + 20 for p in PSNR]).value == pytest.approx(20.0, abs=1e-12)


# ------------------------------------------------------------------------------ published Kodak curves

# (file, expected BD-rate vs JPEG on psnr-rgb as computed elsewhere from the same curves, pinned values: BD-rate
# in %, BD-PSNR in dB, equal to the `bjontegaard` 1.3.0 package's method="pchip" to ~1e-13)
PUBLISHED = [
    ("webp.json", -36.0, -36.176165059918, 2.675828444809),
    ("jpeg2000.json", -37.0, -35.855162965219, 2.400182742610),
    ("bpg_444_x265_ycbcr.json", -59.0, -58.855151949357, 4.703406736221),
    ("vtm.json", -67.6, -67.584145171309, 5.706248221091),
]


@pytest.fixture(scope="module")
def jpeg() -> dict:
    if not (KODAK / "jpeg.json").is_file():
        pytest.skip(f"published RD curves not found at {KODAK} (../shared is absent)")
    return results.load(KODAK / "jpeg.json")


@pytest.mark.parametrize("name, approx_rate, pinned_rate, pinned_psnr", PUBLISHED)
def test_published_curves_against_jpeg(jpeg, name, approx_rate, pinned_rate, pinned_psnr):
    test = results.load(KODAK / name)
    rate, psnr = bd_results(jpeg, test, "psnr-rgb"), bd_results(jpeg, test, "psnr-rgb", quality=True)
    assert rate.value == pytest.approx(approx_rate, abs=1.5)
    assert rate.value == pytest.approx(pinned_rate, abs=1e-9)
    assert psnr.value == pytest.approx(pinned_psnr, abs=1e-9)
    assert 0.6 < min(rate.anchor_coverage, rate.test_coverage) <= max(rate.anchor_coverage, rate.test_coverage) <= 1
    back = bd_results(test, jpeg, "psnr-rgb")
    assert (1 + rate.value / 100) * (1 + back.value / 100) == pytest.approx(1.0, abs=1e-12)


def test_published_ms_ssim_curves_compare_too(jpeg):
    vtm = results.load(KODAK / "vtm.json")
    assert bd_results(jpeg, vtm, "ms-ssim-rgb").value == pytest.approx(-68.946893564523, abs=1e-9)


def _swept(name: str, scale: dict[str, float]) -> dict:
    """A harness-style result over files a.png and b.png: each file's rates scaled by ``scale[file]``."""
    psnr = [30.0, 33.0, 36.0, 39.0]
    base = [0.25, 0.5, 1.0, 2.0]
    per_file = {f: {"bpp": [r * k for r in base], "psnr-rgb": psnr} for f, k in scale.items()}
    mean = [sum(pf["bpp"][i] for pf in per_file.values()) / len(per_file) for i in range(4)]
    return {"name": name, "results": {"bpp": mean, "psnr-rgb": psnr}, "per_file": per_file}


def test_per_file_bd_rates_show_where_a_gain_comes_from():
    from nctk.rd.bdrate import bd_per_file

    anchor = _swept("anchor", {"a.png": 1.0, "b.png": 1.0, "c.png": 1.0})
    test = _swept("test", {"a.png": 0.5, "b.png": 1.0, "d.png": 1.0})
    out = bd_per_file(anchor, test, "psnr-rgb")
    assert list(out["files"]) == ["a.png", "b.png"] and out["compared"] == 2  # only files both measured
    assert out["files"]["a.png"].value == pytest.approx(-50.0) and out["files"]["b.png"].value == pytest.approx(0.0)
    assert out["mean"] == pytest.approx(-25.0)
    test["per_file"]["b.png"]["psnr-rgb"] = [40.0, 41.0, 42.0, 43.0]  # no overlap on b.png: said, not fatal
    out = bd_per_file(anchor, test, "psnr-rgb")
    assert isinstance(out["files"]["b.png"], str) and "do not overlap" in out["files"]["b.png"]
    assert out["compared"] == 1 and out["mean"] == pytest.approx(-50.0)


def test_per_file_bd_needs_per_file_results_of_the_same_files():
    from nctk.rd.bdrate import bd_per_file

    published = {"name": "jpeg", "results": {"bpp": [0.25, 0.5, 1.0, 2.0], "psnr-rgb": [30.0, 33.0, 36.0, 39.0]}}
    with pytest.raises(BDError, match="no per-file results"):
        bd_per_file(published, _swept("t", {"a.png": 1.0}))
    with pytest.raises(BDError, match="share no files"):
        bd_per_file(_swept("a", {"a.png": 1.0}), _swept("t", {"z.png": 1.0}))


def test_the_cli_prints_per_file_bd_rates(tmp_path, capsys):
    import json

    from nctk.cli.main import main
    from nctk.rd.results import save

    save(_swept("anchor", {"a.png": 1.0, "b.png": 1.0}), tmp_path / "a.json")
    save(_swept("test", {"a.png": 0.5, "b.png": 0.8}), tmp_path / "b.json")
    assert main(["rd", "--bd-rate", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "per file (BD-rate): mean -35.00% over 2 of 2 files" in out and "  a.png: -50.00%" in out
    assert main(["rd", "--bd-rate", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["per_file_bd_rate_percent"]["b.png"] == pytest.approx(-20.0)
