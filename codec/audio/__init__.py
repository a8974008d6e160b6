"""Audio codecs (issues 20, 21): each codec's static :class:`~nctk.codec.registry.CodecInfo` here, its model
in its own module, its weights and frozen tables under ``assets/models`` (:mod:`nctk.codec.artifacts`).

Nothing ships yet: the design study (studies/AUDIO_STUDY.md) chose the first learned design.
"""
