"""nctk's entropy layer: frozen integer tables, rANS coders with identical bytes, the container.

Knows nothing of audio, images or tensors. See docs/FORMAT.md for every byte it writes.
"""

from nctk.entropy.coder import (
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
from nctk.entropy.errors import NctkError
from nctk.entropy.tables import ParametricFamily, Table, Tables, categorical, from_counts, quantize_pmf

__all__ = [
    "CODER_ID", "CODER_VERSION", "DEFAULT_CHUNK", "DEFAULT_LANES", "NctkError", "ParametricFamily",
    "Table", "Tables", "categorical", "chunk_counts", "decode_chunks", "decode_family", "encode_chunks",
    "encode_family", "from_counts", "quantize_pmf",
]
