#!/usr/bin/env bash
# `make demo`: compress and restore the bundled inputs with the nctk CLI, and say what happened.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "== nctk demo: lossless compression of the bundled tensor files in assets/demo/inputs"
echo "== working in a temporary folder; nothing in the repository is modified"
nctk codecs
echo
for src in "$here"/inputs/*; do
  name="$(basename "$src")"
  cp "$src" "$work/$name"
  echo "\$ nctk compress $name"
  nctk compress "$work/$name" 2>&1
  echo "\$ nctk decompress $name.nctk -o $name.restored"
  nctk decompress "$work/$name.nctk" -o "$work/$name.restored" 2>&1
  cmp "$work/$name" "$work/$name.restored"
  echo "   -> restored file is byte-identical to the original"
done
echo
echo "\$ nctk info tiny_mlp.safetensors.nctk"
nctk info "$work/tiny_mlp.safetensors.nctk"
echo "== every tensor file restored exactly"
echo
echo "== lossy: a photograph with the learned image codec (decodes to PNG, bit-identically on any machine)"
cp "$here/photo/kodim23_crop.png" "$work/photo.png"
echo "\$ nctk compress photo.png -o photo.nctk"
nctk compress "$work/photo.png" -o "$work/photo.nctk" 2>&1
echo "\$ nctk decompress photo.nctk -o photo_decoded.png"
nctk decompress "$work/photo.nctk" -o "$work/photo_decoded.png" 2>&1
python - "$work/photo.png" "$work/photo_decoded.png" "$work/photo.nctk" <<'PY'
import os, sys
import numpy as np
from PIL import Image
from nctk.rd.metrics import psnr_rgb
a, b = (np.array(Image.open(p).convert("RGB")) for p in sys.argv[1:3])
print(f"   -> {8 * os.path.getsize(sys.argv[3]) / (a.shape[0] * a.shape[1]):.3f} bpp, PSNR-RGB {psnr_rgb(a, b):.2f} dB")
PY
echo
echo "== lossy: tensors within an error bound, and at a target rate"
echo "\$ nctk compress tiny_mlp.safetensors --max-error 1e-3 -o mlp.nctk"
nctk compress "$work/tiny_mlp.safetensors" --max-error 1e-3 -o "$work/mlp.nctk" 2>&1
nctk decompress "$work/mlp.nctk" -o "$work/mlp_decoded.safetensors" 2>&1
python - "$work/tiny_mlp.safetensors" "$work/mlp_decoded.safetensors" <<'PY'
import sys
from safetensors.numpy import load_file
a, b = (load_file(p) for p in sys.argv[1:3])
err = max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) for k in a)
print(f"   -> largest error over every weight: {err:.2e} (bound 1e-3)")
PY
echo "\$ nctk compress tiny_mlp.safetensors --target-bits-per-value 4 -o mlp4.nctk"
nctk compress "$work/tiny_mlp.safetensors" --target-bits-per-value 4 -o "$work/mlp4.nctk" 2>&1
echo "== demo finished"
