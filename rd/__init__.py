"""Rate-distortion tooling (issue 18), installed as ``nctk.rd``: sweeps of a codec over qualities, metrics,
classical baselines, BD-rate and plots, behind ``nctk rd``. Sits above :mod:`nctk.codec`, which never
imports it. Nothing here yet."""
