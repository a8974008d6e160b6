"""PEP 562 lazy exports: a package's public names are imported on first use, so importing it costs nothing
(``import nctk`` and ``nctk --help`` load neither numpy nor Numba)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exporter(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` for ``package``; ``exports`` maps each public name to
    the module that defines it. A name, once loaded, becomes a plain attribute of the package."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
