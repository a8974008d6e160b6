"""Training (issues 19-23), installed as ``nctk.train``: data loading, losses, the checkpointed training
loop and the export of a trained model to an artifact (:func:`nctk.codec.artifacts.write`).

- :mod:`nctk.train.image`: image-wavelet's context model (float twin with fake quantisation, exact resume,
  held-out checkpoint selection, export to integer weights); ``nctk train image``.

Inference code (``nctk.codec``, ``nctk.entropy``, ``nctk.rd``) never imports this package; a test checks it."""
