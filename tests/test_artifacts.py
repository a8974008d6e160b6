"""Model artifacts: written, verified on open, refused when altered, pinned by their digest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save

from nctk.codec import artifacts
from nctk.codec.artifacts import ArtifactError
from nctk.entropy.tables import Tables, from_counts


def make(tmp_path, **kw):
    weights = save({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    tables = Tables([from_counts(np.array([5, 3, 1, 1]))]).to_bytes()
    return artifacts.write(tmp_path / "art", kw.pop("artifact_id", "toy-v1"), "toy",
                           {"weights.safetensors": weights, "tables.ntbl": tables}, meta={"note": "test"}, **kw)


def test_write_open_and_read_back(tmp_path):
    art = make(tmp_path)
    again = artifacts.open_folder(tmp_path / "art")
    assert again.digest == art.digest and len(art.digest) == 64
    assert np.array_equal(art.weights()["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert len(art.tables()) == 1
    assert art.meta == {"note": "test"} and art.codec == "toy" and art.id == "toy-v1"


def test_altered_or_missing_files_are_refused(tmp_path):
    make(tmp_path)
    w = tmp_path / "art" / "weights.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        artifacts.open_folder(tmp_path / "art")
    w.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        artifacts.open_folder(tmp_path / "art")


@pytest.mark.parametrize("edit, match", [
    (lambda m: m.update(files={"../evil": {"bytes": 0, "sha256": "0" * 64}}), "bad file name"),
    (lambda m: m.update(files={".hidden": {"bytes": 0, "sha256": "0" * 64}}), "bad file name"),
    (lambda m: m.update(version=99), "version"),
    (lambda m: m.update(format="other"), "not an nctk artifact"),
    (lambda m: m["files"]["tables.ntbl"].update(bytes=-1), "bad manifest entry"),
    (lambda m: m.update(id="../x"), "bad artifact id"),
])
def test_hostile_manifests_are_refused(tmp_path, edit, match):
    make(tmp_path)
    mpath = tmp_path / "art" / "manifest.json"
    m = json.loads(mpath.read_text())
    edit(m)
    mpath.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=match):
        artifacts.open_folder(tmp_path / "art")


def test_manifest_that_is_not_json_is_one_clear_error(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\xff{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        artifacts.open_folder(tmp_path)
    with pytest.raises(ArtifactError, match="cannot read"):
        artifacts.open_folder(tmp_path / "nowhere")


def test_digest_does_not_depend_on_manifest_formatting(tmp_path):
    art = make(tmp_path)
    mpath = tmp_path / "art" / "manifest.json"
    mpath.write_text(json.dumps(json.loads(mpath.read_text()), indent=7))
    assert artifacts.open_folder(tmp_path / "art").digest == art.digest


def test_write_refuses_an_existing_artifact(tmp_path):
    make(tmp_path)
    with pytest.raises(ArtifactError, match="already holds"):
        make(tmp_path)


def test_shipped_lookup_pins_the_digest(tmp_path, monkeypatch):
    models = tmp_path / "models"
    art = artifacts.write(models / "toy-v1", "toy-v1", "toy", {"a.bin": b"abc"})
    monkeypatch.setattr(artifacts, "_models_dir", lambda: models)
    monkeypatch.setattr(artifacts, "_LOADED", {})
    assert artifacts.shipped() == ["toy-v1"]
    assert artifacts.load("toy-v1", art.digest).digest == art.digest
    with pytest.raises(ArtifactError, match="use the nctk version that wrote it"):
        artifacts.load("toy-v1", "f" * 64)
    with pytest.raises(ArtifactError, match="not shipped"):
        artifacts.load("other-v1")
