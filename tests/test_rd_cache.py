"""Resumable sweeps: finished items are cached on disk and never measured twice, and reused results equal fresh ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nctk.rd.images as rdimages
import nctk.rd.sweep as rdsweep
from nctk.entropy.errors import CodecError
from nctk.rd.baselines import get
from nctk.rd.cache import HARNESS_VERSION, ItemCache, ItemKey, default_dir, file_sha256, open_cache
from nctk.rd.sweep import TIMING_KEYS, sweep

CODECS = ["jpeg-420", "webp"]
QUALITIES = {"jpeg-420": [20, 50, 80], "webp": [20, 50, 80]}
TOTAL = 2 * 2 * 3  # files x codecs x qualities


def gradient(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / w, 255 * y / h, 128 + 90 * np.sin(x / 5 + y / 9)], -1)
    return np.clip(base + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """Two small PPM images: raw pixels after a short header, so flipping one byte keeps the file valid."""
    paths = [tmp_path / "a.ppm", tmp_path / "b.ppm"]
    Image.fromarray(gradient(48, 64, 0)).save(paths[0])
    Image.fromarray(gradient(64, 48, 1)).save(paths[1])
    return paths


@pytest.fixture
def calls(monkeypatch) -> dict[str, int]:
    """Counts the measurements a sweep makes; set ``calls["stop_after"]`` to interrupt it (as Ctrl-C would)."""
    counter = {"n": 0, "stop_after": -1}
    measure = rdimages.measure

    def counted(codec, img, quality, metrics=None):
        if counter["n"] == counter["stop_after"]:
            raise KeyboardInterrupt
        counter["n"] += 1
        return measure(codec, img, quality, metrics)

    monkeypatch.setattr(rdimages, "measure", counted)
    return counter


def run(files: list[Path], cache, qualities=None) -> dict:
    return sweep(CODECS, files, qualities or QUALITIES, progress=False, cache=cache)


def comparable(curves: dict, timings: bool = False) -> dict:
    """The curves without what legitimately differs between runs: the date, the cache count and (unless asked)
    the timings."""
    def strip(d: dict) -> dict:
        return {k: v for k, v in d.items() if timings or k not in TIMING_KEYS}

    return {cid: {**r, "results": strip(r["results"]), "per_file": {f: strip(d) for f, d in r["per_file"].items()},
                  "meta": {k: v for k, v in r["meta"].items() if k not in ("date", "cached_items")}}
            for cid, r in curves.items()}


def cached(curves: dict) -> int:
    return sum(r["meta"]["cached_items"] for r in curves.values())


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json"))


def test_an_interrupted_sweep_resumes_without_measuring_finished_items(files, tmp_path, calls):
    folder = tmp_path / "cache"
    calls["stop_after"] = 5
    with pytest.raises(KeyboardInterrupt):
        run(files, folder)
    assert calls["n"] == 5 and len(entries(folder)) == 5  # each item was stored as soon as it was measured
    assert not list(folder.glob(".*"))  # no temporary files left behind
    stored = [json.loads(p.read_text())["item"] for p in entries(folder)]

    calls.update(n=0, stop_after=-1)
    resumed = run(files, folder)
    assert calls["n"] == TOTAL - 5 and cached(resumed) == 5 and len(entries(folder)) == TOTAL

    calls["n"] = 0
    fresh = run(files, False)
    assert calls["n"] == TOTAL and cached(fresh) == 0
    assert comparable(resumed) == comparable(fresh)
    for item in stored:  # reused items report the timings measured when they were stored
        i = QUALITIES[item["codec"]].index(item["quality"])
        per_file = resumed[item["codec"]]["per_file"][Path(item["file"]).name]
        assert [per_file[k][i] for k in TIMING_KEYS] == [item[k] for k in TIMING_KEYS]

    calls["n"] = 0
    again = run(files, folder)
    assert calls["n"] == 0 and cached(again) == TOTAL
    assert comparable(again, timings=True) == comparable(resumed, timings=True)


def test_entries_hold_the_item_as_run_item_returns_it(files, tmp_path):
    folder = tmp_path / "cache"
    sweep(["webp"], files[:1], {"webp": [50]}, progress=False, cache=folder)
    (entry,) = entries(folder)
    data = json.loads(entry.read_text())
    key = ItemKey("webp", get("webp").version(), 50, file_sha256(files[0]))
    assert entry.name == f"{key.digest()}.json"
    assert data["key"] == {"codec": "webp", "codec_version": key.codec_version, "quality": 50,
                           "input_sha256": key.input_sha256, "metrics": "", "harness": HARNESS_VERSION}
    fresh = rdsweep.run_item("webp", files[0], 50)
    assert set(data["item"]) == set(fresh)
    assert {k: v for k, v in data["item"].items() if k not in TIMING_KEYS} == \
        {k: v for k, v in fresh.items() if k not in TIMING_KEYS}


def test_a_changed_input_file_is_measured_again(files, tmp_path, calls):
    folder = tmp_path / "cache"
    first = run(files, folder)
    data = bytearray(files[1].read_bytes())
    data[-1] ^= 1  # one byte of one pixel
    files[1].write_bytes(bytes(data))
    calls["n"] = 0
    second = run(files, folder)
    assert calls["n"] == TOTAL // 2 and cached(second) == TOTAL // 2  # only b.ppm's items
    assert comparable(second) == comparable(run(files, False))
    assert second["webp"]["per_file"]["a.ppm"] == first["webp"]["per_file"]["a.ppm"]


@pytest.mark.parametrize("damage", [
    b"",                                                    # emptied (e.g. by a power cut)
    b'{"key": {"codec": "webp"',                            # truncated
    b"\xff\xfe not utf-8",
    b"[1, 2, 3]",                                           # JSON, but not an entry
    "entry without its bpp",                                # a whole entry missing a number the sweep needs
    "entry of another key",                                 # moved or copied under the wrong name
])
def test_a_damaged_entry_is_measured_again_and_rewritten(files, tmp_path, calls, damage):
    folder = tmp_path / "cache"
    reference = run(files, folder)
    victim, other = entries(folder)[:2]
    if damage == "entry without its bpp":
        entry = json.loads(victim.read_text())
        del entry["item"]["bpp"]
        damage = json.dumps(entry).encode()
    elif damage == "entry of another key":
        damage = other.read_bytes()
    victim.write_bytes(damage)
    calls["n"] = 0
    again = run(files, folder)
    assert calls["n"] == 1 and cached(again) == TOTAL - 1
    assert comparable(again) == comparable(reference)
    assert json.loads(victim.read_text())["item"]["bpp"] > 0  # rewritten whole


def test_each_key_field_makes_a_different_entry():
    base = ItemKey("webp", "Pillow 13.0.0, libwebp 1.6.0", 50, "0" * 64)
    variants = [ItemKey("jpeg-420", base.codec_version, 50, base.input_sha256),
                ItemKey("webp", "Pillow 13.0.0, libwebp 1.6.1", 50, base.input_sha256),
                ItemKey("webp", base.codec_version, 51, base.input_sha256),
                ItemKey("webp", base.codec_version, 50, "1" + "0" * 63),
                ItemKey("webp", base.codec_version, 50, base.input_sha256, HARNESS_VERSION + 1)]
    digests = {k.digest() for k in [base, *variants]}
    assert len(digests) == 6 and all(len(d) == 64 for d in digests)
    assert base.digest() == ItemKey("webp", "Pillow 13.0.0, libwebp 1.6.0", 50, "0" * 64).digest()  # stable


def test_a_new_quality_or_codec_version_is_measured_again(files, tmp_path, calls, monkeypatch):
    folder = tmp_path / "cache"
    run(files, folder, {"jpeg-420": [20, 80], "webp": [20, 80]})
    calls["n"] = 0
    more = run(files, folder)  # adds quality 50
    assert calls["n"] == 2 * 2 and cached(more) == TOTAL - 4

    codec_type = type(get("webp"))
    real_version = codec_type.version
    monkeypatch.setattr(codec_type, "version", lambda self: real_version(self) + " (rebuilt)")
    calls["n"] = 0
    rebuilt = run(files, folder)  # a new library version: nothing measured by the old one is reused
    assert calls["n"] == TOTAL and cached(rebuilt) == 0
    assert rebuilt["webp"]["meta"]["codec_version"].endswith("(rebuilt)")


def test_without_a_cache_everything_is_measured_and_nothing_written(files, tmp_path, calls, monkeypatch):
    monkeypatch.setenv("NCTK_CACHE_DIR", str(tmp_path / "home-cache"))
    for _ in range(2):
        calls["n"] = 0
        assert cached(run(files, False)) == 0 and calls["n"] == TOTAL
    assert not (tmp_path / "home-cache").exists()


def test_the_default_folder_is_under_nctk_cache_dir(files, tmp_path, calls, monkeypatch):
    monkeypatch.setenv("NCTK_CACHE_DIR", str(tmp_path / "home-cache"))
    assert default_dir() == tmp_path / "home-cache" / "rd"
    run(files, None)
    assert len(entries(tmp_path / "home-cache" / "rd")) == TOTAL
    calls["n"] = 0
    assert cached(run(files, True)) == TOTAL and calls["n"] == 0
    monkeypatch.delenv("NCTK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_dir() == tmp_path / "xdg" / "nctk" / "rd"


def test_ms_ssim_survives_the_cache(tmp_path, calls):
    path = tmp_path / "big.ppm"
    Image.fromarray(gradient(168, 176, 2)).save(path)
    first = sweep(["jpeg-420"], [path], {"jpeg-420": [30]}, progress=False, cache=tmp_path / "cache")
    calls["n"] = 0
    second = sweep(["jpeg-420"], [path], {"jpeg-420": [30]}, progress=False, cache=tmp_path / "cache")
    assert calls["n"] == 0 and second["jpeg-420"]["meta"]["cached_items"] == 1
    assert comparable(second, timings=True) == comparable(first, timings=True)
    assert 0.8 < second["jpeg-420"]["results"]["ms-ssim-rgb"][0] < 1


def test_an_unusable_cache_folder_is_refused_up_front_and_a_failed_write_is_not_fatal(files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(CodecError, match="cannot use cache folder .*file/rd"):
        run(files, blocker / "rd")
    assert open_cache(False) is None
    item = {"bpp": 1.0}
    assert ItemCache(blocker / "rd").put(ItemKey("webp", "v", 50, "0" * 64), item) is False
    assert ItemCache(blocker / "rd").get(ItemKey("webp", "v", 50, "0" * 64)) is None
