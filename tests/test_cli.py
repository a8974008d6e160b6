"""The nctk command line, through a real subprocess: round trips, stdin/stdout, every error path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo"


def run_nctk(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nctk.cli", *args], cwd=cwd or ROOT, input=stdin,
                          capture_output=True, timeout=300)


def one_line_error(p: subprocess.CompletedProcess, code: int = 1) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    err = p.stderr.decode().strip()
    assert err.startswith("nctk: error:") and "\n" not in err, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def npy(tmp_path: Path) -> Path:
    path = tmp_path / "w.npy"
    np.save(path, np.random.default_rng(0).normal(0, 0.02, (64, 33)).astype(np.float32))
    return path


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def with_stored_name(data: bytes, name: str) -> bytes:
    """An .nctk file of ``data`` recording ``name`` as its original name, whatever the API would record."""
    import nctk
    from nctk.entropy import container

    box = container.loads(nctk.compress(data, name="x.npy"))
    return container.dumps(dict(box.header, original_name=name), list(box.sections.values()))


def test_round_trip_default_names(npy: Path, tmp_path: Path):
    p = run_nctk("compress", str(npy))
    assert p.returncode == 0, p.stderr
    assert b"->" in p.stderr and b"tensor-lossless" in p.stderr
    packed = tmp_path / "w.npy.nctk"
    assert packed.exists()
    original = npy.read_bytes()
    npy.unlink()
    p = run_nctk("decompress", str(packed))
    assert p.returncode == 0, p.stderr
    assert npy.read_bytes() == original  # restored beside the input, under its name without .nctk
    assert listing(tmp_path) == ["w.npy", "w.npy.nctk"]


def test_explicit_output_and_quiet(npy: Path, tmp_path: Path):
    out = tmp_path / "x.bin"
    assert run_nctk("compress", str(npy), "-o", str(out), "-q").stderr == b""
    back = tmp_path / "back.npy"
    p = run_nctk("decompress", str(out), "-o", str(back), "--quiet")
    assert p.returncode == 0 and p.stderr == b""
    assert back.read_bytes() == npy.read_bytes()


def test_stdin_stdout(npy: Path):
    p = run_nctk("compress", "-", stdin=npy.read_bytes())
    assert p.returncode == 0, p.stderr
    assert p.stdout[:5] == b"\x89NCTK"
    q = run_nctk("decompress", "-", stdin=p.stdout)
    assert q.returncode == 0, q.stderr
    assert q.stdout == npy.read_bytes()


def test_refuses_to_overwrite_without_force(npy: Path, tmp_path: Path):
    target = tmp_path / "w.npy.nctk"
    target.write_bytes(b"precious")
    err = one_line_error(run_nctk("compress", str(npy)))
    assert "already exists" in err and "--force" in err
    assert target.read_bytes() == b"precious"
    assert run_nctk("compress", str(npy), "-f").returncode == 0
    assert target.read_bytes()[:5] == b"\x89NCTK"
    # decompressing next to the original also refuses to replace it
    err = one_line_error(run_nctk("decompress", str(target)))
    assert "already exists" in err
    assert listing(tmp_path) == ["w.npy", "w.npy.nctk"]


def test_unsupported_input_lists_supported(tmp_path: Path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    err = one_line_error(run_nctk("compress", str(f)))
    assert ".npy" in err and ".safetensors" in err
    assert listing(tmp_path) == ["notes.txt"]


@pytest.mark.parametrize("args", [("compress", "missing.npy"), ("decompress", "missing.nctk"), ("info", "nope")])
def test_missing_input(args, tmp_path: Path):
    err = one_line_error(run_nctk(*args, cwd=tmp_path))
    assert "no such file" in err


def test_corrupted_truncated_and_foreign_files(npy: Path, tmp_path: Path):
    assert run_nctk("compress", str(npy)).returncode == 0
    data = (tmp_path / "w.npy.nctk").read_bytes()
    npy.unlink()
    bad = tmp_path / "bad.nctk"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    for blob, expect in [(bytes(flipped), "checksum"), (data[: len(data) - 7], "truncated"),
                         (b"PK\x03\x04 definitely a zip", "not an .nctk file")]:
        bad.write_bytes(blob)
        err = one_line_error(run_nctk("decompress", str(bad), "-o", str(tmp_path / "out.npy")))
        assert expect in err.lower(), err
        assert not (tmp_path / "out.npy").exists()
        assert listing(tmp_path) == ["bad.nctk", "w.npy.nctk"]  # no partial or temporary files


def test_usage_errors_exit_2():
    assert run_nctk().returncode == 2
    assert run_nctk("compress").returncode == 2
    assert run_nctk("frobnicate", "x").returncode == 2
    assert run_nctk("compress", "x.npy", "--quality", "abc").returncode == 2


def test_unknown_codec_and_bad_quality(npy: Path):
    err = one_line_error(run_nctk("compress", str(npy), "--codec", "nope"))
    assert "tensor-lossless" in err
    err = one_line_error(run_nctk("compress", str(npy), "--quality", "5"))
    assert "quality" in err.lower()


def test_missing_output_directory(npy: Path, tmp_path: Path):
    err = one_line_error(run_nctk("compress", str(npy), "-o", str(tmp_path / "no" / "such" / "x.nctk")))
    assert "no such directory" in err


def test_refuses_binary_to_terminal_is_not_triggered_by_pipes(npy: Path):
    p = run_nctk("compress", str(npy), "-o", "-")
    assert p.returncode == 0 and p.stdout[:5] == b"\x89NCTK"


def test_info_and_codecs(npy: Path, tmp_path: Path):
    assert run_nctk("compress", str(npy)).returncode == 0
    p = run_nctk("info", str(tmp_path / "w.npy.nctk"))
    assert p.returncode == 0 and b"tensor-lossless" in p.stdout
    meta = json.loads(run_nctk("info", str(tmp_path / "w.npy.nctk"), "--json").stdout)
    assert meta["codec"] == "tensor-lossless" and meta["original_name"] == "w.npy"
    p = run_nctk("codecs")
    assert p.returncode == 0 and b"tensor-lossless" in p.stdout and b"lossless" in p.stdout
    rows = json.loads(run_nctk("codecs", "--json").stdout)
    assert any(r["id"] == "tensor-lossless" for r in rows)


def test_stored_name_cannot_escape_the_directory(tmp_path: Path):
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    blob = with_stored_name(buf.getvalue(), "../escape.npy")
    (tmp_path / "sub").mkdir()
    src = tmp_path / "sub" / "evil.npy.nctk"
    src.write_bytes(blob)
    p = run_nctk("decompress", "-N", str(src))
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "escape.npy").exists()
    assert (tmp_path / "sub" / "evil.npy").read_bytes() == buf.getvalue()


def test_console_script_installed():
    exe = Path(sys.executable).with_name("nctk")
    if not exe.exists():
        pytest.skip("nctk console script not installed in this environment")
    p = subprocess.run([str(exe), "--version"], capture_output=True, timeout=60)
    assert p.returncode == 0 and b"nctk" in p.stdout


def test_demo_runs():
    """`make demo`'s job, in the suite: every bundled input restored byte-identically."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    p = subprocess.run(["bash", str(DEMO / "run_demo.sh")], capture_output=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    assert out.count("-> restored file is byte-identical") == len(list((DEMO / "inputs").iterdir()))
    assert "demo finished" in out


def test_review_regressions(tmp_path: Path):
    """Stored name "-", lone surrogates, long names, output mode (found in review)."""
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    d = tmp_path / "d"
    d.mkdir()
    (d / "dash.nctk").write_bytes(with_stored_name(buf.getvalue(), "-"))
    p = run_nctk("decompress", "dash.nctk", cwd=d)
    assert p.returncode == 0 and p.stdout == b"", p.stderr
    assert (d / "dash").read_bytes() == buf.getvalue()
    (d / "surr.nctk").write_bytes(with_stored_name(buf.getvalue(), "\ud800x.npy"))
    assert run_nctk("info", "surr.nctk", cwd=d).returncode == 0
    p = run_nctk("decompress", "surr.nctk", cwd=d)
    assert p.returncode == 0 and (d / "surr").read_bytes() == buf.getvalue()
    long_name = "w" * 240 + ".npy"
    (d / long_name).write_bytes(buf.getvalue())
    assert run_nctk("compress", long_name, cwd=d).returncode == 0
    mode = (d / (long_name + ".nctk")).stat().st_mode & 0o777
    assert mode == (d / long_name).stat().st_mode & 0o777, oct(mode)


def test_outputs_keep_the_inputs_permissions(npy: Path, tmp_path: Path):
    """A private file stays private once compressed and restored (as with gzip and zstd)."""
    npy.chmod(0o600)
    assert run_nctk("compress", str(npy), "-q").returncode == 0
    packed = tmp_path / "w.npy.nctk"
    assert packed.stat().st_mode & 0o777 == 0o600
    assert run_nctk("decompress", str(packed), "-o", str(tmp_path / "back.npy")).returncode == 0
    assert (tmp_path / "back.npy").stat().st_mode & 0o777 == 0o600
    p = subprocess.run([sys.executable, "-m", "nctk.cli", "compress", "-", "-o", str(tmp_path / "s.nctk")],
                       input=npy.read_bytes(), capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "s.nctk").stat().st_mode & 0o777 == 0o666 & ~_umask()  # no input file: the umask


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
