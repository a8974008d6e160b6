"""``nctk``: compress, decompress and inspect files from the shell.

Only parses arguments and calls the Python API in :mod:`codec`. Errors become one line on stderr and
exit code 1 (2 for usage errors, from argparse); no partial output is ever left behind.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nctk.cli.io import Progress, check_writable, read_input, write_output
from nctk.entropy.errors import NctkError

SUFFIX = ".nctk"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"


def _safe_name(name: object) -> str | None:
    """A stored original name usable as a plain file name next to the input, or None."""
    if not isinstance(name, str) or not name or name in (".", "..", "-"):
        return None
    if "/" in name or "\\" in name or "\x00" in name:
        return None
    try:
        if len(name.encode("utf-8")) > 255:
            return None
    except UnicodeEncodeError:  # lone surrogates: not a name this system can create as is
        return None
    return name


def _show(msg: str, file=None) -> None:
    """Print text that may hold undecodable file-name characters without crashing."""
    print(msg.encode("utf-8", "backslashreplace").decode("utf-8"), file=file or sys.stdout)


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        _show(msg, sys.stderr)


def cmd_compress(args: argparse.Namespace) -> int:
    import nctk

    src = args.input
    if args.output:
        out = args.output
    elif src == "-":
        out = "-"
    else:
        out = src + SUFFIX
    if out == "-" and sys.stdout.isatty():
        raise NctkError("refusing to write compressed data to a terminal; use -o FILE or a pipe")
    check_writable(out, args.force)
    t0 = time.perf_counter()
    data = read_input(src)
    name = None if src == "-" else os.path.basename(src)
    with Progress(f"compressing {name or 'stdin'}"):
        blob = nctk.compress(data, codec=args.codec, quality=args.quality, name=name)
    write_output(out, blob, args.force)
    meta = nctk.info(blob)
    ratio = len(data) / max(len(blob), 1)
    _say(args, f"{name or 'stdin'}: {_human(len(data))} -> {_human(len(blob))} ({ratio:.3f}x) "
               f"[{meta.get('codec')}] in {time.perf_counter() - t0:.2f} s -> {out}")
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    import nctk

    src = args.input
    t0 = time.perf_counter()
    data = read_input(src)
    with Progress(f"decompressing {os.path.basename(src) if src != '-' else 'stdin'}"):
        name, raw = nctk.decompress_file(data)
    if args.output:
        out = args.output
    elif src == "-":
        out = "-"
    else:
        stored = _safe_name(name)
        if stored is None:
            out = src[: -len(SUFFIX)] if src.endswith(SUFFIX) else src + ".out"
        else:
            out = os.path.join(os.path.dirname(src) or ".", stored)  # never "-", never outside src's folder
    if out == "-" and sys.stdout.isatty():
        raise NctkError("refusing to write binary data to a terminal; use -o FILE or a pipe")
    if out != "-" and src != "-" and Path(out).resolve() == Path(src).resolve():
        raise NctkError(f"output {out} would replace the input; use -o")
    write_output(out, raw, args.force)
    _say(args, f"{os.path.basename(src) if src != '-' else 'stdin'}: {_human(len(data))} -> "
               f"{_human(len(raw))} in {time.perf_counter() - t0:.2f} s -> {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import nctk

    data = read_input(args.file)
    meta = nctk.info(data)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    for key in sorted(meta):
        value = meta[key]
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True)
            if len(value) > 200:
                value = value[:197] + "..."
        _show(f"{key:>16}: {value}")
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    import nctk

    rows = nctk.codecs()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'codec':<20} {'modality':<8} {'kind':<8} {'quality':<10} {'inputs':<24} description")
    for r in rows:
        q = "-" if not r.get("quality_range") else "{}..{}".format(*r["quality_range"])
        kind = "lossless" if r.get("lossless") else "lossy"
        exts = " ".join(r.get("extensions") or ())
        _show(f"{r['id']:<20} {r['modality']:<8} {kind:<8} {q:<10} {exts:<24} {r.get('description', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nctk", description="nctk: neural compression codec toolkit",
        epilog="examples:\n  nctk compress model.safetensors\n  nctk decompress model.safetensors.nctk"
               " -o restored.safetensors\n  cat x.npy | nctk compress - > x.npy.nctk\n  nctk info x.npy.nctk",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="nctk 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("compress", help="compress a file (codec chosen from its type)")
    c.add_argument("input", help="input file, or - for stdin")
    c.add_argument("-o", "--output", help="output file (default INPUT.nctk; - for stdout)")
    c.add_argument("--codec", help="codec id (see `nctk codecs`); default: chosen from the input type")
    c.add_argument("--quality", type=float, help="quality for lossy codecs (see `nctk codecs`)")
    c.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="restore the original file from a .nctk file")
    d.add_argument("input", help=".nctk file, or - for stdin")
    d.add_argument("-o", "--output", help="output file (default: the stored original name, beside INPUT)")
    d.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    d.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="show what a .nctk file holds")
    i.add_argument("file", help=".nctk file, or - for stdin")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=cmd_info)

    k = sub.add_parser("codecs", help="list the registered codecs")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=cmd_codecs)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nctk`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NctkError as e:
        _show(f"nctk: error: {e}", sys.stderr)
        return 1
    except OSError as e:
        _show(f"nctk: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nctk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
