"""Audio codecs (issues 20, 21): each codec's static :class:`~nctk.codec.registry.CodecInfo` here, its model
in its own module, its weights and frozen tables under ``assets/models`` (:mod:`nctk.codec.artifacts`).

EnCodec checkpoints (issue 21, first slice; no registered codec yet):

- :mod:`.encodec` loads a state dict of Meta's ``encodec`` package (24 kHz mono, 48 kHz stereo; a path or a
  dict; weights-only, never pickle code) and encodes/decodes it with exact RVQ codes, whole or streaming
  (chunk-invariant codes, documented latency);
- :mod:`.seanet` is its SEANet encoder/decoder as streamable layers;
- :mod:`.seanet_ref` defines their arithmetic (a fixed float32 order per element, polynomial
  transcendentals) and :mod:`.seanet_numba` computes the same bits fast.

The design study (studies/AUDIO_STUDY.md) chose the first learned design of nctk's own audio codec.
"""
