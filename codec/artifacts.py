"""Model artifacts: the frozen files a learned codec decodes with, checked against a manifest on load.

An artifact is a folder holding ``manifest.json`` and the files it lists, typically ``weights.safetensors``
(never pickle) and ``tables.ntbl`` (frozen entropy tables, :meth:`nctk.entropy.tables.Tables.to_bytes`).
The manifest is canonical JSON::

    {"format": "nctk-artifact", "version": 1, "id": "image-wavelet-v1", "codec": "image-wavelet",
     "files": {"weights.safetensors": {"bytes": 123, "sha256": "..."}, ...}, "meta": {...}}

Its own SHA-256, the artifact's *digest*, covers every file's hash, so it names the exact bytes a codec
decodes with; codecs record it in their header and refuse to decode with any other artifact. Shipped
artifacts live in ``assets/models/<id>/`` (installed as ``nctk.assets``); users' own checkpoints come from
a folder they name. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from nctk.entropy.errors import FormatError, NctkError

__all__ = ["FORMAT", "VERSION", "Artifact", "ArtifactError", "load", "open_folder", "shipped", "write"]

FORMAT = "nctk-artifact"
VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 1 << 20
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # plain names: no folders, no dotfiles
_ID = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")


class ArtifactError(NctkError):
    """A model artifact is missing, malformed, or its files do not match their manifest."""


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Artifact:
    """A verified artifact: every listed file was hashed and matched when it was opened."""

    id: str
    codec: str
    folder: Path
    manifest: dict
    digest: str  # SHA-256 of the canonical manifest

    def path(self, name: str) -> Path:
        """Where the listed file ``name`` is; :class:`ArtifactError` if the manifest does not list it."""
        if name not in self.manifest["files"]:
            raise ArtifactError(f"artifact {self.id!r} has no file {name!r} (it has: "
                                f"{', '.join(sorted(self.manifest['files']))})")
        return self.folder / name

    def weights(self, name: str = "weights.safetensors") -> dict[str, Any]:
        """The tensors of a listed safetensors file, as numpy arrays."""
        from safetensors.numpy import load_file

        try:
            return load_file(str(self.path(name)))
        except ArtifactError:
            raise
        except Exception as e:  # the safetensors parser's own errors
            raise ArtifactError(f"artifact {self.id!r}: {name} is not a valid safetensors file ({e})") from None

    def tables(self, name: str = "tables.ntbl"):
        """The frozen entropy tables of a listed file (:class:`nctk.entropy.tables.Tables`)."""
        from nctk.entropy.tables import Tables

        try:
            return Tables.from_bytes(self.path(name).read_bytes())
        except FormatError as e:
            raise ArtifactError(f"artifact {self.id!r}: {name} holds no valid tables ({e})") from None

    @property
    def meta(self) -> dict:
        """The manifest's free-form ``meta`` object (hyper-parameters, training notes)."""
        return self.manifest.get("meta", {})


def _check_manifest(m: Any, where: str) -> dict:
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise ArtifactError(f"{where}: not an nctk artifact manifest")
    if m.get("version") != VERSION:
        raise ArtifactError(f"{where}: artifact manifest version {m.get('version')!r}; this build reads {VERSION}")
    if not isinstance(m.get("id"), str) or not _ID.fullmatch(m["id"]):
        raise ArtifactError(f"{where}: bad artifact id {str(m.get('id'))[:80]!r}")
    if not isinstance(m.get("codec"), str) or not m["codec"]:
        raise ArtifactError(f"{where}: manifest names no codec")
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{where}: manifest lists no files")
    for name, entry in files.items():
        if not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise ArtifactError(f"{where}: bad file name {name[:80]!r} in manifest (plain names only)")
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
                or not isinstance(entry.get("bytes"), int) or isinstance(entry.get("bytes"), bool)
                or entry["bytes"] < 0):
            raise ArtifactError(f"{where}: bad manifest entry for {name!r} (needs bytes and sha256)")
    if not isinstance(m.get("meta", {}), dict):
        raise ArtifactError(f"{where}: manifest meta must be an object")
    return m


def open_folder(folder: str | Path) -> Artifact:
    """Open and verify the artifact in ``folder`` (a user's checkpoint or a shipped model).

    Every listed file is hashed; a missing, resized or altered file raises :class:`ArtifactError`.
    """
    folder = Path(folder)
    where = str(folder)
    mpath = folder / MANIFEST
    try:
        raw = mpath.read_bytes() if mpath.stat().st_size <= MAX_MANIFEST_BYTES else None
    except OSError as e:
        raise ArtifactError(f"{where}: cannot read {MANIFEST} ({e.strerror or e})") from None
    if raw is None:
        raise ArtifactError(f"{where}: {MANIFEST} is implausibly large")
    try:
        manifest = _check_manifest(json.loads(raw.decode("utf-8")), where)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ArtifactError(f"{where}: {MANIFEST} is not valid JSON ({e})") from None
    for name, entry in manifest["files"].items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            raise ArtifactError(f"{where}: {name} is missing") from None
        if size != entry["bytes"] or _sha256_file(path) != entry["sha256"]:
            raise ArtifactError(f"{where}: {name} does not match its manifest (altered or damaged)")
    digest = hashlib.sha256(_canonical(manifest)).hexdigest()
    return Artifact(manifest["id"], manifest["codec"], folder, manifest, digest)


def _models_dir() -> Path:
    return Path(str(resources.files("nctk.assets") / "models"))


def shipped() -> list[str]:
    """Ids of the artifacts shipped with this build (folders of ``assets/models``), sorted."""
    d = _models_dir()
    return sorted(p.name for p in d.iterdir() if (p / MANIFEST).is_file()) if d.is_dir() else []


_LOADED: dict[str, Artifact] = {}


def load(artifact_id: str, digest: str | None = None) -> Artifact:
    """The shipped artifact ``artifact_id``, verified once per process.

    With ``digest`` (what a file's header recorded), anything but that exact artifact is refused: a file
    is decoded with the model it was encoded with, or not at all.
    """
    if not isinstance(artifact_id, str) or not _ID.fullmatch(artifact_id):
        raise ArtifactError(f"bad artifact id {str(artifact_id)[:80]!r}")
    art = _LOADED.get(artifact_id)
    if art is None:
        folder = _models_dir() / artifact_id
        if not (folder / MANIFEST).is_file():
            have = ", ".join(shipped()) or "none"
            raise ArtifactError(f"model {artifact_id!r} is not shipped with this build (shipped: {have})")
        art = _LOADED[artifact_id] = open_folder(folder)
        if art.id != artifact_id:
            raise ArtifactError(f"{folder}: manifest id {art.id!r} does not match its folder name")
    if digest is not None and digest != art.digest:
        raise ArtifactError(f"this file was encoded with model {artifact_id} {digest[:12]}..., this build ships "
                            f"{art.digest[:12]}...: use the nctk version that wrote it")
    return art


def write(folder: str | Path, artifact_id: str, codec: str, files: dict[str, bytes],
          meta: dict | None = None) -> Artifact:
    """Write an artifact (the files and their manifest) into ``folder`` and return it, verified.

    Used by training's export step; ``folder`` must not already hold a manifest.
    """
    folder = Path(folder)
    manifest = {"format": FORMAT, "version": VERSION, "id": artifact_id, "codec": codec,
                "files": {n: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()},
                "meta": meta or {}}
    _check_manifest(json.loads(_canonical(manifest)), str(folder))  # also proves meta is JSON-able
    if (folder / MANIFEST).exists():
        raise ArtifactError(f"{folder} already holds an artifact; choose an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / MANIFEST).write_bytes(json.dumps(manifest, sort_keys=True, indent=1).encode("ascii") + b"\n")
    return open_folder(folder)
