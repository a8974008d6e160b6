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
echo "== demo finished: every file restored exactly"
