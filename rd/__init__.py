"""Rate-distortion tooling, installed as ``nctk.rd`` and behind ``nctk rd``: sweeps of codecs over qualities,
metrics, classical baselines, BD-rate and plots. Sits above :mod:`nctk.codec`, which never imports it.

- :mod:`nctk.rd.sweep`: every codec x file x quality (:func:`~nctk.rd.sweep.run_item` is one pure measurement),
  averaged into CompressAI-schema curves; serial, or on Dask (a LocalCluster or an existing scheduler);
- :mod:`nctk.rd.modality`: images, audio and tensors, each with its file reading and measurement
  (:mod:`nctk.rd.images`, :mod:`nctk.rd.audio`, :mod:`nctk.rd.tensors`);
- :mod:`nctk.rd.baselines`: classical codecs of the harness (JPEG 4:2:0/4:4:4, WebP, JPEG 2000, AVIF, JPEG XL;
  Opus, Vorbis, MP3, FLAC; zstd, ZipNN, pcodec, Blosc2, zfp, SZ3) and nctk's own tensor codec;
- :mod:`nctk.rd.metrics`: PSNR-RGB, MS-SSIM (pytorch_msssim), tensor errors; :mod:`nctk.rd.audio_metrics`:
  alignment, ViSQOL v3, PESQ, STOI, SI-SNR, log-mel, LSD<4k;
- :mod:`nctk.rd.bdrate`: Bjontegaard deltas (pchip), refusing curves that cannot be compared;
- :mod:`nctk.rd.results`: the results JSON (CompressAI's schema): load, validate, save;
- :mod:`nctk.rd.plot`: one PNG per metric, anchors dashed.

Names are loaded on first use, so ``import nctk.rd`` imports neither numpy nor matplotlib.
"""

from __future__ import annotations

from nctk.entropy.lazy import exporter

_EXPORTS = {
    "sweep": "sweep", "run_item": "sweep", "bd_rate": "bdrate", "bd_quality": "bdrate", "bd_results": "bdrate",
    "bd_per_file": "bdrate",
    "BDResult": "bdrate", "BDError": "bdrate", "load": "results", "save": "results", "plot": "plot",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = exporter(__name__, {name: f"nctk.rd.{module}" for name, module in _EXPORTS.items()})
