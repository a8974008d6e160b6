"""Reading tensor files for RD sweeps: ``.safetensors``, ``.npy`` and PyTorch ``.pt``/``.pth``/``.bin`` state dicts.

A file is measured as the list of its non-empty tensors (:class:`~nctk.rd.baselines.tensors.Tensor`), each with the
safetensors dtype name, so bfloat16 works everywhere although numpy has no such type. :func:`probe` reads only what
says how much there is (headers; a torch file's pickle with its storages mapped, not read), so a sweep can check
every file before measuring any; :func:`load` reads the values.

Nothing here unpickles arbitrary objects: ``.npy`` files are read with ``allow_pickle=False`` and torch files with
``torch.load(weights_only=True)``. Torch files are flattened to dotted names (``encoder.layer.0.weight``; lists
give their indices); entries that are not tensors of a dtype the harness knows (numbers, strings, complex or
quantized tensors), and a second name for the same view of the same storage (tied weights, stored once), are skipped
and counted in ``probe``'s ``"skipped"``; so are safetensors entries of unknown dtypes. Empty tensors are skipped
too. Anything that is not such a file, or holds no non-empty tensor, raises one CodecError line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from typing import Any

from nctk.entropy.errors import CodecError
from nctk.rd.baselines.tensors import DTYPES, Tensor

PathLike = str | os.PathLike
SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own limit
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive

# numpy dtype (kind, itemsize) -> safetensors name, for .npy files
_NUMPY_NAMES = {("f", 8): "F64", ("f", 4): "F32", ("f", 2): "F16", ("i", 8): "I64", ("i", 4): "I32",
                ("i", 2): "I16", ("i", 1): "I8", ("u", 8): "U64", ("u", 4): "U32", ("u", 2): "U16",
                ("u", 1): "U8", ("b", 1): "BOOL"}
# torch dtype name -> safetensors name
_TORCH_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16",
                "uint8": "U8", "bool": "BOOL", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}


def _fail(path: PathLike, why: str) -> CodecError:
    return CodecError(f"cannot read tensors from {os.fspath(path)!r}: {why}")


def _kind(path: PathLike) -> str:
    """``"safetensors"``, ``"npy"`` or ``"torch"`` from the file's first bytes (and, for torch, its suffix)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError as e:
        raise _fail(path, e.strerror or str(e)) from None
    if head.startswith(NPY_MAGIC):
        return "npy"
    if len(head) == 9 and head[8:9] == b"{" and 2 <= struct.unpack_from("<Q", head)[0] <= SAFETENSORS_MAX_HEADER:
        return "safetensors"
    if head.startswith(ZIP_MAGIC) or os.fspath(path).lower().endswith(TORCH_SUFFIXES):
        return "torch"
    raise _fail(path, "not a .safetensors, .npy or PyTorch (.pt, .pth, .bin) tensor file")


# ---------------------------------------------------------------------------------------------- safetensors

def _safetensors_entries(path: PathLike) -> tuple[list[tuple[str, str, tuple[int, ...], int, int]], int, int]:
    """``(entries, data start, skipped)``: each entry is (name, dtype, shape, begin, end) with absolute offsets."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > min(SAFETENSORS_MAX_HEADER, size - 8):
            raise _fail(path, f"header length {n} exceeds the file")
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise _fail(path, f"its safetensors header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise _fail(path, "its safetensors header is not a JSON object")
    body, entries, skipped = 8 + n, [], 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise _fail(path, f"tensor {name!r} has no dtype/shape/data_offsets entry")
        dtype, shape, offs = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if (type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape)
                or type(offs) is not list or len(offs) != 2 or not all(type(o) is int for o in offs)):
            raise _fail(path, f"tensor {name!r} has a malformed shape or data_offsets")
        begin, end = offs
        if not 0 <= begin <= end <= size - body:
            raise _fail(path, f"tensor {name!r}'s data_offsets {offs} lie outside the file")
        if dtype not in DTYPES:
            skipped += 1  # e.g. complex (C64) or a float8 variant the harness has no name for
            continue
        if (end - begin) != math.prod(shape) * _itemsize(dtype):
            raise _fail(path, f"tensor {name!r} ({dtype} {shape}) does not match its {end - begin} bytes")
        if end == begin:
            skipped += 1
            continue
        entries.append((name, dtype, tuple(shape), body + begin, body + end))
    return entries, body, skipped


def _itemsize(dtype: str) -> int:
    import numpy as np

    return np.dtype(DTYPES[dtype][0]).itemsize


def _load_safetensors(path: PathLike) -> tuple[list[Tensor], int]:
    import numpy as np

    entries, _, skipped = _safetensors_entries(path)
    out = []
    with open(path, "rb") as fh:
        for name, dtype, shape, begin, end in entries:
            fh.seek(begin)
            data = np.fromfile(fh, dtype=DTYPES[dtype][0], count=(end - begin) // _itemsize(dtype))
            out.append(Tensor(name, dtype, shape, data.reshape(shape)))
    return out, skipped


# -------------------------------------------------------------------------------------------------------- npy

def _npy_name(path: PathLike, dt: Any) -> str:
    name = _NUMPY_NAMES.get((dt.kind, dt.itemsize)) if dt.fields is None and dt.subdtype is None else None
    if name is None:
        raise _fail(path, f"dtype {dt} is not a tensor dtype the harness measures (floats, integers, bool)")
    return name


def _open_npy(path: PathLike, mmap: bool) -> Any:
    import numpy as np

    try:  # allow_pickle=False: object arrays (stored with pickle) raise ValueError instead of being unpickled
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise _fail(path, f"not a readable .npy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None


def _load_npy(path: PathLike) -> tuple[list[Tensor], int]:
    import numpy as np

    arr = _open_npy(path, mmap=False)
    dtype = _npy_name(path, arr.dtype)
    if arr.size == 0:
        return [], 1
    data = np.ascontiguousarray(arr, dtype=DTYPES[dtype][0])  # also byte-swaps big-endian files
    return [Tensor(os.path.basename(os.fspath(path)).removesuffix(".npy"), dtype, tuple(arr.shape), data)], 0


# ------------------------------------------------------------------------------------------------------ torch

def _torch_load(path: PathLike) -> Any:
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it may not read; the error says it
            warnings.simplefilter("ignore", UserWarning)
            try:  # zip-format files map their storages: a probe reads the pickle, not the values
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # the legacy (pre-1.6) format
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError) as e:
        raise _fail(path, _torch_reason(str(e) or type(e).__name__)) from None


def _torch_reason(message: str) -> str:
    """One line out of torch.load's multi-line refusal (which also suggests weights_only=False: not here)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    if found:
        return (f"it holds a {found.group(1)!r} object, which torch.load(weights_only=True) does not build "
                "(only tensors, containers and plain values are read)")
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", message)
    if found:
        return f"torch.load(weights_only=True) refuses it ({found.group(1).strip()}): not a PyTorch weights file"
    first = next((s.strip() for s in message.splitlines() if s.strip()), message)
    return f"torch.load(weights_only=True) cannot read it: {first}"


def _torch_tensors(path: PathLike, obj: Any) -> tuple[list[tuple[str, Any]], int]:
    """``[(dotted name, tensor)]`` of the non-empty tensors in a loaded torch object, and how many were skipped."""
    import torch

    found: list[tuple[str, Any]] = []
    seen: set[tuple] = set()
    skipped = 0

    def walk(item: Any, name: str) -> None:
        nonlocal skipped
        if isinstance(item, dict):
            for k, v in item.items():
                walk(v, f"{name}.{k}" if name else str(k))
        elif isinstance(item, (list, tuple)):
            for i, v in enumerate(item):
                walk(v, f"{name}.{i}" if name else str(i))
        elif isinstance(item, torch.Tensor):
            usable = (item.layout == torch.strided and not item.is_quantized and not item.is_nested
                      and item.device.type != "meta" and str(item.dtype).removeprefix("torch.") in _TORCH_NAMES)
            if not usable or item.numel() == 0:
                skipped += 1
                return
            view = (item.untyped_storage().data_ptr(), item.storage_offset(), tuple(item.shape), item.stride(),
                    item.dtype)
            if view in seen:  # a tied weight saved under two names is stored once
                skipped += 1
                return
            seen.add(view)
            found.append((name, item))
        else:
            skipped += 1

    walk(obj, "")
    if len(found) == 1 and found[0][0] == "":  # a bare tensor: named after the file
        found = [(os.path.splitext(os.path.basename(os.fspath(path)))[0], found[0][1])]
    return found, skipped


def _from_torch(name: str, t: Any) -> Tensor:
    import numpy as np
    import torch

    dtype = _TORCH_NAMES[str(t.dtype).removeprefix("torch.")]
    t = t.detach().contiguous()
    if dtype == "BF16":
        arr = t.view(torch.int16).numpy().view(np.uint16)
    elif dtype.startswith("F8"):
        arr = t.view(torch.uint8).numpy()
    else:
        arr = t.numpy()
    return Tensor(name, dtype, tuple(t.shape), np.array(arr, dtype=DTYPES[dtype][0], copy=True))  # off the mmap


# ----------------------------------------------------------------------------------------------------- public

def probe(path: PathLike) -> dict[str, int]:
    """What a tensor file holds, cheaply: ``{"tensors", "values", "bytes", "skipped"}`` for its non-empty tensors.

    "bytes" is their payload (values x item size); "skipped" counts entries left out (empty tensors, non-tensor
    entries, unknown dtypes, second names of tied weights). Only headers are read (a torch file's pickle, with its
    storages mapped). Raises CodecError naming the file if it is unreadable, not a tensor file, or holds no
    non-empty tensor.
    """
    kind = _kind(path)
    try:
        if kind == "safetensors":
            entries, _, skipped = _safetensors_entries(path)
            sizes = [(math.prod(shape), end - begin) for _, _, shape, begin, end in entries]
        elif kind == "npy":
            arr = _open_npy(path, mmap=True)
            _npy_name(path, arr.dtype)
            sizes, skipped = ([(arr.size, arr.nbytes)], 0) if arr.size else ([], 1)
        else:
            found, skipped = _torch_tensors(path, _torch_load(path))
            sizes = [(t.numel(), t.numel() * t.element_size()) for _, t in found]
    except OSError as e:
        raise _fail(path, e.strerror or str(e)) from None
    if not sizes:
        raise _fail(path, f"it holds no non-empty tensor ({skipped} entries skipped)")
    return {"tensors": len(sizes), "values": sum(v for v, _ in sizes), "bytes": sum(b for _, b in sizes),
            "skipped": skipped}


def load(path: PathLike) -> list[Tensor]:
    """The non-empty tensors of a ``.safetensors``, ``.npy`` or torch file, in file order, with their dtype names.

    Skips what :func:`probe` counts as skipped. Raises CodecError naming the file if it cannot be used.
    """
    kind = _kind(path)
    try:
        if kind == "safetensors":
            tensors, skipped = _load_safetensors(path)
        elif kind == "npy":
            tensors, skipped = _load_npy(path)
        else:
            found, skipped = _torch_tensors(path, _torch_load(path))
            tensors = [_from_torch(name, t) for name, t in found]
    except OSError as e:
        raise _fail(path, e.strerror or str(e)) from None
    if not tensors:
        raise _fail(path, f"it holds no non-empty tensor ({skipped} entries skipped)")
    return tensors
