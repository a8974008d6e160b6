"""``nctk``: compress, decompress and inspect files from the shell.

Only parses arguments and calls the Python API in :mod:`codec`. Errors become one line on stderr and
exit code 1 (2 for usage errors, from argparse; 128 + N for signal N); no partial output is ever left
behind. Parsing arguments imports nothing heavy: numpy and the codecs load inside the commands.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
from typing import Any, NoReturn

from nctk.cli.io import (
    CliError,
    InputFile,
    Output,
    Progress,
    check_not_input,
    check_output,
    escape,
    human,
    parse_size,
    reserve_std_fds,
    signals_as_exceptions,
)
from nctk.codec.names import safe_name

SUFFIX = ".nctk"


def _show(msg: str, stream: Any) -> None:
    """Print ``msg`` as one terminal-safe line (see :func:`escape`); nothing if ``stream`` is closed."""
    if stream is not None:
        enc = getattr(stream, "encoding", None) or "utf-8"  # e.g. ASCII under PYTHONIOENCODING=ascii
        print(escape(msg).encode(enc, "backslashreplace").decode(enc), file=stream)


def _stdout() -> Any:
    if sys.stdout is None:
        raise CliError("stdout is closed")
    return sys.stdout


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        _show(msg, sys.stderr)


def _no_terminal(out: str, what: str) -> None:
    if out == "-" and sys.stdout is not None and sys.stdout.isatty():
        raise CliError(f"refusing to write {what} to a terminal; use -o FILE or a pipe")


def _check_nctk_prefix(prefix: bytes) -> None:
    from nctk.entropy import container

    if len(prefix) >= len(container.MAGIC) and not container.is_nctk(prefix):
        raise CliError("not an .nctk file (bad magic)")


def cmd_compress(args: argparse.Namespace) -> int:
    src = args.input
    out = args.output or ("-" if src == "-" else src + SUFFIX)
    if src == "-" and sys.stdin is not None and sys.stdin.isatty():
        raise CliError("refusing to read data from a terminal; give an input file or a pipe")
    _no_terminal(out, "compressed data")
    check_output(out, args.force)
    name = None if src == "-" else safe_name(os.path.basename(src))  # recorded in the file: safe or None
    sensitivity = _read_sensitivity(args.sensitivity) if args.sensitivity else None

    def check_prefix(prefix: bytes) -> None:  # a stream: refuse what no codec takes before reading it all
        if args.codec is None:
            from nctk.codec import registry

            registry.for_input(prefix, name)

    shown = "stdin" if src == "-" else os.path.basename(src)
    t0 = time.perf_counter()
    with InputFile(src) as inp, Output(out, args.force) as dst:
        check_not_input(out, inp.stat)
        data = inp.read(args.max_input_size, check_prefix)
        size = len(data)
        import nctk

        options = {"codec": args.codec, "quality": args.quality, "name": name, "max_error": args.max_error,
                   "rel_error": args.rel_error, "target": _target(args), "sensitivity": sensitivity}
        with Progress(f"compressing {shown}" + " (searching the quality for the target)" * bool(options["target"])):
            if out == "-":
                blob = nctk.compress(data, **options)
                dst.commit(blob)
            else:  # straight from the coded sections into the temporary file: no joined copy
                dst.commit(lambda f: nctk.compress_to(data, f, **options), source=inp.stat)
                blob = _mapped(out)
    from nctk.entropy.container import read_header

    header = read_header(blob)[0]  # the header and section tables only: no payload is read
    reached = ""
    if isinstance(header.get("target"), dict):
        t = header["target"]
        got = "exact" if t.get("reached") is None else f"{t['reached']:.4g}"
        reached = f"; {t['metric']} {got} for {t['asked']:g} asked, quality {t['quality']:.3g}"
    _say(args, f"{shown}: {human(size)} -> {human(len(blob))} ({size / max(len(blob), 1):.3f}x) "
               f"[{header.get('codec')}{reached}] in {time.perf_counter() - t0:.2f} s -> {out}")
    return 0


TARGET_FLAGS = ("bpp", "kbps", "bits_per_value", "psnr")


def _read_sensitivity(path: str) -> dict:
    """The ``--sensitivity`` JSON file: an object of tensor name -> number (what ``nctk.sensitivity`` returns)."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except OSError as e:
        raise CliError(f"cannot read sensitivity file {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise CliError(f"sensitivity file {path} is not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CliError(f"sensitivity file {path} must hold a JSON object of tensor name -> number")
    return obj


def _target(args: argparse.Namespace) -> tuple[str, float] | None:
    """The one ``--target-*`` given, as the API's ``target=(name, value)``."""
    given = [(t, getattr(args, f"target_{t}")) for t in TARGET_FLAGS if getattr(args, f"target_{t}") is not None]
    return given[0] if given else None


def _mapped(path: str) -> memoryview:
    """A read-only view of the file just written (pages are read only where looked at)."""
    import mmap

    with open(path, "rb") as f:
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


DECODED_FORMATS = (".png",)  # what lossy image codecs decode to


def _default_output(src: str, stored: str | None, use_stored: bool) -> str:
    """Beside INPUT: INPUT without .nctk (like gzip), or with ``-N`` the stored original name when
    :func:`safe_name` accepts it. A file's stored name is never trusted to pick what ``-f`` replaces by
    default: a hostile file could name any sibling (``Makefile``)."""
    base = os.path.basename(src)
    derived = safe_name(base[: -len(SUFFIX)]) if base.endswith(SUFFIX) else None
    # A lossy image codec decodes to a PNG whatever the input was (pic.jpg.nctk -> pic.png): the format comes from
    # the decoded item's name, but only a format from this short list, so a stored name cannot pick the suffix.
    ext = os.path.splitext(stored or "")[1].lower()
    if derived and ext in DECODED_FORMATS and os.path.splitext(derived)[1].lower() != ext:
        derived = safe_name(os.path.splitext(derived)[0] + ext)
    name = safe_name(stored) if use_stored else None
    name = name or derived or safe_name(stored)
    if name is None:
        raise CliError(f"{src}: no safe output name (stored or derived from the input's); use -o FILE")
    return os.path.join(os.path.dirname(src), name)


def cmd_decompress(args: argparse.Namespace) -> int:
    src = args.input
    out = args.output or ("-" if src == "-" else None)  # None: named after decoding (see _default_output)
    if out is not None:
        _no_terminal(out, "binary data")
        check_output(out, args.force)
    shown = "stdin" if src == "-" else os.path.basename(src)
    t0 = time.perf_counter()
    with InputFile(src) as inp, Output(out, args.force, folder=os.path.dirname(src) or ".") as dst:
        if out is not None:
            check_not_input(out, inp.stat)
        data = inp.read(args.max_input_size, _check_nctk_prefix)
        size = len(data)
        import nctk

        with Progress(f"decompressing {shown}"):
            name, raw = nctk.decompress_file(data, max_output_size=args.max_output_size)
        out = dst.commit(raw, out or _default_output(src, name, args.name), source=inp.stat)
    _say(args, f"{shown}: {human(size)} -> {human(len(raw))} in {time.perf_counter() - t0:.2f} s -> {out}")
    return 0


def cmd_tokens(args: argparse.Namespace) -> int:
    """``nctk tokens``: audio -> an EnCodec model's RVQ codes (.npy/.npz), or codes -> audio, by the input's suffix."""
    from nctk.codec.audio import tokens

    src = args.input
    decoding = tokens.suffix(src) in tokens.TOKEN_SUFFIXES
    out = args.output or os.path.splitext(src)[0] + (".wav" if decoding else ".npy")
    if out == "-" or src == "-":
        raise CliError("nctk tokens reads and writes named files (no stdin/stdout)")
    if decoding and (args.kbps is not None or args.block_frames is not None):
        raise CliError("--kbps and --block-frames apply when encoding audio, not when decoding tokens")
    if tokens.suffix(out) not in (tokens.AUDIO_FORMATS if decoding else tokens.TOKEN_SUFFIXES):
        want = ", ".join(tokens.AUDIO_FORMATS) if decoding else ".npy or .npz"
        raise CliError(f"{out}: the output of {'decoding tokens' if decoding else 'encoding audio'} is {want}")
    check_output(out, args.force)
    shown = os.path.basename(src)
    t0 = time.perf_counter()
    with InputFile(src) as inp, Output(out, args.force) as dst:
        check_not_input(out, inp.stat)
        data = bytes(inp.read(args.max_input_size))
        from nctk.codec.audio import encodec

        with Progress(f"loading {os.path.basename(args.model)}"):
            model = encodec.load(args.model)
        if decoding:
            with Progress(f"decoding {shown}"):
                y, rate = tokens.decode(model, tokens.from_bytes(data, shown))
                blob = tokens.audio_bytes(y, rate, tokens.suffix(out))
            what = f"{y.shape[1] / rate:.2f} s of {y.shape[0]}-channel audio at {rate} Hz"
        else:
            x, rate = tokens.read_audio(data, shown)
            with Progress(f"encoding {shown}"):
                arrays = tokens.encode(model, x, rate, args.kbps, args.block_frames)
                blob = tokens.to_bytes(arrays, tokens.suffix(out))
            what = f"codes of shape {tuple(arrays['codes'].shape)}"
        dst.commit(blob, source=inp.stat)
    _say(args, f"{shown}: {what} in {time.perf_counter() - t0:.2f} s -> {out}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    stdout = _stdout()
    with InputFile(args.file) as inp:
        data = inp.read(args.max_input_size, _check_nctk_prefix)
        import nctk

        meta = nctk.info(data)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True), file=stdout)  # ASCII only: \u escapes
        return 0
    for key in sorted(meta):
        value = meta[key]
        if isinstance(value, float):
            value = f"{value:.4g}"
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True)
            if len(value) > 200:
                value = value[:197] + "..."
        _show(f"{key:>16}: {value}", stdout)  # keys and strings come from the file: escaped
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    import nctk

    stdout = _stdout()
    rows = nctk.codecs()
    if args.json:
        print(json.dumps(rows, indent=2), file=stdout)
        return 0
    print(f"{'codec':<20} {'modality':<8} {'kind':<8} {'quality':<10} {'inputs':<24} description", file=stdout)
    for r in rows:
        q = "-" if not r.get("quality_range") else "{}..{}".format(*r["quality_range"])
        kind = "lossless" if r.get("lossless") else "lossy"
        exts = " ".join(r.get("extensions") or ())
        _show(f"{r['id']:<20} {r['modality']:<8} {kind:<8} {q:<10} {exts:<24} {r.get('description', '')}", stdout)
    return 0


def _rd_files(data: list[str], suffixes: tuple[str, ...], kind: str) -> list[str]:
    """The inputs named by ``--data``: files as given, folders' files with one of ``suffixes`` in name order."""
    files: list[str] = []
    for item in data:
        if os.path.isdir(item):
            files += sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(suffixes))
        elif os.path.exists(item):
            files.append(item)
        else:
            raise CliError(f"{item}: no such file or folder")
    if not files:
        raise CliError(f"no {kind} files ({', '.join(suffixes)}) in {', '.join(data)}")
    return files


def _per_file_bd(anchor: dict, test: dict, metric: str) -> dict | None:
    """Per-file BD-rates when both results come from nctk rd sweeps of the same files, else None."""
    from nctk.rd.bdrate import BDError, bd_per_file

    if not (isinstance(anchor.get("per_file"), dict) and isinstance(test.get("per_file"), dict)):
        return None
    try:
        return bd_per_file(anchor, test, metric)
    except BDError:
        return None


def _bd_line(anchor: dict, test: dict, metric: str) -> str:
    from nctk.rd.bdrate import BDError, bd_results

    try:
        return f"{bd_results(anchor, test, metric)}; {bd_results(anchor, test, metric, quality=True)}"
    except BDError as e:
        return f"no BD figures: {e}"


def cmd_rd(args: argparse.Namespace) -> int:
    from nctk.rd import results as rdjson

    stdout = _stdout()
    if args.list:
        from nctk.rd.baselines import BASELINES

        for cid, c in BASELINES.items():
            state = "ready" if c.available() else f"not installed (needs {c.requires})"
            _show(f"{cid:<18} {c.modality:<7} {'lossless' if c.lossless else 'lossy':<9} {state}", stdout)
        return 0
    if args.bd_rate:
        anchor, test = (rdjson.load(p) for p in args.bd_rate)
        from nctk.rd.bdrate import BDResult, bd_results

        args.metric = args.metric or DEFAULT_RD_METRIC[_RATE_MODALITY[rdjson.rate_key(anchor)]]

        rate = bd_results(anchor, test, args.metric)  # BDError (one line) if the curves cannot be compared
        quality = bd_results(anchor, test, args.metric, quality=True)
        per_file = _per_file_bd(anchor, test, args.metric)
        if args.json:
            out = {"anchor": anchor["name"], "test": test["name"], "metric": args.metric,
                   "bd_rate_percent": rate.value, "bd_quality": quality.value, "overlap": list(rate.overlap)}
            if per_file is not None:
                out["per_file_bd_rate_percent"] = {f: r.value if isinstance(r, BDResult) else None
                                                   for f, r in per_file["files"].items()}
                out["per_file_mean_bd_rate_percent"] = per_file["mean"]
            print(json.dumps(out, indent=2), file=stdout)
        else:
            _show(f"{test['name']} vs {anchor['name']} ({args.metric}): {rate}; {quality}", stdout)
            if per_file is not None:
                mean = "n/a" if per_file["mean"] is None else f"{per_file['mean']:+.2f}%"
                _show(f"per file (BD-rate): mean {mean} over {per_file['compared']} of {len(per_file['files'])} "
                      "files", stdout)
                for f, r in per_file["files"].items():
                    _show(f"  {f}: " + (f"{r.value:+.2f}%" if isinstance(r, BDResult) else f"n/a ({r})"), stdout)
        return 0
    if not args.codec or not args.data:
        raise CliError("nctk rd needs --codec and --data (or --bd-rate ANCHOR.json TEST.json)")
    from nctk.rd.baselines import get, modality_of
    from nctk.rd.modality import MODALITIES

    codecs = [c for c in args.codec.split(",") if c]
    kinds = {modality_of(c) for c in codecs}
    for c in codecs:
        get(c)  # an unknown or unavailable codec: one line listing what can run here
    if len(kinds) != 1:
        raise CliError("one sweep measures one kind of data; --codec mixes " + " and ".join(sorted(kinds)) + " codecs")
    modality = MODALITIES[kinds.pop()]
    metric = args.metric or DEFAULT_RD_METRIC[modality.name]
    anchors = [rdjson.load(p) for p in args.compare]
    files = _rd_files(args.data, modality.suffixes, modality.name)
    from nctk.rd.cache import open_cache
    from nctk.rd.sweep import sweep

    qualities = {c: args.quality for c in codecs} if args.quality else None
    metrics = [m for m in args.metrics.split(",") if m] if args.metrics else None
    if args.cache == "":
        raise CliError("--cache needs a folder (or use --no-cache)")
    # Resolved here so the line below names the folder actually used (None: off, or no usable default folder).
    store = open_cache(False if args.no_cache else args.cache)
    try:
        curves = sweep(codecs, files, qualities, cache=store.folder if store is not None else False,
                       metrics=metrics, workers=args.workers, scheduler=args.scheduler)
    except KeyboardInterrupt:
        if store is not None:
            _show(f"nctk: finished items are cached in {store.folder}: run the same command again to resume",
                  sys.stderr)
        raise
    if store is not None:
        reused = sum(res["meta"]["cached_items"] for res in curves.values())
        total = sum(len(files) * len(res["meta"]["qualities"]) for res in curves.values())
        _say(args, f"{reused} of {total} items came from the cache ({store.folder})")
    rate = modality.rate_key
    for cid, res in curves.items():
        r = res["results"]
        shown = metric if metric in r else ("ratio" if "ratio" in r else None)
        _show(f"{cid}: {len(files)} file(s); quality, {rate}" + f", {shown}" * (shown is not None), stdout)
        for j, (q, x) in enumerate(zip(res["meta"]["qualities"], r[rate], strict=True)):
            _show(f"  {q:>6}  {x:9.4f}" + (f"  {r[shown][j]:10.4f}" if shown is not None else ""), stdout)
        for anchor in anchors:
            _show(f"  vs {anchor['name']}: {_bd_line(anchor, res, metric)}", stdout)
    if args.out:
        base, ext = os.path.splitext(args.out)
        for cid, res in curves.items():
            path = args.out if len(curves) == 1 else f"{base}-{cid}{ext or '.json'}"
            rdjson.save(res, path)
            _say(args, f"wrote {path}")
    if args.plot:
        from nctk.rd.plot import plot, plottable

        base, ext = os.path.splitext(args.plot)
        names = plottable(list(curves.values()))
        for i, m in enumerate(sorted(names, key=lambda m: m != metric)):  # the tabulated metric first
            path = args.plot if i == 0 else f"{base}-{m}{ext or '.png'}"
            plot(list(curves.values()), m, path, anchors=[a for a in anchors if m in a["results"]], rate=rate)
            _say(args, f"wrote {path}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``nctk train image``: train image-wavelet's context model with checkpoints; ``--export`` writes its artifact."""
    if not args.data and not args.export:
        raise CliError("nctk train image needs --data (to train) and/or --export (to write the model artifact)")
    if args.export and not args.model_id:
        raise CliError("--export needs --model-id ID: a new id (files record the model they were made with, so a "
                       "shipped id must never name other weights)")
    import torch

    from nctk.train import image as trainer

    torch.set_num_threads(args.threads)
    log = (lambda msg: None) if args.quiet else (lambda msg: _show(f"nctk train: {msg}", sys.stderr))
    if args.data:
        cfg = None if args.resume else trainer.Config(seed=args.seed)
        state = trainer.train(args.data, args.out, args.minutes, resume=args.resume, cfg=cfg,
                              checkpoint_minutes=args.checkpoint_minutes, lr=args.lr, log=log)
        log(trainer.summary(state))
    if args.export:
        best = os.path.join(args.out, "best")
        source = best if os.path.isdir(best) else os.path.join(args.out, "last")
        art = trainer.export(source, args.model_id, args.export_dir, force=args.force)
        log(f"exported {source} as model {art.id} ({art.digest[:12]}...) -> {art.folder}")
    return 0


# Spelled out (building it from nctk.rd.baselines would import that package for every command's --help);
# tests/test_rd_cli.py checks it names every rd codec.
RD_CODEC_HELP = ("comma-separated codec ids of one kind of data (`nctk rd --list` shows them): images jpeg-420, "
                 "jpeg-444, webp, jpeg2000, avif, jpegxl, image-wavelet; audio opus, vorbis, mp3, flac; tensors "
                 "zstd-3, zstd-19, zipnn, pcodec, blosc2, zfp-accuracy, zfp-rate, sz3, tensor-lossless, tensor-bounded")

# What `nctk rd` tabulates and compares with --compare anchors when --metric is not given.
DEFAULT_RD_METRIC = {"image": "psnr-rgb", "audio": "visqol-speech", "tensor": "psnr-range"}
_RATE_MODALITY = {"bpp": "image", "kbps": "audio", "bits_per_value": "tensor"}


def _bound(text: str) -> float:
    """A positive finite number (error bounds and targets)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _size(text: str) -> int | None:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _output_limit(text: str) -> int:
    """``--max-output-size``: a size, or ``none`` for no limit (the library's default guard is off)."""
    size = _size(text)
    return sys.maxsize if size is None else size


def _output_name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("empty file name (use - for stdout)")
    return text


_MAX_INPUT = ("refuse inputs larger than SIZE (e.g. 512M, 4GiB, none); default: no limit for regular files, "
              "half the machine's memory for stdin, pipes and devices")
_FORCE = "overwrite an existing regular file (never a directory, device, FIFO, socket or symbolic link)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # it may quote arguments: keep them terminal-safe
        super().error(escape(message))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nctk", description="nctk: neural compression codec toolkit",
        epilog="examples:\n  nctk compress model.safetensors\n  nctk decompress model.safetensors.nctk"
               " -o restored.safetensors\n  cat x.npy | nctk compress - > x.npy.nctk\n  nctk info x.npy.nctk\n\n"
               "Outputs are written to a temporary file and renamed, so nothing partial is left behind.\n"
               "Only regular files are replaced (with -f); a symbolic link as output is refused: name its target.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="nctk 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("compress", help="compress a file (codec chosen from its type)")
    c.add_argument("input", help="input file, or - for stdin")
    c.add_argument("-o", "--output", type=_output_name, help="output file (default INPUT.nctk; - for stdout)")
    c.add_argument("--codec", help="codec id (see `nctk codecs`); default: chosen from the input type")
    setting = c.add_mutually_exclusive_group()
    setting.add_argument("--quality", type=float, help="quality for lossy codecs (see `nctk codecs`)")
    setting.add_argument("--max-error", type=_bound, metavar="E",
                         help="lossy tensors: every value within E of the original (selects tensor-bounded)")
    setting.add_argument("--rel-error", type=_bound, metavar="R",
                         help="lossy tensors: every value within R x its tensor's value range (max - min)")
    for t, unit in (("bpp", "bits per pixel"), ("kbps", "kbit/s of audio"), ("bits_per_value", "bits per value"),
                    ("psnr", "dB of PSNR, at least")):
        setting.add_argument(f"--target-{t.replace('_', '-')}", dest=f"target_{t}", type=_bound, metavar="X",
                             help=f"lossy codecs: the quality that gives {unit} X" + " at most" * (t != "psnr")
                                  + " (searched; recorded in the header)")
    setting.add_argument("--bits", dest="target_bits_per_value", type=_bound, metavar="B",
                         help="short for --target-bits-per-value B")
    c.add_argument("--sensitivity", metavar="JSON",
                   help="lossy .safetensors: spread the bound over the tensors this JSON object names (tensor name -> "
                        "sensitivity, e.g. from nctk.sensitivity); tensors it does not name stay exact")
    c.add_argument("--max-input-size", type=_size, metavar="SIZE", help=_MAX_INPUT)
    c.add_argument("-f", "--force", action="store_true", help=_FORCE)
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", help="restore the original file from a .nctk file")
    d.add_argument("input", help=".nctk file, or - for stdin")
    d.add_argument("-o", "--output", type=_output_name,
                   help="output file (default: INPUT without .nctk, beside it; - for stdout)")
    d.add_argument("-N", "--name", action="store_true",
                   help="name the output after the original file name stored in INPUT (if it is a plain, "
                        "visible file name), beside INPUT")
    d.add_argument("--max-input-size", type=_size, metavar="SIZE", help=_MAX_INPUT)
    d.add_argument("--max-output-size", type=_output_limit, metavar="SIZE",
                   help="refuse to restore more than SIZE bytes, checked before decoding (none: no limit; "
                        "default: 1 GiB, or 1024 times the .nctk file's size if that is more)")
    d.add_argument("-f", "--force", action="store_true", help=_FORCE)
    d.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", help="show what a .nctk file holds")
    i.add_argument("file", help=".nctk file, or - for stdin")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--max-input-size", type=_size, metavar="SIZE", help=_MAX_INPUT)
    i.set_defaults(func=cmd_info)

    r = sub.add_parser(
        "rd", help="measure rate-distortion curves of image, audio or tensor codecs, or compare two",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  nctk rd --codec jpeg-420,webp --data kodak/ --out rd.json --plot rd.png "
               "--compare published/jpeg.json\n"
               "  nctk rd --codec opus,vorbis --data speech/ --metrics visqol-speech,pesq-wb,stoi --workers 2\n"
               "  nctk rd --codec zstd-19,zipnn,tensor-lossless,sz3 --data model.safetensors\n"
               "  nctk rd --bd-rate jpeg.json webp.json --metric psnr-rgb\n\n"
               "Results follow CompressAI's JSON schema (rate and metric lists averaged over files per quality),\n"
               "with per-file points under \"per_file\". Rates: bpp (images), kbps (audio), bits_per_value\n"
               "(tensors). BD figures: piecewise cubic (pchip) Bjontegaard deltas.")
    r.add_argument("--codec", help=RD_CODEC_HELP)
    r.add_argument("--list", action="store_true", help="list the rd codecs and whether each can run here")
    r.add_argument("--data", nargs="+", metavar="PATH", help="input files and/or folders of them")
    r.add_argument("--quality", nargs="+", type=int, metavar="Q", help="quality points (default: each codec's sweep)")
    r.add_argument("--out", metavar="FILE.json", help="write the results (one file per codec: FILE-CODEC.json)")
    r.add_argument("--plot", metavar="FILE.png",
                   help="plot the curves: FILE.png for the tabulated metric, FILE-METRIC.png for each other one")
    r.add_argument("--compare", nargs="+", default=[], metavar="ANCHOR.json",
                   help="published or earlier results to overlay (dashed) and report BD-rates against")
    r.add_argument("--bd-rate", nargs=2, metavar=("ANCHOR.json", "TEST.json"),
                   help="only compare two results files: BD-rate and BD-quality of TEST against ANCHOR")
    r.add_argument("--metric", help="metric for tables and BD figures (default: psnr-rgb for images, visqol-speech "
                                    "for audio, psnr-range for tensors)")
    r.add_argument("--metrics", metavar="LIST", help="audio: comma-separated metrics to measure (default: all of "
                                                     "visqol-speech, visqol-audio, pesq-wb, stoi, si-snr, log-mel, "
                                                     "lsd-4k)")
    r.add_argument("--json", action="store_true", help="with --bd-rate: machine-readable output")
    scale = r.add_mutually_exclusive_group()
    scale.add_argument("--workers", type=_positive, metavar="N",
                       help="measure items in parallel on a Dask LocalCluster of N processes")
    scale.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                       help="measure items on an existing Dask cluster (its workers need nctk and the same paths)")
    cached = r.add_mutually_exclusive_group()
    cached.add_argument("--cache", metavar="DIR",
                        help="keep finished items in DIR and reuse them, so an interrupted sweep resumes (default: "
                             "$NCTK_CACHE_DIR/rd, $XDG_CACHE_HOME/nctk/rd or ~/.cache/nctk/rd)")
    cached.add_argument("--no-cache", action="store_true", help="measure every item; read and write no cache")
    r.add_argument("-q", "--quiet", action="store_true", help="print no 'wrote' or cache lines")
    r.set_defaults(func=cmd_rd)

    t = sub.add_parser("train", help="train a learned codec's model (checkpoints, resume, export to an artifact)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  nctk train image --data ../shared/data/images/bsds500 "
                              "../shared/data/images/sunhays40 --out ckpt/ --minutes 60\n"
                              "  nctk train image --data ... --out ckpt/ --minutes 60 --resume\n"
                              "  nctk train image --out ckpt/ --export --model-id image-wavelet-3\n\n"
                              "Checkpoints go to CKPT_DIR/last (every --checkpoint-minutes and on exit, Ctrl-C "
                              "included) and\nCKPT_DIR/best (lowest rate on the ~5% of images held out by "
                              "file-name hash). Never train on Kodak.")
    t.add_argument("model", choices=["image"], help="image: the context model of image-wavelet")
    t.add_argument("--data", nargs="+", metavar="DIR", help="training images: folders (their image files) or files")
    t.add_argument("--out", required=True, metavar="CKPT_DIR", help="checkpoint folder")
    t.add_argument("--minutes", type=_bound, default=10.0, help="wall-clock training budget (default 10)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in CKPT_DIR exactly")
    t.add_argument("--checkpoint-minutes", type=_bound, default=5.0, metavar="M", help="checkpoint every M minutes")
    t.add_argument("--seed", type=int, default=0, help="seed of a new run (batches are a function of seed and step)")
    t.add_argument("--lr", type=_bound, metavar="RATE",
                   help="learning rate (default 1e-3 for a new run; with --resume, a new rate from here on)")
    t.add_argument("--threads", type=_positive, default=1, metavar="N",
                   help="torch threads (default 1: the many small convolutions gain little from more threads and "
                        "lose much when cores are shared)")
    t.add_argument("--export", action="store_true",
                   help="write the best checkpoint (else the last) as an integer model artifact")
    t.add_argument("--model-id", metavar="ID",
                   help="artifact id, needed with --export: a new one (e.g. image-wavelet-3): files name their model")
    t.add_argument("--export-dir", metavar="DIR", help="artifact folder (default: assets/models/ID of this install)")
    t.add_argument("-f", "--force", action="store_true", help="replace an existing artifact in the export folder")
    t.add_argument("-q", "--quiet", action="store_true", help="print no progress")
    t.set_defaults(func=cmd_train)

    tk = sub.add_parser("tokens", help="audio to an EnCodec model's RVQ codes (.npy/.npz) and back",
                        formatter_class=argparse.RawDescriptionHelpFormatter,
                        epilog="examples:\n  nctk tokens speech.wav --model encodec_24khz.th --kbps 6 -o codes.npy\n"
                               "  nctk tokens codes.npy --model encodec_24khz.th -o speech.wav\n\n"
                               ".npy holds the codes alone: (n_q, frames), or (channels, n_q, frames) for a "
                               "multichannel file\nthrough the mono model; .npz adds the original length and "
                               "rate (and the 48 kHz model's\nsegment scales, which it needs). Encoding in "
                               "blocks gives the same codes as the whole file.")
    tk.add_argument("input", help="audio file (WAV, FLAC, OGG, ...) to encode, or a .npy/.npz token file to decode")
    tk.add_argument("--model", required=True, metavar="CKPT",
                    help="EnCodec checkpoint (.th/.pt loaded weights-only, or .safetensors)")
    tk.add_argument("--kbps", type=_bound, metavar="K", help="bandwidth (the model's own: 1.5/3/6/12/24 at 24 kHz; "
                                                           "default all codebooks)")
    tk.add_argument("--block-frames", type=_positive, metavar="N",
                    help="encode in blocks of N frames (bounded memory; the same codes as whole)")
    tk.add_argument("-o", "--output", help="output file (default: INPUT with .npy, or .wav when decoding)")
    tk.add_argument("--max-input-size", type=_size, metavar="SIZE", help=_MAX_INPUT)
    tk.add_argument("-f", "--force", action="store_true", help=_FORCE)
    tk.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    tk.set_defaults(func=cmd_tokens)

    k = sub.add_parser("codecs", help="list the registered codecs")
    k.add_argument("--json", action="store_true", help="machine-readable output")
    k.set_defaults(func=cmd_codecs)
    return p


def _message(e: BaseException) -> str | None:
    """The one-line message for an error the user can act on; None for a bug (keep the traceback)."""
    if isinstance(e, MemoryError) or (isinstance(e, OSError) and e.errno == errno.ENOMEM):
        return "out of memory (the data is too large for the memory available)"
    if isinstance(e, CliError):
        return str(e)
    errors = sys.modules.get("nctk.entropy.errors")  # not imported yet: nothing can have raised one
    if errors is not None and isinstance(e, errors.NctkError):
        return str(e)
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror or e}" if e.filename else str(e.strerror or e)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nctk`` console script; returns the exit code."""
    try:
        reserve_std_fds()
        with signals_as_exceptions():
            args = build_parser().parse_args(argv)  # usage errors: SystemExit(2) from argparse
            return args.func(args)
    except KeyboardInterrupt as e:  # Ctrl-C (anywhere, the lazy imports included), SIGTERM, SIGHUP
        _show("nctk: interrupted", sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except BrokenPipeError:  # the reader of stdout went away (`| head`): stop quietly, as SIGPIPE would
        with open(os.devnull, "wb") as null:  # so the interpreter's final flush of stdout cannot fail
            os.dup2(null.fileno(), 1)
        return 128 + getattr(signal, "SIGPIPE", 13)
    except Exception as e:  # MemoryError is an Exception too
        msg = _message(e)
        if msg is None:
            raise
        _show(f"nctk: error: {msg}", sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
