"""Accelerated kernels (Numba CPU, CUDA), each beside the reference it must match exactly."""
