"""File plumbing for the CLI: read inputs (or stdin), write outputs atomically, show progress, print safely.

Outputs are written to a temporary file beside the target, created before the work starts and moved into
place only when complete, so an error or a signal never leaves a partial file; without ``--force`` an
existing file is never replaced (the final step is a hard link, which fails if the name appeared
meanwhile), and only regular files are ever replaced. Regular input files are mapped, not copied; other
inputs (stdin, pipes, devices) are read within a size limit.

Standard library only: importing this module must not import numpy or the codecs (``nctk --help``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import select
import signal
import stat
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from typing import BinaryIO

PREFIX_BYTES = 512  # what a stream's first read takes (nctk.codec.registry.SNIFF_BYTES, without importing it)
_STOP_SIGNALS = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}


class CliError(Exception):
    """A one-line error of the command line itself (bad output, input too large, closed stream, ...)."""


class OutputExistsError(CliError):
    """The output file exists and --force was not given."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP as an exception, so cleanup runs as for Ctrl-C; exit code 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# ------------------------------------------------------------------------------------------- printing


def escape(text: str | bytes) -> str:
    """``text`` fit to print on a terminal as one line: control, format (bidi) and line-separator
    characters become ``\\xNN``/``\\uNNNN`` escapes, undecodable bytes (surrogate escapes) ``\\xNN``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    if text.isprintable():
        return text
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{o - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    return "".join(out)


def human(n: float) -> str:
    """A byte count for people: ``512 B``, ``1.50 MiB``."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            break
    return f"{n:.2f} {unit}"


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
          "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


def parse_size(text: str) -> int | None:
    """A ``--max-*-size`` value: ``none`` (no limit, None) or a byte count with an optional K, M, G or T
    suffix (powers of 1024; KiB, MiB, GiB, TiB and a trailing B are accepted too). ValueError otherwise."""
    t = text.strip().lower()
    if t == "none":
        return None
    m = re.fullmatch(r"(\d+)\s*([a-z]*)", t)
    if m is None or m[2] not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 4096, 512K, 64M, 2GiB, none)")
    return int(m[1]) * _UNITS[m[2]]


def stream_limit() -> int:
    """Default ``--max-input-size`` for inputs of unknown size (stdin, pipes, devices): half the machine's
    physical memory (the work needs the input and as much again), or 64 GiB where that is unknown."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (AttributeError, ValueError, OSError):
        return 64 << 30


# ------------------------------------------------------------------------------ process-wide set-up


def reserve_std_fds() -> None:
    """Open /dev/null on closed descriptors 0-2 (``2>&-``), so no file nctk opens takes their number and
    receives what a library writes to stdout or stderr. ``sys.stdin/stdout/stderr`` stay None."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            got = os.open(os.devnull, os.O_RDWR)
            if got != fd:  # a lower one was free after all; leave things as they were
                os.close(got)


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGHUP (where they exist, unless ignored, as under nohup) raise
    :class:`Interrupted`, which unwinds through every ``finally`` like Ctrl-C does."""
    saved: dict[int, object] = {}

    def handler(signum: int, frame: object) -> None:
        for sig in saved:  # a second signal must not interrupt the cleanup the first one started
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None or signal.getsignal(sig) == signal.SIG_IGN:
            continue
        try:
            saved[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread (main() called from a thread): leave signals alone
            break
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the body is done, so creating or removing the temporary file
    cannot be cut in half (the file exists but nobody knows its name)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# ------------------------------------------------------------------------------------------- inputs


class InputFile:
    """An input (``-``: stdin) opened once: :attr:`stat` of what was opened, and :meth:`read`."""

    def __init__(self, path: str):
        self.path = path
        self.label = "stdin" if path == "-" else path
        self.stat: os.stat_result | None = None
        self._fd: int | None = None
        self._owned = path != "-"

    def __enter__(self) -> InputFile:
        if self.path == "-":
            if sys.stdin is None:
                raise CliError("stdin is closed; give an input file")
            self._fd = sys.stdin.fileno()
        else:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise CliError(f"{self.path}: no such file") from None
        try:
            self.stat = os.fstat(self._fd)
            if stat.S_ISDIR(self.stat.st_mode):
                raise CliError(f"{self.label}: is a directory")
        except BaseException:
            self.__exit__()
            raise
        return self

    def read(self, max_size: int | None, check_prefix: Callable[[bytes], object] | None = None
             ) -> bytearray:
        """The whole input. A non-empty regular file is read at once (one buffer of its size) and
        refused if larger than ``max_size``. Anything else is read as a stream: the first
        :data:`PREFIX_BYTES` go to ``check_prefix`` (which raises to refuse the input before more is
        read), then at most ``max_size`` bytes in all (default :func:`stream_limit`)."""
        size = self.stat.st_size
        if self.path != "-" and stat.S_ISREG(self.stat.st_mode) and size > 0:  # size 0: empty, or /proc
            if max_size is not None and size > max_size:
                raise CliError(f"{self.label}: {human(size)} is more than --max-input-size {human(max_size)}")
            return self._read_regular(size)
        limit = stream_limit() if max_size is None else max_size
        buf = bytearray()
        while len(buf) < PREFIX_BYTES and self._more(buf, PREFIX_BYTES - len(buf)):
            pass
        if check_prefix is not None:
            # Signals wait until the check is done: it may import numpy and codec modules, and an import cut
            # in half (or threads that numpy starts with the signals unblocked) can leave the process unable to
            # exit; threads started here inherit the blocked mask, so signals keep reaching the main thread.
            with _signals_deferred():
                check_prefix(bytes(buf))
        while len(buf) <= limit and self._more(buf, min(1 << 20, limit + 1 - len(buf))):
            pass
        if len(buf) > limit:
            raise CliError(f"{self.label}: input is more than --max-input-size {human(limit)}")
        return buf

    def _read_regular(self, size: int) -> bytearray:
        """A regular file's ``size`` bytes, read into one buffer in slices (signals are handled between
        them). Not mapped: a file that shrinks while mapped kills the process (SIGBUS) before any cleanup;
        read, a file that changes size while it is read is refused."""
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        with io.FileIO(self._fd, closefd=False) as f:
            while got < size:
                n = f.readinto(view[got : got + (64 << 20)])
                if not n:
                    break
                got += n
            if got != size or f.read(1):
                raise CliError(f"{self.label}: the file changed size while it was read; try again")
        return buf

    def _more(self, buf: bytearray, n: int) -> bool:
        # Wait in short slices: a signal delivered to another thread (numpy's, Numba's) does not interrupt
        # a blocked read(), but the main thread runs its Python handler at the next slice.
        while not select.select([self._fd], [], [], 0.2)[0]:
            pass
        chunk = os.read(self._fd, n)
        buf += chunk
        return bool(chunk)

    def __exit__(self, *exc: object) -> None:
        if self._owned and self._fd is not None:
            os.close(self._fd)


# ------------------------------------------------------------------------------------------ outputs


def check_output(path: str, force: bool) -> None:
    """Refuse, before any work, an output that may not be written: closed stdout for ``-``; a name
    ending in a separator; an existing directory, device, FIFO, socket or symbolic link (even with
    ``force``); an existing file without ``force``; a missing or unwritable folder."""
    if path == "-":
        if sys.stdout is None:
            raise CliError("stdout is closed; use -o FILE")
        return
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise CliError(f"{path}: is a directory" if os.path.isdir(path) else f"{path}: no such directory")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise CliError(f"{path}: is a symbolic link; not replacing it (give its target with -o)")
        if stat.S_ISDIR(st.st_mode):
            raise CliError(f"{path}: is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise CliError(f"{path}: is a {_kind(st.st_mode)}, not a regular file; refusing to replace it")
        if not force:
            raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CliError(f"{folder}: no such directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f"{path}: permission denied (cannot create files in {folder})")


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


def check_not_input(path: str, source: os.stat_result) -> None:
    """Refuse an output that is the input file itself (same device and inode, hard links included)."""
    if path == "-":
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == (source.st_dev, source.st_ino):
        raise CliError(f"{path}: is the input file; choose another output with -o")


class Output:
    """Where a result goes: stdout for ``-``; else a temporary file in ``folder`` (default: the output's),
    created on entry, before the work, so an unwritable place fails early and names ``path``, and removed
    on every exit unless :meth:`commit` moved it into place. ``path`` None: named at commit time."""

    def __init__(self, path: str | None, force: bool, folder: str | None = None):
        self.path, self.force = path, force
        self.folder = folder if path is None else os.path.dirname(path) or "."
        self._fd: int | None = None
        self._tmp: str | None = None

    def __enter__(self) -> Output:
        if self.path == "-":
            return self
        try:
            with _signals_deferred():  # a signal pending here is raised on leaving: the except cleans up
                try:  # a short name: a long target name plus a prefix could pass the 255-byte limit
                    self._fd, self._tmp = tempfile.mkstemp(prefix=".nctk-", suffix=".tmp", dir=self.folder)
                except OSError as e:
                    raise CliError(f"{self.path or self.folder}: cannot create the output: {e.strerror}") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def commit(self, data: bytes | bytearray | memoryview | Callable[[BinaryIO], object], path: str | None = None,
               source: os.stat_result | None = None) -> str:
        """Write ``data`` (bytes, or a function that writes to the binary file it is given) and move the
        result to ``path`` (default: the one given at entry); returns the path. ``source``: the input's
        status, to refuse replacing the input itself."""
        path = path or self.path
        assert path is not None
        write = data if callable(data) else (lambda f: _write_all(f, data))
        if path == "-":
            out = sys.stdout.buffer
            write(out)
            out.flush()
            return path
        fd, self._fd = self._fd, None
        try:
            with os.fdopen(fd, "wb") as f:
                # mkstemp makes 0600: outputs get the input's permissions (a private file stays private),
                # or the usual umask-based mode when the input is no regular file
                regular = source is not None and stat.S_ISREG(source.st_mode)
                os.fchmod(fd, stat.S_IMODE(source.st_mode) if regular else 0o666 & ~_umask())
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # ENOSPC, EDQUOT, EIO: name the user's file, not the temporary one
            raise CliError(f"{path}: cannot write: {e.strerror or e}") from None
        check_output(path, self.force)  # again: something may have appeared there during the work
        if source is not None:
            check_not_input(path, source)
        try:
            if self.force:
                os.replace(self._tmp, path)
                return path
            try:
                os.link(self._tmp, path)
            except FileExistsError:
                raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite") from None
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                if os.path.lexists(path):  # a file system without hard links: best effort
                    raise OutputExistsError(f"{path} already exists; use -f/--force to overwrite") from None
                os.replace(self._tmp, path)
        except OSError as e:  # EBUSY (a mount point), EPERM (a sticky folder): name the user's path
            raise CliError(f"{path}: cannot replace: {e.strerror or e}") from None
        return path

    def __exit__(self, *exc: object) -> None:
        with _signals_deferred():
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._tmp)
                self._tmp = None


def _write_all(f: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """Write every byte: a raw stream (stdout under ``python -u``) may take only part of one write."""
    view = memoryview(data).cast("B")
    while view.nbytes:
        n = f.write(view)
        if not n:
            raise OSError(errno.EIO, "the output accepted no bytes")
        view = view[n:]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------------------- progress


class Progress:
    """A one-line status on stderr for work that takes more than a second; silent when stderr is not a
    terminal (or is closed)."""

    def __init__(self, label: str, enabled: bool | None = None, delay: float = 1.0):
        self.label = escape(label)
        if enabled is None:
            try:
                enabled = sys.stderr is not None and sys.stderr.isatty()
            except (OSError, ValueError):
                enabled = False
        self.enabled = enabled
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
        if hasattr(signal, "pthread_sigmask"):  # signals are for the main thread, which handles them
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        spin = "|/-\\"
        i = 0
        if self._stop.wait(self.delay):
            return
        while not self._stop.is_set():
            self._shown = True
            if not self._write(f"\r{spin[i % 4]} {self.label} {time.monotonic() - self._t0:6.1f} s"):
                return
            i += 1
            self._stop.wait(0.2)

    @staticmethod
    def _write(text: str) -> bool:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
            return True
        except (AttributeError, OSError, ValueError):  # stderr closed or gone: progress is optional
            return False

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self._write("\r\033[K")
