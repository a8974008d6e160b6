"""Tensor codecs: ``tensor-lossless`` (exact ``.safetensors`` / ``.npy`` files, numpy arrays, torch tensors).

- :mod:`codec.tensor.fields`: splitting elements into symbol fields (fast and reference twins).
- :mod:`codec.tensor.formats`: reading ``.npy`` / ``.safetensors`` layouts, arrays and tensors as bytes.
- :mod:`codec.tensor.lossless`: the codec and its section layout.
"""
