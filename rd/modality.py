"""The kinds of data a sweep measures (images, audio, tensors) and where each one's file handling lives.

A sweep needs the same four things of every modality, each a function of the module named here:
``probe(path) -> info`` (cheap, header only: a bad file fails before any work, and the info is checked against
cached items), ``load(path) -> content``, ``measure(codec, content, quality, metrics) -> dict`` (the codec's
real bytes, the rate, the distortions and the timings), ``required(info, codec, metrics) -> keys`` (the numbers a
finished item must hold); optionally ``meta(names, infos) -> dict`` (facts about the files for the results'
metadata). The modules are imported only when a sweep runs, so listing modalities costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from nctk.entropy.errors import CodecError


@dataclass(frozen=True)
class Modality:
    """One kind of data: its name, its rate key in results files, its file suffixes and its module."""

    name: str
    rate_key: str  # the x axis: "bpp", "kbps" or "bits_per_value" (nctk.rd.results.RATE_KEYS)
    suffixes: tuple[str, ...]  # lower case, with the dot
    module: str

    def impl(self) -> ModuleType:
        """The module with ``probe``, ``load``, ``measure`` and ``required`` (imported on first use)."""
        return importlib.import_module(self.module)


MODALITIES = {
    m.name: m
    for m in (
        Modality("image", "bpp", (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp"),
                 "nctk.rd.images"),
        Modality("audio", "kbps", (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff"), "nctk.rd.audio"),
        Modality("tensor", "bits_per_value", (".safetensors", ".npy", ".pt", ".pth"), "nctk.rd.tensors"),
    )
}


def get(name: str) -> Modality:
    """The modality called ``name``; CodecError listing the known ones otherwise."""
    try:
        return MODALITIES[name]
    except KeyError:
        raise CodecError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}") from None
