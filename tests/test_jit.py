"""The kernel cache folder: chosen per user, never another user's, and nctk works without any."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from nctk.entropy import jit


@pytest.fixture
def fresh_choice(monkeypatch):
    """cache_dir() recomputed under the test's environment."""
    for var in ("NUMBA_CACHE_DIR", "NCTK_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    jit.cache_dir.cache_clear()
    yield
    jit.cache_dir.cache_clear()


def test_user_settings_come_first(fresh_choice, monkeypatch, tmp_path):
    monkeypatch.setenv("NCTK_CACHE_DIR", str(tmp_path / "mine"))
    assert jit.cache_dir() == str(tmp_path / "mine")
    jit.cache_dir.cache_clear()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba's"))
    assert jit.cache_dir() == str(tmp_path / "numba's")


def test_unwritable_choices_fall_through_to_a_private_temp_folder(fresh_choice, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("NCTK_CACHE_DIR", str(blocker / "sub"))  # under a regular file: cannot be created
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setenv("HOME", str(blocker))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    chosen = Path(jit.cache_dir())
    assert chosen.parent == tmp_path and chosen.name == f"nctk-numba-{os.getuid()}"
    assert chosen.stat().st_mode & 0o777 == 0o700


def test_a_temp_folder_others_can_write_is_refused(fresh_choice, monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shared = tmp_path / f"nctk-numba-{os.getuid()}"
    shared.mkdir()
    shared.chmod(0o777)  # planted by someone else, or writable by anyone: machine code must not come from it
    assert jit._private_temp_dir() is None


def test_no_cache_folder_at_all_still_works(tmp_path):
    """With nowhere to write, kernels compile in memory: slower, same bytes."""
    code = (
        "import tempfile\nfrom nctk.entropy import jit\n"
        "jit._writable = lambda folder: False\njit._private_temp_dir = lambda: None\n"
        "assert jit.cache_dir() is None\n"
        "import sys, numpy as np, nctk\nx = (np.arange(100_000) % 7).astype(np.int16)\n"
        "assert (nctk.decompress(nctk.compress(x)) == x).all()\nprint('numba' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NCTK_CACHE_DIR")}
    env["NCTK_AOT"] = "0"
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == "True", p.stderr  # the JIT kernels did the coding
