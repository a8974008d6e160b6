"""Training image-wavelet's context model: a few steps, exact resume, held-out split, export to a working artifact,
and `nctk train image` on the command line. Tiny models and images: seconds, not minutes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from nctk.codec.artifacts import open_folder
from nctk.codec.image.choice import Grid
from nctk.codec.image.wavelet import ImageWavelet
from nctk.train import image as T

TINY = dict(low_widths=(4,), detail_widths=(4, 4), batch=2, crop=64, grid=Grid(-1024, 7, 25, 4).as_json())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as `nctk train` uses by default: many tiny ops, and shared cores, make more threads slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for k in range(8):
        base = rng.integers(0, 256, (3,)) + np.cumsum(rng.normal(0, 3, (70, 90, 3)), axis=1)
        Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).save(folder / f"img{k}.png")
    return folder


def test_held_out_split_is_by_name_and_about_5_percent():
    names = [Path(f"x/{i}.jpg") for i in range(2000)]
    held = [p for p in names if T.held_out(p)]
    assert 60 < len(held) < 140
    assert [p for p in names if T.held_out(Path("elsewhere") / p.name)] == held


def test_refuses_kodak_and_empty_folders(tmp_path):
    (tmp_path / "kodak").mkdir()
    (tmp_path / "kodak" / "kodim01.png").write_bytes(b"")
    with pytest.raises(T.TrainError, match="Kodak"):
        T.list_images([tmp_path / "kodak"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(T.TrainError, match="no images"):
        T.list_images([tmp_path / "empty"])


def test_batches_are_a_function_of_seed_and_step(images):
    imgs = T._load(T.list_images([images]))
    cfg = T.Config(**TINY)
    a, b = T.batch(imgs, 7, cfg), T.batch(imgs, 7, cfg)
    assert np.array_equal(a[0], b[0]) and a[2] == b[2]
    assert not np.array_equal(T.batch(imgs, 8, cfg)[0], a[0])


def _weights(folder: Path) -> dict:
    return load_file(str(folder / "model.safetensors"))


def test_resume_continues_exactly(images, tmp_path):
    cfg = T.Config(**TINY, seed=5)
    quiet = lambda msg: None  # noqa: E731
    straight = T.train([images], tmp_path / "a", 10, cfg=cfg, max_steps=4, log=quiet)
    T.train([images], tmp_path / "b", 10, cfg=cfg, max_steps=2, log=quiet)
    with pytest.raises(T.TrainError, match="resume"):
        T.train([images], tmp_path / "b", 10, cfg=cfg, max_steps=2, log=quiet)
    resumed = T.train([images], tmp_path / "b", 10, resume=True, max_steps=2, log=quiet)
    assert resumed["step"] == straight["step"] == 4
    wa, wb = _weights(tmp_path / "a" / "last"), _weights(tmp_path / "b" / "last")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    state = json.loads((tmp_path / "b" / "last" / "state.json").read_text())
    assert state["config"]["seed"] == 5 and len(state["history"]) == 2 and (tmp_path / "b" / "best").is_dir()


def test_resume_with_a_new_learning_rate_records_it(images, tmp_path):
    cfg = T.Config(**TINY, seed=5)
    quiet = lambda msg: None  # noqa: E731
    T.train([images], tmp_path / "c", 10, cfg=cfg, max_steps=1, log=quiet)
    with pytest.raises(T.TrainError, match="learning rate"):
        T.train([images], tmp_path / "c", 10, resume=True, max_steps=1, lr=-1.0, log=quiet)
    state = T.train([images], tmp_path / "c", 10, resume=True, max_steps=1, lr=2e-4, log=quiet)
    assert state["config"]["lr"] == 2e-4 and state["lr_changes"] == [{"step": 1, "lr": 2e-4}]
    saved = json.loads((tmp_path / "c" / "last" / "state.json").read_text())
    assert saved["config"]["lr"] == 2e-4 and saved["lr_changes"] == state["lr_changes"]


def test_export_makes_a_working_model(images, tmp_path):
    cfg = T.Config(**TINY)
    T.train([images], tmp_path / "ck", 10, cfg=cfg, max_steps=3, log=lambda m: None)
    art = T.export(tmp_path / "ck" / "last", "image-wavelet-t", tmp_path / "art")
    assert art.codec == "image-wavelet" and art.meta["training"]["steps"] == 3
    assert sum(f["bytes"] for f in art.manifest["files"].values()) < 5 << 20
    with pytest.raises(T.TrainError, match="force"):
        T.export(tmp_path / "ck" / "last", "image-wavelet-t", tmp_path / "art")
    assert open_folder(T.export(tmp_path / "ck" / "last", "image-wavelet-t", tmp_path / "art", force=True).folder)
    codec = ImageWavelet(tmp_path / "art")
    img = np.asarray(Image.open(images / "img0.png"))
    exact = codec.decode(codec.encode(img, step=1))
    assert np.array_equal(exact, img)


def test_float_twin_tracks_the_integer_model(images, tmp_path):
    """The exported integer model codes about as many bits as the float twin's likelihood promised."""
    cfg = T.Config(**TINY)
    T.train([images], tmp_path / "ck", 10, cfg=cfg, max_steps=20, log=lambda m: None)
    T.export(tmp_path / "ck" / "last", "image-wavelet-t", tmp_path / "art")
    model = T.FloatModel(cfg)
    T._load_checkpoint(tmp_path / "ck" / "last", model, None)
    model.eval()
    img = np.asarray(Image.open(images / "img3.png"))[:64, :64]
    d = 320
    with torch.no_grad():
        promised = float(T.rate_bits(model, T.passes(img[None], np.array([False]), d), d)) / 8
    enc = ImageWavelet(tmp_path / "art").encode(img, step=d)
    coded = sum(len(c) for s in enc.sections for c in s.chunks) - 8 * len(enc.sections)  # less the rANS states
    assert 0.8 < coded / promised < 1.25, (coded, promised)


def test_cli_train_and_export(images, tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "nctk.cli", "train", "image", *args], capture_output=True,
                              text=True, timeout=300)

    p = cli("--out", str(tmp_path / "ck"))
    assert p.returncode == 1 and "--data" in p.stderr
    p = cli("--data", str(images), "--out", str(tmp_path / "ck"), "--minutes", "0.01")
    assert p.returncode == 0, p.stderr
    assert "held out" in p.stderr and (tmp_path / "ck" / "last" / "state.json").is_file()
    p = cli("--out", str(tmp_path / "ck"), "--export", "--export-dir", str(tmp_path / "art"))
    assert p.returncode == 1 and "--model-id" in p.stderr and not (tmp_path / "art").exists()
    p = cli("--out", str(tmp_path / "ck"), "--export", "--model-id", "image-wavelet-cli",
            "--export-dir", str(tmp_path / "art"))
    assert p.returncode == 0, p.stderr
    assert open_folder(tmp_path / "art").id == "image-wavelet-cli"
