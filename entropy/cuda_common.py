"""CUDA plumbing shared by the GPU twins (:mod:`entropy.rans_cuda`, :mod:`codec.kernels.rvq_cuda`).

Device detection, the device-function decorator, launch sizes, and the conversions between host arrays,
torch tensors and device arrays. Importing it imports numba.cuda (the ``[gpu]`` extra). With
``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported, numba-cuda's simulator runs every kernel as
Python (``tests/test_cuda_sim.py``); its arrays differ from real device arrays, hence the ``SIMULATOR``
branches below.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import cuda

from nctk.entropy.errors import NctkError

SIMULATOR = bool(getattr(numba.config, "ENABLE_CUDASIM", 0))
MAX_BLOCKS = (1 << 31) - 1  # CUDA's limit on a grid's x dimension


def available() -> tuple[bool, str]:
    """``(True, "")`` when kernels can run (a CUDA device, or the simulator), else ``(False, why)``."""
    if SIMULATOR:
        return True, ""
    try:
        if cuda.is_available():
            return True, ""
    except Exception as e:  # driver present but broken
        return False, f"numba.cuda failed to initialise ({e})"
    return False, "no CUDA device or driver (numba.cuda.is_available() is False)"


def require_device() -> None:
    """Raise :class:`NctkError` unless :func:`available`."""
    ok, why = available()
    if not ok:
        raise NctkError(f"CUDA backend unavailable: {why}")


def device_fn(fn: Callable) -> Callable:
    """A device function; force-inlined on a real GPU (the simulator's jit has no such option)."""
    if SIMULATOR:
        return cuda.jit(device=True)(fn)
    return cuda.jit(device=True, forceinline=True)(fn)


def grid(n: int, tpb: int, cap: int = MAX_BLOCKS) -> int:
    """Blocks of ``tpb`` threads covering ``n`` threads, at least 1 and at most ``cap`` (kernels with a
    grid-stride loop pass a smaller cap; one-thread-per-item kernels must not)."""
    return max(1, min(cap, -(-n // tpb)))


def plain(a):
    """Torch tensors without autograd (their array interfaces refuse tensors that require grad)."""
    return a.detach() if type(a).__module__.startswith("torch") else a


def is_device_array(a) -> bool:
    """True for numba device arrays, torch CUDA tensors, CuPy arrays (and the simulator's arrays)."""
    if SIMULATOR:
        return hasattr(a, "copy_to_host") and not isinstance(a, np.ndarray)
    return hasattr(plain(a), "__cuda_array_interface__")


def as_device(a):
    """A numba device view of a CUDA array (no copy)."""
    if SIMULATOR:
        return a
    return cuda.as_cuda_array(plain(a))


@cuda.jit
def _outside_kernel(a, limit, flag):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < a.shape[0]:
        if not abs(a[i]) < limit:  # also catches NaN
            flag[0] = 1
        i += stride


def any_outside(a, limit: float) -> bool:
    """Whether some element of the 1-D device array ``a`` is NaN or has ``|a[i]| >= limit`` (with
    ``limit = inf``: whether some element is not finite). One pass on the device."""
    flag = cuda.to_device(np.zeros(1, np.int32))
    if a.shape[0]:
        _outside_kernel[grid(a.shape[0], 256, 1 << 16), 256](a, limit, flag)
    return bool(flag.copy_to_host()[0])
