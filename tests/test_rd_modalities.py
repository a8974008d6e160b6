"""nctk rd beyond images: audio and tensor sweeps through the same harness, CLI included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nctk.cli.main import main
from nctk.entropy.errors import CodecError
from nctk.rd.results import load, validate
from nctk.rd.sweep import sweep

sf = pytest.importorskip("soundfile")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("rd_audio")
    rng = np.random.default_rng(3)
    t = np.arange(2 * 16000) / 16000
    paths = []
    for i, f0 in enumerate((140.0, 220.0)):
        # a voiced-like tone with harmonics, a slow envelope and a little noise
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * (0.5 + 0.4 * np.sin(2 * np.pi * 2 * t))
        x = 0.2 * x / np.max(np.abs(x)) + 0.01 * rng.standard_normal(t.size)
        paths.append(folder / f"clip{i}.wav")
        sf.write(paths[-1], x.astype(np.float32), 16000, subtype="PCM_16")
    (folder / "notes.txt").write_text("not audio")
    return paths


def test_an_audio_sweep_gives_kbps_curves_with_the_metrics_asked_for(clips):
    r = sweep(["opus"], clips, {"opus": [12, 32]}, metrics=["fast"], progress=False, cache=False)["opus"]
    validate(r)
    assert list(r["results"])[0] == "kbps" and r["meta"]["modality"] == "audio"
    assert set(r["results"]) == {"kbps", "stoi", "si-snr", "log-mel", "lsd-4k", "encoding_time", "decoding_time"}
    assert r["meta"]["metrics"] == ["stoi", "si-snr", "log-mel", "lsd-4k"]
    kbps, logmel = r["results"]["kbps"], r["results"]["log-mel"]
    assert kbps[0] < kbps[1] and logmel[0] > logmel[1]  # more bits, less distortion
    assert all("delay_samples" in pf and "bytes" in pf for pf in r["per_file"].values())


def test_flac_is_exact_and_costs_the_most(clips):
    r = sweep(["flac"], clips, metrics=["si-snr", "log-mel"], progress=False, cache=False)["flac"]
    assert r["meta"]["lossless"] and r["results"]["log-mel"] == [0.0] and r["results"]["si-snr"][0] > 150


@pytest.mark.parametrize("codecs, kwargs, message", [
    (["opus"], {"metrics": ["pesq-nb"]}, "known: visqol-speech"),
    (["jpeg-420"], {"metrics": ["stoi"]}, "fixed set of metrics"),
    (["opus", "jpeg-420"], {}, "one kind of data"),
])
def test_bad_metric_and_modality_choices_are_refused(clips, codecs, kwargs, message):
    with pytest.raises(CodecError, match=message):
        sweep(codecs, clips, progress=False, cache=False, **kwargs)


def test_an_image_given_to_an_audio_codec_is_one_clear_error(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    with pytest.raises(CodecError, match="cannot read audio .*x.png"):
        sweep(["opus"], [tmp_path / "x.png"], progress=False, cache=False)


def test_the_cli_sweeps_a_folder_of_audio(clips, tmp_path, capsys):
    out, png = tmp_path / "rd.json", tmp_path / "rd.png"
    assert main(["rd", "--codec", "opus,vorbis", "--data", str(clips[0].parent), "--quality", "16", "48",
                 "--metrics", "stoi,log-mel", "--metric", "log-mel", "--out", str(out), "--plot", str(png),
                 "--no-cache"]) == 0
    text = capsys.readouterr().out
    assert "opus: 2 file(s); quality, kbps, log-mel" in text
    for cid in ("opus", "vorbis"):
        r = load(tmp_path / f"rd-{cid}.json")
        assert r["meta"]["file_names"] == ["clip0.wav", "clip1.wav"]  # notes.txt is not audio: skipped
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "rd-stoi.png").is_file()
    # BD on a distortion (lower is better) compares without calling the curve non-monotone
    assert main(["rd", "--bd-rate", str(tmp_path / "rd-opus.json"), str(tmp_path / "rd-vorbis.json"),
                 "--metric", "log-mel", "--json"]) in (0, 1)


def test_the_cli_lists_the_rd_codecs(capsys):
    assert main(["rd", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = {line.split()[0]: line for line in lines}
    assert {"jpeg-420", "opus", "flac", "zstd-3", "tensor-lossless"} <= ids.keys()
    assert "ready" in ids["jpeg-420"] and " audio " in ids["opus"]


def test_the_cli_refuses_mixed_modalities_and_bad_worker_counts(clips, capsys):
    assert main(["rd", "--codec", "opus,webp", "--data", str(clips[0])]) == 1
    assert "mixes audio and image codecs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["rd", "--codec", "opus", "--data", str(clips[0]), "--workers", "0"])
    assert e.value.code == 2


def test_json_output_of_bd_rate_on_audio_curves(tmp_path, capsys):
    def curve(name, shift):
        return {"name": name, "results": {"kbps": [6, 12, 24, 48], "log-mel": [0.6 - shift, 0.35 - shift,
                                                                                 0.25 - shift, 0.18 - shift]}}

    from nctk.rd.results import save

    save(curve("a", 0.0), tmp_path / "a.json")
    save(curve("b", 0.05), tmp_path / "b.json")
    assert main(["rd", "--bd-rate", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--metric", "log-mel",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bd_rate_percent"] < 0 and out["bd_quality"] == pytest.approx(-0.05, abs=0.02)


@pytest.fixture(scope="module")
def tensor_files(tmp_path_factory) -> list[Path]:
    from safetensors.numpy import save_file

    folder = tmp_path_factory.mktemp("rd_tensors")
    rng = np.random.default_rng(5)
    a = folder / "weights.safetensors"
    save_file({"w": (0.05 * rng.standard_normal((64, 48))).astype(np.float32),
               "b": (0.01 * rng.standard_normal(48)).astype(np.float32),
               "ids": np.arange(16, dtype=np.int64)}, str(a))
    b = folder / "field.npy"
    y, x = np.mgrid[0:64, 0:64] / 64
    np.save(b, (np.sin(6 * x) * np.cos(4 * y) + 0.01 * rng.standard_normal((64, 64))).astype(np.float32))
    return [a, b]


def test_a_tensor_sweep_puts_nctk_beside_its_lossless_peers(tensor_files):
    from nctk.rd.baselines import available_ids

    codecs = [c for c in ("zstd-3", "tensor-lossless", "pcodec") if c in available_ids("tensor")]
    curves = sweep(codecs, tensor_files, progress=False, cache=False)
    for cid, r in curves.items():
        validate(r)
        assert r["meta"]["lossless"] and set(r["results"]) == {"bits_per_value", "ratio", "encoding_time",
                                                               "decoding_time"}
        assert 0 < r["results"]["ratio"][0] < 1.05, cid
    assert curves["tensor-lossless"]["results"]["bits_per_value"][0] < curves["zstd-3"]["results"]["bits_per_value"][0]


def test_a_lossy_tensor_sweep_reports_errors_within_the_bound(tensor_files):
    from nctk.rd.baselines import available_ids

    if "sz3" not in available_ids("tensor"):
        pytest.skip("pysz (SZ3) is not installed")
    r = sweep(["sz3"], tensor_files, {"sz3": [8, 12]}, progress=False, cache=False)["sz3"]
    res = r["results"]
    assert {"max-abs-error", "rel-frobenius", "psnr-range"} <= set(res)
    assert res["bits_per_value"][0] < res["bits_per_value"][1] and res["psnr-range"][0] < res["psnr-range"][1]
    assert res["max-abs-error"][1] < res["max-abs-error"][0]


def test_the_cli_sweeps_tensors_and_tabulates_psnr(tensor_files, tmp_path, capsys):
    assert main(["rd", "--codec", "zstd-3", "--data", *map(str, tensor_files), "--no-cache"]) == 0
    assert "zstd-3: 2 file(s); quality, bits_per_value, ratio" in capsys.readouterr().out
