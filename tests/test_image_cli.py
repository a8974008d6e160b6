"""nctk compress / decompress on image files: the lossy image codec decodes to PNG, named after the input."""

from __future__ import annotations

import numpy as np
from PIL import Image

from nctk.cli.main import main


def test_a_jpeg_decompresses_to_a_png_beside_it(tmp_path, capsys):
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([4 * x, 5 * y, 128 + 40 * np.sin(x / 5.0)], -1).clip(0, 255).astype(np.uint8)
    src = tmp_path / "pic.jpg"
    Image.fromarray(img).save(src, quality=95)
    assert main(["compress", str(src), "--codec", "image-wavelet"]) == 0
    (tmp_path / "elsewhere").mkdir()
    packed = tmp_path / "elsewhere" / "pic.jpg.nctk"
    (tmp_path / "pic.jpg.nctk").rename(packed)
    assert main(["decompress", str(packed)]) == 0
    out = tmp_path / "elsewhere" / "pic.png"
    assert out.is_file() and not (tmp_path / "elsewhere" / "pic.jpg").exists()
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (64, 48)
