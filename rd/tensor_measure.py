"""One tensor item's measurement for RD sweeps: a codec at one quality on all tensors of one file.

Rate is counted over the whole file (every tensor's bytes summed, so per-tensor headers count), distortion over
the whole file too: the largest error, the relative Frobenius error and a PSNR whose peak is the file's value range.
Lossless codecs are held to bit-exact round trips here, not trusted to check themselves.

A tensor whose dtype a codec does not take (integer tensors for the lossy codecs, everything but
float32/bfloat16/float16 for ZipNN) is counted at its raw payload size, exact, and reported in "raw_tensors": a
model file with an integer buffer (BERT's ``position_ids``) then still gives every codec a curve over the same
bytes, and what a codec could not code costs it what storing it would. Distortion is over the tensors the codec
coded. A codec that takes none of the file's tensors is an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from nctk.entropy.errors import CodecError
from nctk.rd.baselines.tensors import Tensor, TensorCodec

LOSSY_KEYS = ("max-abs-error", "rel-frobenius", "psnr-range")
WARMUP_VALUES = 4096


def _warm_up(codec: TensorCodec, t: Tensor, quality: int) -> None:
    """One untimed round trip on a small slice of ``t``, so imports and JIT start-up (Numba for nctk, torch for
    ZipNN) are not charged to the first tensor's timing."""
    n = min(t.size, WARMUP_VALUES)
    piece = Tensor(t.name, t.dtype, (n,), t.data.reshape(-1)[:n])
    codec.decode(codec.encode(piece, quality), piece)


def _float64(t: Tensor) -> Any:
    return (t.data if t.dtype == "F64" else t.as_float32()).astype("float64")


def measure_tensors(codec: TensorCodec, tensors: Sequence[Tensor], quality: int) -> dict[str, Any]:
    """Encode and decode every tensor with ``codec`` at ``quality`` and measure rate, time and (lossy) distortion.

    Returns ``{"bytes", "original_bytes", "values", "bits_per_value", "ratio", "encoding_time", "decoding_time",
    "tensors", "raw_tensors"}`` plus, for lossy codecs, ``"max-abs-error"``, ``"rel-frobenius"`` and
    ``"psnr-range"``. "bytes" sums the codec's output over the tensors (raw payload for tensors it does not take);
    "bits_per_value" is ``8 * bytes / values``; "ratio" is ``bytes / original_bytes``, compressed over original,
    so lower is better (the inverse of ``nctk info``'s ratio). Times are seconds, summed over the tensors, after
    one untimed warm-up. "rel-frobenius" is ``sqrt(sum ||x - y||^2 / sum ||x||^2)`` over all coded values;
    "psnr-range" is ``10 log10(peak^2 / MSE)`` with peak the file-wide ``max - min`` and the MSE over all coded
    values (``inf`` for no error). Raises CodecError if a lossless codec does not give a tensor back bit for bit,
    a decoded tensor has the wrong dtype or shape, the codec takes none of the tensors, or there are no values.
    """
    import numpy as np

    tensors = [t for t in tensors if t.size]
    if not tensors:
        raise CodecError("measure_tensors needs at least one non-empty tensor")
    taken = [t for t in tensors if t.dtype in codec.dtypes]
    if not taken:
        dtypes = ", ".join(sorted({t.dtype for t in tensors}))
        raise CodecError(f"codec {codec.id} takes none of these tensors (dtypes {dtypes}); it takes "
                         f"{', '.join(sorted(codec.dtypes))}")
    _warm_up(codec, taken[0], quality)

    total = raw_tensors = 0
    enc_time = dec_time = 0.0
    # File-wide distortion sums in float64, with math.fsum across tensors: float32 sums over tens of millions of
    # squared errors lose several digits, and the per-pair helpers in nctk.rd.metrics cannot be combined into
    # file-wide figures (a ratio of sums is not a mean of ratios; the peak is the file's range, not each tensor's).
    err_sq, ref_sq, max_err, lo, hi, coded = [], [], 0.0, math.inf, -math.inf, 0
    for t in tensors:
        if t.dtype not in codec.dtypes:
            total += t.nbytes
            raw_tensors += 1
            continue
        t0 = time.perf_counter()
        data = codec.encode(t, quality)
        t1 = time.perf_counter()
        rec = codec.decode(data, t)
        t2 = time.perf_counter()
        enc_time, dec_time, total = enc_time + (t1 - t0), dec_time + (t2 - t1), total + len(data)
        if not isinstance(rec, Tensor) or rec.dtype != t.dtype or rec.shape != t.shape:
            got = f"{rec.dtype} {rec.shape}" if isinstance(rec, Tensor) else type(rec).__name__
            raise CodecError(f"codec {codec.id} decoded {got} for {t.dtype} {t.shape} tensor {t.name!r}")
        if codec.lossless:
            # compare bits, not values: NaN payloads and -0.0 must come back too
            if not np.array_equal(rec.data.reshape(-1).view(np.uint8), t.data.reshape(-1).view(np.uint8)):
                raise CodecError(f"codec {codec.id} did not round-trip tensor {t.name!r} exactly")
            continue
        x = _float64(t)
        e = x - _float64(rec)
        err_sq.append(float(np.dot(e.ravel(), e.ravel())))
        ref_sq.append(float(np.dot(x.ravel(), x.ravel())))
        max_err = max(max_err, float(np.max(np.abs(e))))
        lo, hi, coded = min(lo, float(x.min())), max(hi, float(x.max())), coded + x.size

    values = sum(t.size for t in tensors)
    original = sum(t.nbytes for t in tensors)
    out: dict[str, Any] = {"bytes": total, "original_bytes": original, "values": values,
                           "bits_per_value": 8.0 * total / values, "ratio": total / original,
                           "encoding_time": enc_time, "decoding_time": dec_time, "tensors": len(tensors),
                           "raw_tensors": raw_tensors}
    if not codec.lossless:
        esum, xsum = math.fsum(err_sq), math.fsum(ref_sq)
        mse, peak = esum / coded, hi - lo
        out["max-abs-error"] = max_err
        out["rel-frobenius"] = math.sqrt(esum / xsum) if xsum else (0.0 if esum == 0 else math.inf)
        # no error: inf; an error on constant values (no range to be a peak): -inf
        out["psnr-range"] = math.inf if mse == 0 else (10.0 * math.log10(peak * peak / mse) if peak else -math.inf)
    return out
