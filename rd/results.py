"""Rate-distortion results files in CompressAI's JSON schema: read them strictly, write them atomically.

The schema is ``{"name": str, "description": str, "results": {"bpp": [...], "psnr-rgb": [...], ...}}``: one
list per quantity, one entry per operating point, all lists the same length. Exactly one rate key names the
rate: ``"bpp"`` for images, ``"kbps"`` for audio, ``"bits_per_value"`` for tensors. nctk may add top-level keys
(``"meta"``, ``"per_file"``) that CompressAI's readers ignore; they are kept as they are.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from nctk.entropy.errors import NctkError

RATE_KEYS = ("bpp", "kbps", "bits_per_value")
REQUIRED_KEYS = ("name", "results")  # "description" is optional on read, always written
_FIRST_KEYS = ("name", "description", "results")  # written first, in this order; other keys follow, sorted


class ResultsError(NctkError):
    """A results file or dictionary does not follow the schema (the message names the file and the problem)."""


def validate(result: Any, source: str = "results") -> dict:
    """Check ``result`` against the schema and return it unchanged; ``source`` names it in the one-line error."""
    if not isinstance(result, dict):
        raise ResultsError(f"{source}: expected a JSON object at the top level, got {_kind(result)}")
    missing = [k for k in REQUIRED_KEYS if k not in result]
    if missing:
        raise ResultsError(f"{source}: missing key{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} "
                           "(a results file needs 'name' and 'results')")
    if not isinstance(result["name"], str) or not result["name"]:
        raise ResultsError(f"{source}: 'name' must be a non-empty string, got {result['name']!r}")
    if not isinstance(result.get("description", ""), str):
        raise ResultsError(f"{source}: 'description' must be a string, got {_kind(result['description'])}")
    res = result["results"]
    if not isinstance(res, dict) or not res:
        raise ResultsError(f"{source}: 'results' must be a non-empty object of lists, got {_kind(res)}")
    for key, values in res.items():
        if not isinstance(key, str):
            raise ResultsError(f"{source}: results key {key!r} is not a string")
        if not isinstance(values, list | tuple):
            raise ResultsError(f"{source}: results[{key!r}] must be a list of numbers, got {_kind(values)}")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ResultsError(f"{source}: results[{key!r}][{i}] is not a number: {v!r}")
            if math.isnan(v):
                raise ResultsError(f"{source}: results[{key!r}][{i}] is NaN, not a number")
            if math.isinf(v) and (v < 0 or key in RATE_KEYS):
                raise ResultsError(f"{source}: results[{key!r}][{i}] is {v}; only a metric may be infinite, and only "
                                   "+inf (the PSNR of an exact reconstruction)")
    lengths = {key: len(values) for key, values in res.items()}
    if len(set(lengths.values())) > 1:
        raise ResultsError(f"{source}: the lists in 'results' differ in length ("
                           + ", ".join(f"{k}: {n}" for k, n in lengths.items()) + "); each needs one entry per point")
    if not next(iter(lengths.values())):
        raise ResultsError(f"{source}: 'results' holds no points (the lists are empty)")
    rate_key(result, source)
    return result


def rate_key(result: dict, source: str = "results") -> str:
    """Which rate key the results use, ``"bpp"``, ``"kbps"`` or ``"bits_per_value"``: the x axis of its curves."""
    res = result.get("results") if isinstance(result, dict) else None
    found = [k for k in RATE_KEYS if isinstance(res, dict) and k in res]
    if len(found) != 1:
        what = "none" if not found else " and ".join(map(repr, found))
        raise ResultsError(f"{source}: 'results' must hold exactly one rate key of "
                           f"{', '.join(map(repr, RATE_KEYS))}; found {what}")
    return found[0]


def curve(result: dict, metric: str) -> tuple[list[float], list[float]]:
    """The (rates, values) of ``metric`` sorted by rate (ties keep file order): one RD curve, ready to plot."""
    source = repr(result.get("name", "results")) if isinstance(result, dict) else "results"
    validate(result, source)
    key, res = rate_key(result), result["results"]
    if metric not in res:
        have = [k for k in res if k != key]
        raise ResultsError(f"{source}: no metric {metric!r}; the results hold {', '.join(map(repr, have)) or 'none'}")
    rates, values = res[key], res[metric]
    order = sorted(range(len(rates)), key=rates.__getitem__)
    return [float(rates[i]) for i in order], [float(values[i]) for i in order]


def load(path: str | os.PathLike[str]) -> dict:
    """Read and validate a results file; any problem is one ``ResultsError`` naming the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ResultsError(f"{path}: cannot read: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not JSON (not UTF-8 text at byte {e.start})") from e
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not JSON ({e})") from e
    return validate(result, str(path))


def save(result: dict, path: str | os.PathLike[str]) -> None:
    """Validate ``result`` and write it as pretty JSON in a stable key order, atomically (temporary file, rename):
    a crash never leaves a half-written file, and an existing file is replaced whole and keeps its permissions."""
    path = Path(path)
    validate(result, str(path))
    try:
        # +inf (an exact reconstruction's PSNR) is written as Infinity, as Python's json (and so CompressAI) reads
        text = json.dumps(_ordered(result), indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as e:  # an extra key ("meta", ...) holding something JSON cannot write
        raise ResultsError(f"{path}: cannot be written as JSON: {e}") from e
    tmp = None
    try:
        keep_mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else None
        fd, tmp = _create_beside(path)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if keep_mode is not None:
                os.fchmod(f.fileno(), keep_mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ResultsError(f"{path}: cannot write: {e.strerror or e}") from e
        raise


# ---------------------------------------------------------------------------------------------- helpers


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value),
                                                                                         type(value).__name__)


def _ordered(result: dict) -> dict:
    """A copy with a fixed key order: name, description, results (rate key first, the rest sorted), other keys
    sorted; numbers become plain ints and floats so numpy scalars serialise."""
    key = rate_key(result)
    res = result["results"]
    out: dict[str, Any] = {"name": result["name"], "description": result.get("description", "")}
    out["results"] = {k: [int(v) if isinstance(v, numbers.Integral) else float(v) for v in res[k]]
                      for k in [key, *sorted(k for k in res if k != key)]}
    for k in sorted(k for k in result if k not in _FIRST_KEYS):
        out[k] = _sorted_keys(result[k])
    return out


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted_keys(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("NaN is not a number")
    return value


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file in ``path``'s folder (so the rename stays on one file system), created with
    mode 0666 so the umask applies as for any new file (mkstemp would make it 0600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
