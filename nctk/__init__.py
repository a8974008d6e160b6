"""nctk, the neural compression codec toolkit: one namespace for the public API and its layers.

>>> import numpy as np, nctk
>>> blob = nctk.compress(np.arange(10, dtype=np.int32))
>>> nctk.decompress(blob)
array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=int32)

The layers are subpackages: :mod:`nctk.cli` (the ``nctk`` command), :mod:`nctk.codec` (codecs, quantizers,
kernels), :mod:`nctk.entropy` (tables, rANS coders, the container). They live in the repository's top-level
``cli/``, ``codec/`` and ``entropy/`` folders, mapped under this package at install time (pyproject.toml).

Names are loaded on first use (PEP 562), so ``import nctk`` costs nothing until the API is touched: the
command line's ``--help`` and ``codecs`` never import numpy, Numba or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nctk.entropy.lazy import exporter

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "compress": "nctk.codec.api", "compress_to": "nctk.codec.api", "decompress": "nctk.codec.api",
    "decompress_file": "nctk.codec.api",
    "info": "nctk.codec.api", "codecs": "nctk.codec.api", "sensitivity": "nctk.codec.tensor.sensitivity",
    "Codec": "nctk.codec.registry", "Encoded": "nctk.codec.registry", "FileItem": "nctk.codec.registry",
    "NctkError": "nctk.entropy.errors", "CodecError": "nctk.entropy.errors", "FormatError": "nctk.entropy.errors",
    "LimitError": "nctk.entropy.errors", "UnsupportedVersionError": "nctk.entropy.errors",
}

__all__ = sorted(_API)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nctk.codec.api import codecs, compress, compress_to, decompress, decompress_file, info  # noqa: F401
    from nctk.codec.registry import Codec, Encoded, FileItem  # noqa: F401
    from nctk.codec.tensor.sensitivity import sensitivity  # noqa: F401
    from nctk.entropy.errors import CodecError, FormatError, LimitError, NctkError, UnsupportedVersionError  # noqa: F401


__getattr__, __dir__ = exporter(__name__, _API)
