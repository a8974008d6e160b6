"""Image codecs (issue 19): each codec's static :class:`~nctk.codec.registry.CodecInfo` here, its parts in their
own modules, its weights and frozen tables under ``assets/models`` (:mod:`nctk.codec.artifacts`).

``image-wavelet`` (the design study's ``wavelet`` design, studies/IMAGE_STUDY.md), all integer arithmetic so that
every machine decodes the same pixels:

- :mod:`~nctk.codec.image.pixels`: image files and arrays in (Pillow), PNG out; modes converted or refused.
- :mod:`~nctk.codec.image.transform`: reversible YCoCg-R and a 5-level integer CDF 9/7 lifting wavelet.
- :mod:`~nctk.codec.image.quantiser`: quality -> one step, MSE-balanced per-band integer steps.
- :mod:`~nctk.codec.image.subbands`: coding order (coarse to fine, two checkerboard passes) and network inputs.
- :mod:`~nctk.codec.image.model`: the integer context networks and their artifact.
- :mod:`~nctk.codec.image.context_ref` / :mod:`~nctk.codec.image.context_numba`: integer inference, reference and
  fast twins (identical outputs); :mod:`~nctk.codec.image.context` runs them strip by strip.
- :mod:`~nctk.codec.image.choice`: network outputs -> table index and base, by integer arithmetic.
- :mod:`~nctk.codec.image.wavelet`: the codec and its sections.

Not yet: the study's decoder-side enhancement CNN. It changes pixels after decoding, so it too must run in integers to
keep decoding identical everywhere; it can reuse the integer convolution kernels here (a later slice of issue 19).

This module holds only the static metadata, so listing codecs imports nothing heavy.
"""

from nctk.codec.registry import CodecInfo

WAVELET = CodecInfo(
    id="image-wavelet", version=1, modality="image", lossless=False, quality_range=(1, 8),
    extensions=(".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"),
    description=("lossy 8-bit RGB/grey images (PNG, JPEG, BMP, TIFF, WebP; uint8 arrays): integer wavelet, "
                 "learned integer context model, rANS; decodes bit-identically everywhere; decompresses to PNG"),
    entry="nctk.codec.image.wavelet:ImageWavelet",
)
