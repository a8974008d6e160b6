"""The nctk command line under hostile conditions (the adversarial tester's report): special outputs,
hostile stored names, signals, closed standard streams, unbounded inputs, lack of memory, broken pipes.

Every failure must be one line on stderr starting "nctk: error:" (exit 1; 2 for usage errors; 128 + N
for signal N), never a traceback, and must leave no partial or temporary file behind.
"""

from __future__ import annotations

import io
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nctk.cli.io import escape, parse_size
from nctk.codec.names import safe_name

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "nctk.cli"]


def run_nctk(*args: str, cwd: Path | None = None, stdin: bytes | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd or ROOT, input=stdin, capture_output=True, timeout=120, **kw)


def run_shell(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """``script`` in bash with NCTK set to the command line (for redirections such as ``2>&-``)."""
    env = dict(os.environ, NCTK=shlex.join(CLI))
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, timeout=120)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, timeout=120)


def one_line_error(p: subprocess.CompletedProcess, code: int = 1) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    err = p.stderr.decode()
    assert err.startswith("nctk: error:") and err.count("\n") == 1 and err.endswith("\n"), err
    return err.strip()


def no_temp_files(d: Path) -> None:
    left = [p.name for p in d.iterdir() if p.name.startswith(".nctk-")]
    assert not left, left


def npy_bytes(n: int = 10) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(n, dtype=np.int32))
    return buf.getvalue()


@pytest.fixture
def npy(tmp_path: Path) -> Path:
    path = tmp_path / "w.npy"
    path.write_bytes(npy_bytes(100))
    return path


def with_stored_name(name: str) -> bytes:
    """A valid .nctk file of a small .npy whose header records ``name`` as the original name, built at the
    container level (the API may refuse to record such a name)."""
    import nctk
    from nctk.entropy import container

    box = container.loads(nctk.compress(npy_bytes(), name="x.npy"))
    header = dict(box.header, original_name=name)
    return container.dumps(header, list(box.sections.values()))


# ------------------------------------------------------------------------------- 1: special outputs


def _make_special(kind: str, path: Path) -> socket.socket | None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        return s
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        (path.parent / "target").write_bytes(b"keep")
        path.symlink_to("target")
    elif kind == "dangling symlink":
        path.symlink_to("nowhere")
    elif kind == "char device":
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    return None


@pytest.mark.parametrize("kind", ["fifo", "socket", "directory", "symlink", "dangling symlink", "char device"])
def test_force_never_replaces_a_non_regular_output(kind: str, npy: Path, tmp_path: Path):
    target = tmp_path / "out"
    sock = _make_special(kind, target)
    try:
        before = os.lstat(target)
        err = one_line_error(run_nctk("compress", str(npy), "-o", str(target), "-f"))
        assert "out" in err and ("regular file" in err or "directory" in err or "symbolic link" in err), err
        after = os.lstat(target)
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
        if kind == "symlink":
            assert (tmp_path / "target").read_bytes() == b"keep"
        no_temp_files(tmp_path)
    finally:
        if sock is not None:
            sock.close()


def test_dev_null_is_refused_not_replaced(npy: Path):
    before = os.stat("/dev/null")
    err = one_line_error(run_nctk("compress", str(npy), "-o", "/dev/null", "-f"))
    assert "character device" in err
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


# ------------------------------------------------------------------------------ 2: names and escaping


@pytest.mark.parametrize("name", [
    None, 3, b"x.npy", "", ".", "..", "a/b", "..\\x", "a\\b", "a\x00b", ".bashrc", ".x.npy", "-rf", "-",
    "a\x1b[2Jb", "bell\x07", "a\nb", "a\rb", "x\u202egpj.npy", "\u2066x\u2069", "x\u200e", "x\u200f",
    "zero\u200bwidth", "line\u2028sep", "\ud800x.npy", "x" * 256, "é" * 128,
])
def test_safe_name_rejects(name):
    assert safe_name(name) is None


@pytest.mark.parametrize("name", ["w.npy", "model.safetensors", "a b.npy", "é" * 127, "x" * 255, "日本.npy",
                                  "a-b_c.d", "x."])
def test_safe_name_accepts(name):
    assert safe_name(name) == name


def test_escape_for_terminals():
    assert escape("plain é 日本.npy") == "plain é 日本.npy"
    assert escape("a\nb\r\x1b[31m\x07") == "a\\x0ab\\x0d\\x1b[31m\\x07"
    assert escape("x\u202egpj\u2066\u2028") == "x\\u202egpj\\u2066\\u2028"
    assert escape(b"caf\xff\n") == "caf\\xff\\x0a"  # undecodable bytes
    assert escape(os.fsdecode(b"caf\xff")) == "caf\\xff"  # names from sys.argv carry surrogate escapes
    assert escape("\ud800") == "\\ud800"
    assert "\n" not in escape("".join(map(chr, range(0x2100))))


@pytest.mark.parametrize("flags", [(), ("-N",)])
@pytest.mark.parametrize("stored", [".bashrc", "-rf", "x\u202egpj.npy", "a\x1b[2J\nb.npy", "../up.npy",
                                    "sub/x.npy", "x" * 300])
def test_decompress_ignores_an_unsafe_stored_name(stored: str, flags: tuple, tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "evil.npy.nctk").write_bytes(with_stored_name(stored))
    p = run_nctk("decompress", "evil.npy.nctk", *flags, cwd=d)
    assert p.returncode == 0, p.stderr
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "\x1b" not in err and "\u202e" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["d"]
    assert sorted(os.listdir(d)) == ["evil.npy", "evil.npy.nctk"]  # the input's name without .nctk
    assert (d / "evil.npy").read_bytes() == npy_bytes()


def test_a_stored_name_picks_the_output_only_when_asked(tmp_path: Path):
    """A hostile file may name any plain sibling (Makefile); only -N lets it choose, like gzip -N."""
    (tmp_path / "Makefile").write_bytes(b"all:\n")
    (tmp_path / "evil.npy.nctk").write_bytes(with_stored_name("Makefile"))
    assert run_nctk("decompress", "evil.npy.nctk", "-f", cwd=tmp_path).returncode == 0
    assert (tmp_path / "Makefile").read_bytes() == b"all:\n" and (tmp_path / "evil.npy").exists()
    (tmp_path / "Makefile").unlink()
    assert run_nctk("decompress", "evil.npy.nctk", "-N", cwd=tmp_path).returncode == 0
    assert (tmp_path / "Makefile").read_bytes() == npy_bytes()


def test_decompress_needs_o_when_no_name_is_safe(tmp_path: Path):
    (tmp_path / ".profile.nctk").write_bytes(with_stored_name(".bashrc"))
    err = one_line_error(run_nctk("decompress", ".profile.nctk", cwd=tmp_path))
    assert "-o" in err
    assert sorted(os.listdir(tmp_path)) == [".profile.nctk"]
    p = run_nctk("decompress", ".profile.nctk", "-o", "restored.npy", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "restored.npy").read_bytes() == npy_bytes()


def test_names_are_escaped_in_status_errors_and_info(tmp_path: Path):
    evil = "a\nb\x1b[31m\u202e.npy"
    (tmp_path / evil).write_bytes(npy_bytes())
    p = run_nctk("compress", evil, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.decode().count("\n") == 1 and "a\\x0ab\\x1b[31m\\u202e.npy" in p.stderr.decode()
    err = one_line_error(run_nctk("compress", "no\nsuch\x1b.npy", cwd=tmp_path))
    assert "no\\x0asuch\\x1b.npy" in err
    assert "missing" in one_line_error(run_nctk("compress", evil, "-o", "missing/x\n.nctk", cwd=tmp_path))
    (tmp_path / "stored.nctk").write_bytes(with_stored_name("x\x1b]0;pwned\x07\n.npy"))
    p = run_nctk("info", "stored.nctk", cwd=tmp_path)
    assert p.returncode == 0 and b"\x1b" not in p.stdout and b"\x07" not in p.stdout
    assert b"x\\x1b]0;pwned\\x07\\x0a.npy" in p.stdout


# ------------------------------------------------------------------------------------------ 3: signals


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_during_work_removes_the_temporary_file(sig: int, tmp_path: Path):
    """The input is a FIFO the test feeds: after 1 MiB has gone in, nctk is in the middle of reading it,
    with its temporary output file already created; the signal must remove that file."""
    fifo = tmp_path / "in.npy"
    os.mkfifo(fifo)
    out = tmp_path / "out.nctk"
    # Default dispositions in the child: a test run under nohup or as a background job inherits SIGHUP/SIGINT
    # ignored, and nctk rightly leaves ignored signals alone.
    p = subprocess.Popen([*CLI, "compress", str(fifo), "-o", str(out)], stderr=subprocess.PIPE,
                         preexec_fn=_default_signals)
    try:
        buf = io.BytesIO()
        np.save(buf, np.zeros(1 << 20, np.float32))
        with open(fifo, "wb") as f:  # blocks until nctk opens it for reading
            f.write(buf.getvalue()[: 1 << 20])
            f.flush()
            assert any(n.endswith(".tmp") for n in os.listdir(tmp_path))  # the output is under way
            p.send_signal(sig)
            rc = p.wait(timeout=60)
    finally:
        p.kill()
        p.wait()
    assert rc == 128 + sig
    assert p.stderr.read() == b"nctk: interrupted\n"
    assert sorted(os.listdir(tmp_path)) == ["in.npy"]


_FAIL_IMPORT = """
    import sys
    class Interrupt:  # Ctrl-C arriving while {module!r} is being imported
        def find_spec(self, name, path=None, target=None):
            if name == {module!r}:
                raise KeyboardInterrupt
    sys.meta_path.insert(0, Interrupt())
    sys.argv = ["nctk", "compress", "w.npy"]
    import runpy
    runpy.run_module("nctk.cli", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("module", ["numpy", "argparse"])  # imported by a command / by the CLI module itself
def test_ctrl_c_during_imports(module: str, npy: Path, tmp_path: Path):
    p = run_python(_FAIL_IMPORT.format(module=module), tmp_path)
    assert (p.returncode, p.stderr) == (130, b"nctk: interrupted\n")
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


# --------------------------------------------------------------------------- 4: one-line errors


def test_out_of_memory_mapping_a_huge_input(tmp_path: Path):
    import resource

    sparse = tmp_path / "huge.npy"
    with open(sparse, "wb") as f:
        f.truncate(64 << 30)  # sparse: no disk used
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = 8 << 30 if hard == resource.RLIM_INFINITY else min(hard, 8 << 30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))

    err = one_line_error(run_nctk("compress", str(sparse), "-o", str(tmp_path / "x.nctk"), preexec_fn=cap))
    assert "out of memory" in err
    assert sorted(os.listdir(tmp_path)) == ["huge.npy"]


def test_memory_error_anywhere_is_one_line(npy: Path, tmp_path: Path):
    p = run_python("""
        import sys, nctk
        from nctk.cli.main import main
        def boom(*a, **k):
            raise MemoryError
        nctk.compress = nctk.compress_to = boom
        sys.exit(main(["compress", "w.npy"]))
    """, tmp_path)
    assert "out of memory" in one_line_error(p)
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


@pytest.mark.parametrize("script, expect", [
    ("$NCTK compress /dev/zero", "no codec handles"),
    ("$NCTK compress - -o x.nctk < /dev/zero", "no codec handles"),
    ("$NCTK decompress - -o x.npy < /dev/zero", "not an .nctk file"),
    ("$NCTK info - < /dev/zero", "not an .nctk file"),
    ("cat w.npy | $NCTK compress - -o x.nctk --max-input-size 100", "--max-input-size"),
    ("$NCTK compress w.npy -o x.nctk --max-input-size 100", "--max-input-size"),
    ("$NCTK compress --codec tensor-lossless /dev/zero -o x.nctk --max-input-size 1M", "--max-input-size"),
])
def test_unbounded_and_oversized_inputs_fail_early(script: str, expect: str, npy: Path, tmp_path: Path):
    err = one_line_error(run_shell(script, tmp_path))
    assert expect in err
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


def test_parse_size():
    assert parse_size("4096") == 4096
    assert parse_size("512K") == parse_size("512kib") == 512 << 10
    assert parse_size("64M") == parse_size("64 MiB") == 64 << 20
    assert parse_size("2G") == parse_size("2GiB") == 2 << 30
    assert parse_size("1T") == 1 << 40
    assert parse_size("none") is None
    for bad in ("", "1.5G", "-1", "12X", "G"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert run_nctk("compress", "x.npy", "--max-input-size", "lots").returncode == 2


@pytest.mark.parametrize("script, code, expect", [
    ("$NCTK compress w.npy -o - >&-", 1, "stdout is closed"),
    ("$NCTK compress - -o x.nctk <&-", 1, "stdin is closed"),
    ("$NCTK info w.npy.nctk >&-", 1, "stdout is closed"),
    ("$NCTK compress w.npy -o y.nctk 2>&- && test -s y.nctk", 0, None),  # works; exit code right
    ("$NCTK compress missing.npy 2>&-", 1, None),
])
def test_closed_standard_streams(script: str, code: int, expect: str | None, npy: Path, tmp_path: Path):
    assert run_nctk("compress", str(npy), "-q").returncode == 0
    p = run_shell(script, tmp_path)
    if expect is None:
        assert (p.returncode, p.stderr) == (code, b"")
    else:
        assert expect in one_line_error(p, code)
    no_temp_files(tmp_path)


def test_broken_pipe_is_quiet(tmp_path: Path):
    src = tmp_path / "z.npy"
    np.save(src, np.zeros(1 << 20, np.float32))
    assert run_nctk("compress", str(src), "-q").returncode == 0
    p = subprocess.Popen([*CLI, "decompress", str(src) + ".nctk", "-o", "-"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before nctk writes its 4 MiB
    rc = p.wait(timeout=120)
    assert (rc, p.stderr.read()) == (141, b"")


# ----------------------------------------------------------------------------- 5: odd output paths


def test_refuses_to_replace_its_own_input(npy: Path, tmp_path: Path):
    original = npy.read_bytes()
    err = one_line_error(run_nctk("compress", str(npy), "-o", str(npy), "-f"))
    assert "input" in err
    os.link(npy, tmp_path / "hard.npy")
    assert "input" in one_line_error(run_nctk("compress", str(npy), "-o", str(tmp_path / "hard.npy"), "-f"))
    assert npy.read_bytes() == original
    assert run_nctk("compress", str(npy), "-q").returncode == 0
    packed = tmp_path / "w.npy.nctk"
    blob = packed.read_bytes()
    assert "input" in one_line_error(run_nctk("decompress", str(packed), "-o", str(packed), "-f"))
    assert packed.read_bytes() == blob
    (tmp_path / "self.nctk").write_bytes(with_stored_name("self.nctk"))  # a file naming itself
    assert "input" in one_line_error(run_nctk("decompress", "self.nctk", "-N", "-f", cwd=tmp_path))
    no_temp_files(tmp_path)


@pytest.mark.parametrize("out, expect", [("newdir/", "no such directory"), ("sub/", "is a directory"),
                                         ("missing/x.nctk", "no such directory")])
def test_output_paths_naming_folders(out: str, expect: str, npy: Path, tmp_path: Path):
    (tmp_path / "sub").mkdir()
    err = one_line_error(run_nctk("compress", "w.npy", "-o", out, "-f", cwd=tmp_path))
    assert expect in err
    assert sorted(os.listdir(tmp_path)) == ["sub", "w.npy"] and not os.listdir(tmp_path / "sub")


def test_empty_output_is_a_usage_error(npy: Path, tmp_path: Path):
    for cmd in ("compress", "decompress"):
        p = run_nctk(cmd, str(npy), "-o", "")
        assert p.returncode == 2 and b"empty" in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


def test_usage_errors_quote_arguments_safely():
    p = run_nctk("compress", "x.npy", "\x1b[31mred\nline")
    assert p.returncode == 2 and b"\x1b" not in p.stderr and b"\\x1b[31mred\\x0aline" in p.stderr


def test_unwritable_output_fails_before_the_work_naming_the_output(npy: Path, tmp_path: Path):
    p = run_python("""
        import sys, tempfile, nctk
        from nctk.cli.main import main
        def denied(*a, **k):
            raise PermissionError(13, "Permission denied")
        def work(*a, **k):
            raise AssertionError("compressed before checking the output")
        tempfile.mkstemp = denied
        nctk.compress = work
        sys.exit(main(["compress", "w.npy", "-o", "out.nctk"]))
    """, tmp_path)
    err = one_line_error(p)
    assert "out.nctk" in err and "Permission denied" in err and ".tmp" not in err
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        err = one_line_error(run_nctk("compress", str(npy), "-o", str(ro / "x.nctk")))
        assert "x.nctk" in err and "permission denied" in err.lower()


# --------------------------------------------------- 6, 8: no re-parsing, mmap, light start-up


def test_compress_reads_the_input_once_and_does_not_reparse_its_output(npy: Path, tmp_path: Path):
    p = run_python("""
        import sys, nctk
        from nctk.cli.main import main
        real = nctk.compress_to
        def spy(obj, f, **kw):
            print(type(obj).__name__, kw.get("name"))
            return real(obj, f, **kw)
        def no_info(*a, **k):
            raise AssertionError("the CLI re-parsed its output")
        nctk.compress_to, nctk.info = spy, no_info
        sys.exit(main(["compress", "w.npy"]))
    """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"bytearray w.npy\n" and b"[tensor-lossless]" in p.stderr


def test_empty_input_file(tmp_path: Path):
    (tmp_path / "empty.npy").write_bytes(b"")
    assert "npy" in one_line_error(run_nctk("compress", "empty.npy", cwd=tmp_path))  # not mapped: no crash
    assert sorted(os.listdir(tmp_path)) == ["empty.npy"]


def test_help_and_parsing_import_nothing_heavy(tmp_path: Path):
    p = run_python("""
        import contextlib, io, sys
        from nctk.cli.main import build_parser, main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(["--help"])
        build_parser().parse_args(["compress", "x.npy", "-o", "y", "--max-input-size", "1G"])
        build_parser().parse_args(["decompress", "x.nctk", "--max-output-size", "1G"])
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("numpy", "numba", "torch")))
    """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"[]\n"


# ------------------------------------------------------------------------------- 7: --max-output-size


def test_max_output_size(npy: Path, tmp_path: Path):
    assert run_nctk("compress", str(npy), "-q").returncode == 0
    packed, out = str(tmp_path / "w.npy.nctk"), tmp_path / "out.npy"
    err = one_line_error(run_nctk("decompress", packed, "-o", str(out), "--max-output-size", "100"))
    assert "100" in err or "output" in err.lower()
    assert not out.exists()
    no_temp_files(tmp_path)
    assert run_nctk("decompress", packed, "-o", str(out), "--max-output-size", "1M").returncode == 0
    assert out.read_bytes() == npy.read_bytes()


def test_max_output_size_reaches_the_api(npy: Path, tmp_path: Path):
    assert run_nctk("compress", str(npy), "-q").returncode == 0
    p = run_python("""
        import functools, sys, nctk
        from nctk.cli.main import main
        real = nctk.decompress_file
        @functools.wraps(real)
        def spy(data, **kw):
            print(sorted(kw.items()))
            return real(data, **kw)
        nctk.decompress_file = spy
        sys.exit(main(["decompress", "w.npy.nctk", "-o", "a.npy", "--max-output-size", "1M"])
                 or main(["decompress", "w.npy.nctk", "-o", "b.npy"]))
    """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"[('max_output_size', 1048576)]\n[('max_output_size', None)]\n"



# ------------------------------------------------------------------------ found in the second review


def test_partial_writes_to_a_raw_stream_are_completed():
    from nctk.cli.io import _write_all

    class Trickle:  # a raw stream that takes 3 bytes per write, as a pipe or full disk may under python -u
        def __init__(self):
            self.got = bytearray()

        def write(self, view):
            self.got += bytes(view[:3])
            return min(3, len(view))

    sink = Trickle()
    _write_all(sink, b"0123456789" * 7)
    assert bytes(sink.got) == b"0123456789" * 7


def test_a_signal_while_the_temp_file_is_created_leaves_nothing(npy: Path, tmp_path: Path):
    p = run_python("""
        import os, signal, sys, tempfile
        from nctk.cli.main import main
        real = tempfile.mkstemp
        def mkstemp(*a, **k):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while signals are deferred around the creation
            return real(*a, **k)
        tempfile.mkstemp = mkstemp
        sys.exit(main(["compress", "w.npy"]))
    """, tmp_path)
    assert p.returncode == 143 and p.stderr == b"nctk: interrupted\n", p.stderr
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


def test_a_failing_rename_names_the_output_not_the_temp_file(npy: Path, tmp_path: Path):
    p = run_python("""
        import errno, os, sys
        from nctk.cli.main import main
        def busy(*a, **k):
            raise OSError(errno.EBUSY, "Device or resource busy", a[0])
        os.replace = busy
        sys.exit(main(["compress", "w.npy", "-o", "out.nctk", "-f"]))
    """, tmp_path)
    err = one_line_error(p)
    assert "out.nctk" in err and "busy" in err and ".tmp" not in err
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


def test_a_file_that_changes_size_while_read_is_refused(npy: Path, tmp_path: Path):
    p = run_python("""
        import io, sys, types
        import nctk.cli.io as cio
        from nctk.cli.main import main
        class Growing(io.FileIO):
            def readinto(self, b):
                n = super().readinto(b)
                with open("w.npy", "ab") as f:  # grows while being read
                    f.write(b"x")
                return n
        cio.io = types.SimpleNamespace(FileIO=Growing)
        sys.exit(main(["compress", "w.npy"]))
    """, tmp_path)
    assert "changed size" in one_line_error(p)
    assert sorted(os.listdir(tmp_path)) == ["w.npy"]


def test_terminal_stdin_is_refused(tmp_path: Path):
    p = run_python("""
        import io, sys
        from nctk.cli.main import main
        sys.stdin.isatty = lambda: True
        sys.exit(main(["compress", "-", "-o", "x.nctk"]))
    """, tmp_path)
    assert "terminal" in one_line_error(p)
