"""nctk's entropy layer: frozen integer tables, rANS coders with identical bytes, the container.

Knows nothing of audio, images or tensors. See docs/FORMAT.md for every byte it writes. Names are loaded
on first use (PEP 562): ``import nctk.entropy.errors`` stays free of numpy and Numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nctk.entropy.lazy import exporter

_EXPORTS = {
    "CODER_ID": "coder", "CODER_VERSION": "coder", "DEFAULT_CHUNK": "coder", "DEFAULT_LANES": "coder",
    "chunk_counts": "coder", "decode_chunks": "coder", "decode_family": "coder", "encode_chunks": "coder",
    "encode_family": "coder", "NctkError": "errors", "ParametricFamily": "tables", "Table": "tables",
    "Tables": "tables", "categorical": "tables", "from_counts": "tables", "quantize_pmf": "tables",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from nctk.entropy.coder import (  # noqa: F401
        CODER_ID,
        CODER_VERSION,
        DEFAULT_CHUNK,
        DEFAULT_LANES,
        chunk_counts,
        decode_chunks,
        decode_family,
        encode_chunks,
        encode_family,
    )
    from nctk.entropy.errors import NctkError  # noqa: F401
    from nctk.entropy.tables import ParametricFamily, Table, Tables, categorical, from_counts, quantize_pmf  # noqa: F401


__getattr__, __dir__ = exporter(__name__, {name: f"nctk.entropy.{module}" for name, module in _EXPORTS.items()})
