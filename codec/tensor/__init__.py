"""Tensor codecs: ``tensor-lossless`` (exact ``.safetensors`` / ``.npy`` files, numpy arrays, torch tensors) and
``tensor-bounded`` (lossy floats, every value within a given error bound).

- :mod:`nctk.codec.tensor.fields`: splitting elements into symbol fields (fast and reference twins).
- :mod:`nctk.codec.tensor.formats`: reading ``.npy`` / ``.safetensors`` layouts, arrays and tensors as bytes.
- :mod:`nctk.codec.tensor.lossless`: the lossless codec and its section layout.
- :mod:`nctk.codec.tensor.quantizer`: error-bounded uniform quantisation (indices, exceptions, reconstruction).
- :mod:`nctk.codec.tensor.predictors`: index-space predictors (none, 2-D Lorenzo, hierarchical interpolation).
- :mod:`nctk.codec.tensor.bounded`: the error-bounded codec and its section layout.

This module holds only the codecs' static metadata, so listing codecs imports nothing heavy.
"""

from nctk.codec.registry import CodecInfo

LOSSLESS = CodecInfo(
    id="tensor-lossless", version=1, modality="tensor", lossless=True, quality_range=None,
    extensions=(".safetensors", ".npy"),
    description=("lossless .safetensors/.npy files, numpy arrays and torch tensors: float exponents "
                 "and mantissa planes, integer byte planes, order-0 rANS; byte-identical round trip"),
    entry="nctk.codec.tensor.lossless:TensorLossless",
)

BOUNDED = CodecInfo(
    id="tensor-bounded", version=2, modality="tensor", lossless=False, quality_range=(1, 24),
    extensions=(),  # never chosen by a file's name or content: only by codec= or an error bound
    description=("lossy float tensors (.safetensors/.npy files, numpy arrays, torch tensors) within an error "
                 "bound: max_error, rel_error (x value range) or quality q (rel 2**-q); uniform quantiser, "
                 "interpolation/Lorenzo predictor, rANS; NaN/Inf/-0.0/subnormals and non-float tensors exact"),
    entry="nctk.codec.tensor.bounded:TensorBounded",
)
