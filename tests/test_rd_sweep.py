"""nctk.rd sweeps: image baselines, the CompressAI-schema results they produce, and the plot drawn from them."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from nctk.entropy.errors import CodecError
from nctk.rd.baselines import IMAGE_BASELINES, ImageCodec, available_ids, get
from nctk.rd.images import load_rgb
from nctk.rd.metrics import psnr_rgb
from nctk.rd.plot import plot
from nctk.rd.sweep import TIMING_KEYS, run_item, sweep

QUALITIES = {"jpeg-420": [10, 50, 90], "webp": [10, 50, 90]}
KEYS = {"bpp", "psnr-rgb", "encoding_time", "decoding_time"}  # no ms-ssim-rgb: the images are too small for it


def gradient(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / w, 255 * y / h, 128 + 90 * np.sin(x / 5 + y / 9)], -1)
    return np.clip(base + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rd_images")
    paths = [folder / "wide.png", folder / "tall.png"]
    Image.fromarray(gradient(48, 64, 0)).save(paths[0])
    Image.fromarray(gradient(64, 48, 1)).convert("RGBA").save(paths[1])  # alpha is dropped on loading
    return paths


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """Sweeps here cache their items in a fresh folder, not the user's (tests/test_rd_cache.py tests the cache)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("nctk.rd.cache.default_dir", lambda: tmp_path_factory.getbasetemp() / "rd-cache")
        yield


@pytest.fixture(scope="module")
def swept(files):
    return sweep(["jpeg-420", "webp"], files, QUALITIES, progress=False, cache=False)


def without_timings(result: dict) -> dict:
    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if k not in TIMING_KEYS}

    return {**result, "results": strip(result["results"]),
            "per_file": {f: strip(d) for f, d in result["per_file"].items()},
            "meta": {k: v for k, v in result["meta"].items() if k not in ("date", "cached_items")}}


def test_sweep_results_follow_the_compressai_schema(swept):
    assert list(swept) == ["jpeg-420", "webp"]
    for cid, r in swept.items():
        assert r["name"] == cid and "Pillow" in r["description"]
        assert set(r["results"]) == KEYS and all(len(v) == 3 for v in r["results"].values())
        assert set(r["per_file"]) == {"wide.png", "tall.png"}
        assert all(set(d) == KEYS | {"bytes"} and len(d["bpp"]) == 3 for d in r["per_file"].values())
        meta = r["meta"]
        assert meta["files"] == 2 and meta["qualities"] == [10, 50, 90] and meta["codec_version"].startswith("Pillow")
        assert meta["ms_ssim_omitted"] == ["wide.png", "tall.png"] and "161" in meta["ms_ssim_note"]
        assert meta["date"].endswith("+00:00")


def test_sweep_curves_are_means_over_files_and_plausible(swept):
    for r in swept.values():
        files = list(r["per_file"].values())
        for key in KEYS:
            assert r["results"][key] == pytest.approx([np.mean([f[key][i] for f in files]) for i in range(3)])
        for f in [*files, r["results"]]:
            assert f["bpp"] == sorted(f["bpp"]) and f["bpp"][0] < f["bpp"][-1]  # rate grows with quality
            assert all(math.isfinite(p) and 20 < p < 60 for p in f["psnr-rgb"])
            assert all(t >= 0 for t in f["encoding_time"] + f["decoding_time"])
        assert all(0.05 < b < 24 for b in r["results"]["bpp"])


def test_sweep_is_deterministic_apart_from_timings(swept, files):
    again = sweep(["jpeg-420", "webp"], files, QUALITIES, progress=False, cache=False)
    assert {k: without_timings(v) for k, v in again.items()} == {k: without_timings(v) for k, v in swept.items()}


def test_run_item_measures_what_the_sweep_averages(swept, files):
    item = run_item("webp", files[1], 50)
    assert (item["codec"], item["quality"], item["height"], item["width"]) == ("webp", 50, 64, 48)
    assert item["bpp"] == 8 * item["bytes"] / (64 * 48)
    assert item["bpp"] == swept["webp"]["per_file"]["tall.png"]["bpp"][1]
    assert item["psnr-rgb"] == swept["webp"]["per_file"]["tall.png"]["psnr-rgb"][1]
    assert "ms-ssim-rgb" not in item


def test_ms_ssim_is_measured_on_images_large_enough(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(gradient(168, 176, 2)).save(path)
    r = sweep(["jpeg-420"], [path], {"jpeg-420": [30]}, progress=False)["jpeg-420"]
    assert 0.8 < r["results"]["ms-ssim-rgb"][0] < 1 and r["meta"]["ms_ssim_omitted"] == []
    assert "ms_ssim_note" not in r["meta"]


@pytest.mark.parametrize("content", [b"not an image at all", b""])
def test_an_unreadable_file_is_one_clear_error_naming_it(tmp_path, files, content):
    bad = tmp_path / "broken.png"
    bad.write_bytes(content)
    with pytest.raises(CodecError, match="cannot read image .*broken.png"):
        sweep(["jpeg-420"], [files[0], bad], progress=False)
    with pytest.raises(CodecError, match="cannot read image .*missing.png"):
        run_item("jpeg-420", tmp_path / "missing.png", 50)


def test_a_truncated_file_fails_on_loading(tmp_path, files):
    cut = tmp_path / "cut.png"
    cut.write_bytes(files[0].read_bytes()[:200])
    with pytest.raises(CodecError, match="cannot read image .*cut.png"):
        load_rgb(cut)


def test_high_bit_depth_images_are_refused_rather_than_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(path)
    with pytest.raises(CodecError, match="deep.png.*not 8-bit"):
        load_rgb(path)


def test_unknown_codecs_and_bad_qualities_are_refused_up_front(files):
    with pytest.raises(CodecError, match="unknown rd codec 'jpeg-2001'; available: jpeg-420, jpeg-444, webp"):
        sweep(["jpeg-420", "jpeg-2001"], files)
    with pytest.raises(CodecError, match=r"jpeg-420: qualities must be .*\[1, 100\], got \[0, 50\]"):
        sweep(["jpeg-420"], files, {"jpeg-420": [0, 50]})
    with pytest.raises(CodecError, match="not swept: webp"):
        sweep(["jpeg-420"], files, {"webp": [50]})
    with pytest.raises(CodecError, match="listed twice"):
        sweep(["jpeg-420"], [files[0], files[0]])
    with pytest.raises(CodecError, match="at least one input file"):
        sweep(["jpeg-420"], [])


def test_progress_bar_only_on_a_terminal(files, capsys, monkeypatch):
    sweep(["jpeg-420"], files, {"jpeg-420": [50]})
    assert capsys.readouterr().err == ""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    fake = Terminal()
    monkeypatch.setattr("sys.stderr", fake)
    sweep(["jpeg-420"], files, {"jpeg-420": [40, 50]})
    out = fake.getvalue()
    assert "4/4 jpeg-420 q=40 tall.png" in out and "q=50 wide.png (cached)" in out and out.endswith("\n")
    fake.seek(0)
    fake.truncate()
    sweep(["jpeg-420"], files, {"jpeg-420": [50]}, progress=False)
    assert fake.getvalue() == ""


@pytest.mark.parametrize("codec_id", sorted(IMAGE_BASELINES))
def test_each_baseline_round_trips_or_says_it_is_unavailable(codec_id):
    codec = IMAGE_BASELINES[codec_id]
    assert isinstance(codec, ImageCodec)
    assert list(codec.qualities) == sorted(codec.qualities)
    lo, hi = codec.quality_range
    assert all(lo <= q <= hi for q in codec.qualities)
    if not codec.available():
        assert codec_id not in available_ids()
        with pytest.raises(CodecError, match=f"'{codec_id}' is not available here"):
            get(codec_id)
        return
    img = gradient(40, 56, 3)
    low, high = codec.qualities[0], codec.qualities[-1]
    small, big = codec.encode(img, low), codec.encode(img, high)
    assert len(small) < len(big) and codec.encode(img, high) == big
    out = codec.decode(big)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert psnr_rgb(img, out) > 30
    with pytest.raises(CodecError, match="quality must be an integer"):
        codec.encode(img, hi + 1)
    with pytest.raises(CodecError, match="cannot decode"):
        codec.decode(b"\x00" * 64)


def test_jpeg_444_keeps_more_colour_than_420():
    img = gradient(48, 64, 4)
    a, b = get("jpeg-420"), get("jpeg-444")
    assert psnr_rgb(img, b.decode(b.encode(img, 90))) > psnr_rgb(img, a.decode(a.encode(img, 90)))


def test_plot_writes_a_png(swept, tmp_path):
    anchor = {"name": "published", "results": {"bpp": [0.5, 1.0, 2.0], "psnr-rgb": [28.0, 31.0, math.inf]}}
    out = plot(list(swept.values()), "psnr-rgb", tmp_path / "rd.png", [anchor])
    data = out.read_bytes()
    assert out == tmp_path / "rd.png" and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with Image.open(out) as im:
        assert im.size[0] > 500 and im.size[1] > 400
    with pytest.raises(CodecError, match="curve 'jpeg-420' has no results.*'ms-ssim-rgb'"):
        plot(list(swept.values()), "ms-ssim-rgb", tmp_path / "no.png")
