"""`nctk rd` end to end: a tiny sweep with results, plots and anchors, BD figures, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def run_nctk(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nctk.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert p.stderr.startswith("nctk: error:") and p.stderr.count("\n") == 1, p.stderr
    return p.stderr


def curve(name: str, bpp: list[float], psnr: list[float]) -> dict:
    return {"name": name, "description": name, "results": {"bpp": bpp, "psnr-rgb": psnr}}


@pytest.fixture
def images(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        y, x = np.mgrid[0:48, 0:64]
        img = np.stack([x * 4, y * 5, (x + y) * 2], -1) + rng.integers(0, 20, (48, 64, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"img{i}.png")
    (d / "notes.txt").write_text("not an image: skipped by suffix")
    return d


def test_sweep_writes_results_plots_and_bd_figures(images: Path, tmp_path: Path):
    anchor = tmp_path / "anchor.json"
    anchor.write_text(json.dumps(curve("anchor", [0.5, 1, 2, 4, 8], [20, 25, 30, 35, 40])))
    p = run_nctk("rd", "--codec", "jpeg-420,webp", "--data", str(images), "--quality", "20", "50", "80",
                 "--out", "res.json", "--plot", "rd.png", "--compare", str(anchor), "--no-cache", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "jpeg-420: 2 file(s)" in p.stdout and "vs anchor:" in p.stdout
    for cid in ("jpeg-420", "webp"):
        res = json.loads((tmp_path / f"res-{cid}.json").read_text())
        assert res["name"] == cid and len(res["results"]["bpp"]) == 3
        assert set(res["per_file"]) == {"img0.png", "img1.png"}
    png = (tmp_path / "rd.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_bd_rate_of_two_results_files(tmp_path: Path):
    (tmp_path / "a.json").write_text(json.dumps(curve("A", [1, 2, 4, 8], [30, 33, 36, 39])))
    (tmp_path / "b.json").write_text(json.dumps(curve("B", [0.5, 1, 2, 4], [30, 33, 36, 39])))
    p = run_nctk("rd", "--bd-rate", "a.json", "b.json", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["bd_rate_percent"] == pytest.approx(-50.0) and out["test"] == "B"
    p = run_nctk("rd", "--bd-rate", "a.json", "b.json", cwd=tmp_path)
    assert "BD-rate -50.00%" in p.stdout


@pytest.mark.parametrize("args, expect", [
    (["--bd-rate", "a.json", "far.json"], "overlap"),
    (["--bd-rate", "a.json", "missing.json"], "missing.json"),
    (["--bd-rate", "a.json", "bad.json"], "bad.json"),
    (["--codec", "jpeg-2001", "--data", "."], "jpeg-2001"),
    (["--codec", "webp", "--data", "nowhere"], "nowhere"),
    (["--codec", "webp", "--data", "broken.png"], "broken.png"),
    (["--codec", "webp"], "--data"),
])
def test_errors_are_one_line(tmp_path: Path, args: list[str], expect: str):
    (tmp_path / "a.json").write_text(json.dumps(curve("A", [1, 2, 4, 8], [30, 33, 36, 39])))
    (tmp_path / "far.json").write_text(json.dumps(curve("far", [1, 2, 4, 8], [50, 53, 56, 59])))
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    extra = ["--no-cache"] if "--codec" in args else []  # leave the user's cache folder alone
    assert expect in one_line_error(run_nctk("rd", *args, *extra, cwd=tmp_path))


def test_a_second_run_with_the_same_cache_measures_nothing(images: Path, tmp_path: Path):
    args = ["rd", "--codec", "jpeg-420,webp", "--data", str(images), "--quality", "30", "60"]
    first = run_nctk(*args, "--cache", "items", "--out", "first.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "0 of 8 items came from the cache (items)\n" in first.stderr
    second = run_nctk(*args, "--cache", "items", "--out", "second.json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert [line for line in second.stderr.splitlines() if "cache" in line] == \
        ["8 of 8 items came from the cache (items)"]
    assert second.stdout == first.stdout
    for cid in ("jpeg-420", "webp"):  # reused items keep their timings: the results are the same, date aside
        a, b = (json.loads((tmp_path / f"{n}-{cid}.json").read_text()) for n in ("first", "second"))
        assert a["meta"].pop("cached_items") == 0 and b["meta"].pop("cached_items") == 4
        del a["meta"]["date"], b["meta"]["date"]
        assert a == b
    off = run_nctk(*args, "--no-cache", cwd=tmp_path)
    assert off.returncode == 0 and "cache" not in off.stderr
    both = run_nctk(*args, "--cache", "items", "--no-cache", cwd=tmp_path)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert "needs a folder" in one_line_error(run_nctk(*args, "--cache", "", cwd=tmp_path))


def test_an_interrupted_sweep_says_where_its_items_are_and_resumes(images: Path, tmp_path: Path, monkeypatch,
                                                                  capsys):
    import nctk.rd.images as rdimages
    from nctk.cli.main import main

    measure, done = rdimages.measure, []

    def interrupted(codec, img, quality, metrics=None):
        if len(done) == 3:
            raise KeyboardInterrupt
        done.append(quality)
        return measure(codec, img, quality, metrics)

    monkeypatch.setattr(rdimages, "measure", interrupted)
    args = ["rd", "--codec", "webp", "--data", str(images), "--quality", "30", "60", "--cache", str(tmp_path / "c")]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert f"finished items are cached in {tmp_path / 'c'}: run the same command again to resume" in err
    assert err.endswith("nctk: interrupted\n")
    monkeypatch.setattr(rdimages, "measure", measure)
    assert main(args) == 0
    assert f"3 of 4 items came from the cache ({tmp_path / 'c'})" in capsys.readouterr().err


def test_the_codec_help_names_every_rd_codec():
    from nctk.cli.main import RD_CODEC_HELP
    from nctk.rd.baselines import BASELINES

    named = {w.strip(",;") for w in RD_CODEC_HELP.split()}
    assert set(BASELINES) <= named, sorted(set(BASELINES) - named)
