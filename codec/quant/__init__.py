"""Quantizers for learned codecs: torch modules for training, with exact, machine-independent codes.

``ResidualVQ`` and ``GroupResidualVQ`` train with EMA codebooks and straight-through (or rotation-trick)
gradients; their ``to_codes`` / ``from_codes`` follow the exact RVQ definition of ``codec.kernels.rvq_ref``.
"""

from nctk.codec.quant.residual_vq import GroupResidualVQ, ResidualVQ, exact_decode, exact_encode

__all__ = ["ResidualVQ", "GroupResidualVQ", "exact_encode", "exact_decode"]
