"""Rate control: pick the quality of a lossy codec that meets a target rate or PSNR, by search over its quality.

Targets (the names of ``nctk compress --target-*`` and of the ``target=`` keyword of :func:`nctk.compress`):

``bpp``, ``kbps``, ``bits_per_value``
    a rate ceiling: the file's total size (header and framing included) in bits per pixel, kilobits per second
    of audio, or bits per tensor value. The result never exceeds it.
``psnr``
    a quality floor in dB, as the codec defines PSNR for its data (tensors: over each item's value range; images:
    PSNR-RGB). The result never falls below it.

The search is a bisection over the codec's quality range, assuming quality orders rate and distortion (it does
for every nctk codec up to entropy-coding noise; where it does not, the answer still meets the target, it may
just not be the best quality that does). It keeps the best candidate that meets the target, evaluates both
ends first (so an unreachable target fails fast, with the nearest value reachable in the message) and stops after
:data:`STEPS` halvings: the quality found is within ``(hi - lo) / 2**STEPS`` of the best one (0.02 for a range
of 1..24). Each step is one full encode (and for PSNR one decode), so rate control costs about ``STEPS + 2``
encodes. The header of the chosen encoding records ``"target": {"metric", "asked", "reached", "quality"}``.

A codec offers rate control by having a ``quality_range`` and two methods: ``rate_units(item) -> (unit, count)``
with unit "pixels", "seconds" or "values", and ``psnr(item, encoded) -> float``.
"""

from __future__ import annotations

import math
from typing import Any

from nctk.codec.registry import Codec, Encoded
from nctk.entropy import container
from nctk.entropy.errors import CodecError

STEPS = 10
# target name -> the rate unit it divides by (None: a quality target) and how to print it
TARGETS: dict[str, str | None] = {"bpp": "pixels", "kbps": "seconds", "bits_per_value": "values", "psnr": None}
_LONGEST = -2.2250738585072014e-308  # a float whose JSON form is as long as any float's
_UNITS = {"bpp": "bpp", "kbps": "kbps", "bits_per_value": "bits/value", "psnr": "dB"}


def check_target(target: Any) -> tuple[str, float]:
    """``(name, value)`` from a ``target=`` argument, or CodecError saying what a target looks like."""
    if (not isinstance(target, tuple | list) or len(target) != 2 or target[0] not in TARGETS
            or isinstance(target[1], bool) or not isinstance(target[1], int | float)):
        raise CodecError(f"target must be (name, value) with name one of {', '.join(TARGETS)}, got {target!r}")
    name, value = target[0], float(target[1])
    if not math.isfinite(value) or value <= 0:
        raise CodecError(f"target {name} must be a positive finite number, got {target[1]!r}")
    return name, value


def _rate(name: str, nbytes: int, units: float) -> float:
    bits = 8.0 * nbytes
    return bits / 1000.0 / units if name == "kbps" else bits / units


def encode_to_target(codec: Codec, item: Any, target: tuple[str, float], options: dict | None = None) -> Encoded:
    """Encode ``item`` with ``codec`` at the quality that meets ``target`` (see the module docstring), passing
    ``options`` (keywords other than the quality) to every encode; CodecError if the codec has no rate control,
    the target does not fit its data, or no quality reaches it."""
    name, asked = check_target(target)
    if codec.quality_range is None or not hasattr(codec, "rate_units") or not hasattr(codec, "psnr"):
        raise CodecError(f"codec {codec.id!r} has no rate control (targets need a lossy codec with a quality)")
    lo, hi = (float(v) for v in codec.quality_range)
    unit, units = None, 0.0
    if TARGETS[name] is not None:
        unit, units = codec.rate_units(item)
        if unit != TARGETS[name]:
            wanted = next(t for t, u in TARGETS.items() if u == unit)
            raise CodecError(f"--target-{name.replace('_', '-')} does not apply to this input: codec {codec.id!r} "
                             f"measures its rate in {wanted} (use --target-{wanted.replace('_', '-')})")
        if units <= 0:
            raise CodecError(f"the input holds no {unit}: there is no rate to control")

    def score(q: float) -> tuple[Encoded, float]:
        enc = codec.encode(item, quality=q, **(options or {}))
        if unit is None:
            return enc, float(codec.psnr(item, enc))
        # Measured with the longest target record the header can get, so the finished file is never larger.
        longest = {**enc.header, "target": {"metric": name, "asked": asked, "reached": _LONGEST, "quality": _LONGEST}}
        return enc, _rate(name, container.size(longest, enc.sections), units)

    def meets(value: float) -> bool:
        return value >= asked if unit is None else value <= asked

    # Rate ceilings want the highest quality under the ceiling; PSNR floors the lowest quality above the floor.
    low, high = score(lo), score(hi)
    if unit is None:
        if meets(low[1]):
            return _record((lo, *low), name, asked, unit, units)
        if not meets(high[1]):
            raise CodecError(f"{codec.id} cannot reach PSNR {asked:g} dB on this input: its best quality gives "
                             f"{high[1]:.4g} dB")
        best, good, bad = (hi, *high), hi, lo
    else:
        if meets(high[1]):
            return _record((hi, *high), name, asked, unit, units)
        if not meets(low[1]):
            raise CodecError(f"{codec.id} cannot fit {asked:g} {_UNITS[name]} on this input: its lowest quality "
                             f"takes {low[1]:.4g} {_UNITS[name]}")
        best, good, bad = (lo, *low), lo, hi
    for _ in range(STEPS):  # invariant: quality `good` meets the target, `bad` does not
        mid = (good + bad) / 2
        enc, value = score(mid)
        if meets(value):
            good = mid
            best = (mid, enc, value)
        else:
            bad = mid
    return _record(best, name, asked, unit, units)


def _record(best: tuple[float, Encoded, float], name: str, asked: float, unit: str | None,
            units: float) -> Encoded:
    """The chosen encoding with ``header["target"]`` set.

    For a rate, "reached" is the rate measured with the longest record a header can hold (see ``score``), so it
    never understates the finished file's rate and exceeds it by at most a few dozen bytes' worth: a file cannot state
    its own exact size in a number whose length changes that size. For PSNR, ``None`` (JSON null) means exact.
    """
    quality, enc, reached = best
    record = {"metric": name, "asked": asked, "reached": reached if math.isfinite(reached) else None,
              "quality": quality}
    return Encoded({**enc.header, "target": record}, enc.sections)
