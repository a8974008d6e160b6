"""Shipped artifacts, installed as ``nctk.assets``: ``models/<id>/`` (weights, frozen tables, manifest; see
:mod:`nctk.codec.artifacts`) and ``demo/`` (the inputs ``make demo`` compresses). Data only: no code."""
