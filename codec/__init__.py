"""Codecs: an item (file, array, image, clip) -> symbols + frozen tables -> container sections, and back.

- :mod:`nctk.codec.api`: the public functions (``nctk.compress`` and friends re-export them).
- :mod:`nctk.codec.registry`: the Codec protocol, static codec metadata, choosing a codec for an input.
- :mod:`nctk.codec.tensor` (and, as they land, ``image``, ``audio``): one package per modality.
- :mod:`nctk.codec.quant`: quantizers for learned codecs; :mod:`nctk.codec.kernels`: their fast kernels.
- :mod:`nctk.codec.artifacts`: shipped model weights and tables, checked against their manifest on load.
"""
