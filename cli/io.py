"""File plumbing for the CLI: read inputs (or stdin), write outputs atomically, show progress.

Outputs are written to a temporary file beside the target and moved into place only when complete,
so an error never leaves a partial file; without ``--force`` an existing file is never replaced (the
final step is a hard link, which fails if the name appeared meanwhile).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from nctk.entropy.errors import NctkError


class OutputExistsError(NctkError):
    """The output file exists and --force was not given."""


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of stdin for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if p.is_dir():
        raise NctkError(f"{path}: is a directory")
    if not p.exists():
        raise NctkError(f"{path}: no such file")
    return p.read_bytes()


def check_writable(path: str, force: bool) -> None:
    """Fail early (before any work) when ``path`` exists and may not be replaced."""
    if path == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise NctkError(f"{path}: is a directory")
    if p.exists() and not force:
        raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite")
    if not p.parent.exists():
        raise NctkError(f"{p.parent}: no such directory")


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` (``-``: stdout) atomically; never clobber without ``force``."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    check_writable(path, force)
    target = Path(path)
    # A short temporary name (a long target name plus a prefix could pass the 255-byte limit).
    fd, tmp = tempfile.mkstemp(prefix=".nctk-", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual umask-based mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite") from None
            except OSError:  # file systems without hard links: best effort
                if target.exists():
                    raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite") from None
                os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Progress:
    """A one-line status on stderr for work that takes more than a second; silent when not a TTY."""

    def __init__(self, label: str, enabled: bool | None = None, delay: float = 1.0):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Progress:
        if self.enabled:
            self._t0 = time.monotonic()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        spin = "|/-\\"
        i = 0
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            self._shown = True
            sys.stderr.write(f"\r{spin[i % 4]} {self.label} {time.monotonic() - self._t0:6.1f} s")
            sys.stderr.flush()
            i += 1
            self._stop.wait(0.2)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
