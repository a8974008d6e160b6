"""The image-wavelet codec end to end: inputs as users give them, round trips, golden bitstreams, identical decoding
with 1 and 2 threads and with the reference path, rate and quality, one clear error for every bad input.

Golden files use the tiny test model in tests/golden/image_model (fixed forever); regenerate them, after a deliberate
format change that bumps the codec version, with ``python tests/test_image_codec.py --write``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nctk
from nctk.codec import artifacts, registry
from nctk.codec.image.wavelet import MODEL_ID, ImageWavelet
from nctk.codec.registry import Encoded, FileItem
from nctk.entropy import container
from nctk.entropy.errors import ChecksumError, CodecError, FormatError, TruncatedError

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden")
TEST_MODEL = GOLDEN / "image_model"
SHIPPED = MODEL_ID in artifacts.shipped()
needs_model = pytest.mark.skipif(not SHIPPED, reason=f"model {MODEL_ID} is not shipped in this checkout")


def natural(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: 1/f clouds (correlated colour), a few hard-edged shapes, a little sensor noise."""
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    f[0, 0] = 1.0

    def field() -> np.ndarray:
        v = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(h, w))) / f**1.5))
        return (v - v.mean()) / v.std()

    lum, cb, cr = field(), field(), field()
    img = 120 + 45 * lum[..., None] + np.stack([12 * cr, -6 * cb - 6 * cr, 12 * cb], axis=-1)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - h * 0.6) ** 2 + (xx - w * 0.3) ** 2 < (min(h, w) * 0.2) ** 2] = (200, 60, 40)
    img[h // 5 : h // 3, w // 2 : w * 4 // 5] = (30, 40, 90)
    img += rng.normal(0, 1, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def roundtrip(codec: ImageWavelet, item, **kw) -> tuple[bytes, object]:
    enc = codec.encode(item, **kw)
    blob = container.dumps(enc.header, enc.sections)
    box = container.loads(blob)
    return blob, codec.decode(Encoded(box.header, list(box.sections.values())))


def file_bytes(img: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def test_codec() -> ImageWavelet:
    return ImageWavelet(TEST_MODEL)


# ------------------------------------------------------------------------------------------- catalogue, inputs

def test_catalogue_entry_and_sniffing():
    entry = {c["id"]: c for c in nctk.codecs()}["image-wavelet"]
    assert entry["modality"] == "image" and entry["lossless"] is False and entry["quality_range"] == [1, 8]
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"} == set(entry["extensions"])
    c = registry.get("image-wavelet")
    img = natural(8, 8)
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP"):
        assert registry.for_input(file_bytes(img, fmt)[:512], None) is c, fmt
    assert registry.for_input(b"BM" + b"\x00" * 30, "x.npy").id == "tensor-lossless"  # a bare "BM" is no BMP


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 37, 3), (33, 17, 3), (64, 64, 3), (20, 30), (20, 30, 1)])
def test_round_trip_any_size_and_shape(test_codec, shape):
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    _, out = roundtrip(test_codec, img, quality=8)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == img.shape
    exact = roundtrip(test_codec, img, step=1)[1]
    assert np.array_equal(exact, img)  # step 1 is lossless, whatever the model


def test_grey_codes_only_luma(test_codec):
    img = natural(40, 56)[..., 1]
    blob_grey, out = roundtrip(test_codec, img, quality=5)
    blob_rgb, _ = roundtrip(test_codec, np.repeat(img[..., None], 3, axis=2), quality=5)
    assert out.shape == img.shape and len(blob_grey) < len(blob_rgb)
    enc = test_codec.encode(img, quality=5)
    assert enc.header["channels"] == 1 and enc.header["shape"] == [40, 56]


@needs_model
@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("JPEG", {"quality": 95}), ("BMP", {}), ("TIFF", {}),
                                    ("WEBP", {"lossless": True})])
def test_image_files_decode_to_png(tmp_path, fmt, kw):
    img = natural(48, 80, seed=1)
    path = tmp_path / f"photo.{fmt.lower()}"
    path.write_bytes(file_bytes(img, fmt, **kw))
    blob = nctk.compress(path)
    head = nctk.info(blob)
    assert head["codec"] == "image-wavelet" and head["kind"] == "file" and head["format"] == fmt.lower()
    assert head["original_name"] == path.name and head["model"]["id"] == MODEL_ID
    name, png = nctk.decompress_file(blob)
    assert name == "photo.png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    out = np.asarray(Image.open(io.BytesIO(png)))
    src = np.asarray(Image.open(path).convert("RGB"))
    assert out.shape == src.shape and psnr(src, out) > 26


def test_modes_converted_or_refused(test_codec):
    rgb = natural(24, 24)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    for im, channels in [(pal, 3), (Image.fromarray(rgb).convert("1"), 1), (Image.fromarray(rgb).convert("CMYK"), 3),
                         (Image.fromarray(np.dstack([rgb, np.full((24, 24), 255, np.uint8)])), 3),
                         (Image.fromarray(rgb[..., 0]).convert("LA"), 1),
                         (Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), 1)]:
        buf = io.BytesIO()
        im.save(buf, format="TIFF" if im.mode == "CMYK" else "PNG")
        enc = test_codec.encode(FileItem(buf.getvalue(), "x.png"), quality=4)
        assert enc.header["channels"] == channels, im.mode
    alpha = np.dstack([rgb, np.full((24, 24), 255, np.uint8)])
    alpha[3, 4, 3] = 0
    with pytest.raises(CodecError, match="transparency"):
        test_codec.encode(file_bytes(alpha, "PNG"))
    with pytest.raises(CodecError, match="alpha"):
        test_codec.encode(alpha)
    buf = io.BytesIO()
    Image.fromarray(rgb[..., 0].astype(np.float32)).save(buf, format="TIFF")
    with pytest.raises(CodecError, match="8-bit"):
        test_codec.encode(buf.getvalue())
    frames = [Image.fromarray(rgb), Image.fromarray(rgb[::-1])]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(CodecError, match="frames"):
        test_codec.encode(buf.getvalue())
    for bad in (rgb.astype(np.uint16), rgb[..., :2], np.zeros((0, 4, 3), np.uint8), [[1, 2]]):
        with pytest.raises(CodecError):
            test_codec.encode(bad)


def test_exif_orientation_is_applied(test_codec):
    img = natural(16, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", exif=exif, quality=95)
    enc = test_codec.encode(buf.getvalue())
    assert (enc.header["width"], enc.header["height"]) == (16, 40)


# ------------------------------------------------------------------------------------------------- bad inputs

def test_bad_image_files_give_one_clear_error(test_codec):
    good = file_bytes(natural(32, 32), "PNG")
    jpeg = file_bytes(natural(64, 64), "JPEG")
    for data in (good[:40], good[:8] + b"\x00" * 100, jpeg[: len(jpeg) // 2], b"\xff\xd8\xff" + b"garbage" * 10):
        with pytest.raises(CodecError, match="not a readable image"):
            test_codec.encode(FileItem(data, "bad.png"))


def test_damaged_nctk_files(test_codec):
    img = natural(40, 40)
    blob, _ = roundtrip(test_codec, img, quality=4)
    with pytest.raises(TruncatedError):
        container.loads(blob[:-9])
    flipped = bytearray(blob)
    flipped[len(blob) - 20] ^= 4
    with pytest.raises(ChecksumError):
        container.loads(bytes(flipped))
    box = container.loads(blob)
    sections = list(box.sections.values())

    def decode(header, secs=sections):
        return test_codec.decode(Encoded(header, secs))

    wrong = dict(box.header, model={"id": "image-wavelet-test", "digest": "0" * 64})
    with pytest.raises(artifacts.ArtifactError, match="encoded with model"):
        decode(wrong)
    with pytest.raises(artifacts.ArtifactError, match="not shipped"):
        ImageWavelet().decode(Encoded(dict(box.header, model={"id": "no-such-model", "digest": "0" * 64}),
                                      sections))
    for change in ({"original_size": 5}, {"step": 0}, {"channels": 2}, {"width": 1 << 17}, {"model": "x"}):
        with pytest.raises(FormatError):
            decode(dict(box.header, **change))
    with pytest.raises(FormatError, match="sections"):
        decode(box.header, sections[:-1])
    swapped = [sections[1], sections[0]] + sections[2:]  # right names, wrong symbol counts
    swapped[0] = type(swapped[0])("ll.0", sections[1].chunks, sections[1].counts)
    swapped[1] = type(swapped[1])("ll.1", sections[0].chunks, sections[0].counts)
    with pytest.raises(FormatError):
        decode(box.header, swapped)


# ----------------------------------------------------------------------------------------- rate and quality

@needs_model
def test_rate_falls_with_quality_and_psnr_is_sane():
    img = natural(96, 128, seed=3)
    codec = registry.get("image-wavelet")
    sizes, quality = [], []
    for q in range(1, 9):
        blob = nctk.compress(img, codec="image-wavelet", quality=q)
        sizes.append(len(blob))
        quality.append(psnr(img, nctk.decompress(blob)))
    assert sizes == sorted(sizes) and len(set(sizes)) == 8, sizes
    assert quality == sorted(quality), quality
    default = nctk.decompress(nctk.compress(img, codec="image-wavelet"))
    assert psnr(img, default) > 25
    assert codec.rate_units(img) == ("pixels", 96 * 128)


@needs_model
def test_rate_control_targets():
    img = natural(64, 96, seed=5)
    blob = nctk.compress(img, codec="image-wavelet", target=("bpp", 2.0))  # a small image: ~1 KB is framing
    t = nctk.info(blob)["target"]
    assert len(blob) * 8 / (64 * 96) <= 2.0 and t["metric"] == "bpp" and 1 < t["quality"] < 8
    blob = nctk.compress(img, codec="image-wavelet", target=("psnr", 32.0))
    assert psnr(img, nctk.decompress(blob)) >= 32.0


# ------------------------------------------------------------------------------------------------ determinism

@needs_model
def test_reference_and_numba_paths_give_the_same_bytes_and_pixels():
    img = natural(50, 70, seed=7)
    fast, ref = ImageWavelet(), ImageWavelet(backend="reference")
    enc = fast.encode(img, quality=3)
    assert container.dumps(enc.header, enc.sections) == container.dumps(*_pair(ref.encode(img, quality=3)))
    assert np.array_equal(fast.decode_pixels(enc), ref.decode_pixels(enc))


def _pair(enc: Encoded) -> tuple[dict, list]:
    return enc.header, enc.sections


DECODE_SCRIPT = """
import hashlib, sys
import nctk
data = open(sys.argv[1], "rb").read()
print(hashlib.sha256(nctk.decompress(data).tobytes()).hexdigest())
"""


@needs_model
def test_threads_and_cpu_targets_decode_identically(tmp_path):
    """1 and 2 threads, and code generated for a baseline x86-64 CPU instead of this one (no AVX: other vector widths,
    as on another machine), all decode the same pixels."""
    img = natural(200, 260, seed=9)  # bands big enough for the parallel kernels to split work
    blob = nctk.compress(img, codec="image-wavelet", quality=4)
    path = tmp_path / "img.nctk"
    path.write_bytes(blob)
    want = hashlib.sha256(nctk.decompress(blob).tobytes()).hexdigest()
    for env in ({"NUMBA_NUM_THREADS": "1"}, {"NUMBA_NUM_THREADS": "2"},
                {"NUMBA_NUM_THREADS": "2", "NUMBA_CPU_NAME": "generic"}):
        p = subprocess.run([sys.executable, "-c", DECODE_SCRIPT, str(path)], env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == want, env


# ------------------------------------------------------------------------------------------------ golden files

def golden_image() -> np.ndarray:
    """An integer-only test pattern (no RNG, no floats): ramps, a checkerboard and a wrapping product."""
    i, j, c = np.ogrid[:40, :70, :3]
    return ((i * 5 + j * 3 + c * 40 + (i // 8 + j // 8) % 2 * 60 + i * j % 23) % 256).astype(np.uint8)


def golden_grey_png() -> bytes:
    i, j = np.ogrid[:33, :17]
    return file_bytes(((i * 7 + j * j) % 256).astype(np.uint8), "PNG")


# Made with plain rounding (rdoq=0: the encoder before rate-distortion optimised quantisation), and with it.
GOLDEN_CASES = {
    "image_wavelet_rgb40x70_q4.nctk": lambda: ImageWavelet(TEST_MODEL, rdoq=0).encode(golden_image(), quality=4),
    "image_wavelet_grey33x17_step200.nctk": lambda: ImageWavelet(TEST_MODEL, rdoq=0).encode(
        FileItem(golden_grey_png(), "grey.png"), step=200),
    "image_wavelet_rgb40x70_q4_rdoq.nctk": lambda: ImageWavelet(TEST_MODEL).encode(golden_image(), quality=4),
}
GOLDEN_PIXELS = GOLDEN / "image_wavelet_pixels.json"  # sha256 of each golden file's decoded pixels


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_bitstreams(test_codec, name):
    golden = (GOLDEN / name).read_bytes()
    enc = GOLDEN_CASES[name]()
    assert container.dumps(enc.header, enc.sections) == golden, "encoder output changed: see the module docstring"
    box = container.loads(golden)
    px = test_codec.decode_pixels(Encoded(box.header, list(box.sections.values())))
    assert hashlib.sha256(px.tobytes()).hexdigest() == json.loads(GOLDEN_PIXELS.read_text())[name]


def test_rdoq_trades_distortion_for_bits_and_never_changes_decoding(test_codec):
    """Rate-distortion optimised quantisation is the encoder's choice alone: files with and without it decode
    with the same decoder; it makes the file smaller at a small cost in PSNR, and rdoq=0 is plain rounding."""
    img = natural(48, 64, seed=11)
    plain, rdoq = ImageWavelet(TEST_MODEL, rdoq=0), ImageWavelet(TEST_MODEL, rdoq=0.1)
    a, b = plain.encode(img, quality=4), rdoq.encode(img, quality=4)
    size = lambda e: container.size(e.header, e.sections)  # noqa: E731
    assert size(b) < size(a)
    pa, pb = test_codec.decode_pixels(a), test_codec.decode_pixels(b)
    assert psnr(img, pb) < psnr(img, pa) and psnr(img, pb) > psnr(img, pa) - 3
    assert np.array_equal(rdoq.decode_pixels(b), pb)
    for bad in (-1.0, float("nan"), float("inf"), "0.1"):
        with pytest.raises(CodecError, match="rdoq"):
            ImageWavelet(TEST_MODEL, rdoq=bad)


@needs_model
def test_files_of_the_earlier_shipped_model_still_decode():
    from nctk.codec.artifacts import shipped

    assert {"image-wavelet-1", MODEL_ID} <= set(shipped())
    img = natural(40, 56, seed=12)
    old = ImageWavelet(ROOT / "assets" / "models" / "image-wavelet-1")
    enc = old.encode(img, quality=5)
    assert enc.header["model"]["id"] == "image-wavelet-1"
    blob = container.dumps(enc.header, enc.sections)
    assert np.array_equal(nctk.decompress(blob), old.decode_pixels(enc))


def test_rdoq_moves_an_index_only_when_it_pays():
    from nctk.codec.image.wavelet import rdoq, table_bits
    from nctk.entropy.tables import Tables, categorical

    tables = Tables([categorical(np.array([0.05, 0.15, 0.6, 0.15, 0.05]), offset=-2, escape_prob=1e-4)])
    units = np.array([0.55, 0.9, -0.52, 1.5, 2.45, 0.0, 7.0])
    q = np.round(units).astype(np.int64)
    idx, base = np.zeros(len(q), np.int32), np.zeros(len(q), np.int64)
    out = rdoq(q, units, idx, base, tables, 0.2)
    j = lambda v: (units - v) ** 2 + 0.2 * table_bits(tables, idx, v - base)  # noqa: E731
    assert (j(out) <= j(q)).all() and (np.abs(out - q) <= 1).all() and (np.abs(out) <= np.abs(q)).all()
    assert out[0] == 0 and out[1] == 1 and out[5] == 0  # 0.55 goes to 0; 0.9 stays; zero stays
    assert np.array_equal(rdoq(q, units, idx, base, tables, 0.0), q)


# -------------------------------------------------------------------------------------------------------- CLI

@needs_model
def test_cli_compress_decompress_info(tmp_path):
    img = natural(40, 60, seed=2)
    src = tmp_path / "pic.jpg"
    src.write_bytes(file_bytes(img, "JPEG", quality=95))

    def nctk_cli(*args):
        p = subprocess.run([sys.executable, "-m", "nctk.cli", *args], capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return p.stdout.decode()

    nctk_cli("compress", str(src), "--quality", "5")
    nctk_cli("decompress", str(src) + ".nctk", "-o", str(tmp_path / "out.png"))
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (40, 60, 3) and psnr(np.asarray(Image.open(src)), out) > 28
    info = json.loads(nctk_cli("info", "--json", str(src) + ".nctk"))
    assert info["codec"] == "image-wavelet" and info["width"] == 60 and info["quality"] == 5.0
    p = subprocess.run([sys.executable, "-m", "nctk.cli", "compress", str(tmp_path / "out.png"), "--quality", "9"],
                       capture_output=True, timeout=300)
    assert p.returncode == 1 and b"quality" in p.stderr


if __name__ == "__main__" and "--write" in sys.argv:
    codec = ImageWavelet(TEST_MODEL)
    hashes = {}
    for name, make in GOLDEN_CASES.items():
        enc = make()
        blob = container.dumps(enc.header, enc.sections)
        (GOLDEN / name).write_bytes(blob)
        box = container.loads(blob)
        hashes[name] = hashlib.sha256(codec.decode_pixels(Encoded(box.header, list(box.sections.values())))
                                      .tobytes()).hexdigest()
    GOLDEN_PIXELS.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print("wrote", sorted(GOLDEN_CASES))
