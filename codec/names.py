"""Which original file names an ``.nctk`` file may store, and may create beside its input when decoded.

A stored name is attacker-controlled: ``nctk decompress X.nctk`` writes the file it names next to ``X``.
:func:`safe_name` accepts only a plain, visible file name: no path, no dotfile (``.bashrc``), nothing an
option parser or a terminal would interpret. Standard library only, so the CLI can use it cheaply.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_NAME_BYTES", "safe_name"]

MAX_NAME_BYTES = 255  # the usual file-name limit (NAME_MAX) on Linux and macOS file systems


def safe_name(name: object) -> str | None:
    """``name`` if it is fit to store and to create as a file beside the input, else None.

    Rejected: anything but a non-empty ``str``; ``.`` and ``..``; names holding ``/``, ``\\`` or NUL;
    names starting with ``.`` (dotfiles) or ``-`` (read as an option); control characters (Unicode
    category Cc: ESC, BEL, newline, CR, ...) and format characters (Cf: the bidi overrides U+202A-U+202E
    and isolates U+2066-U+2069, U+200E/U+200F, zero-width characters, ...); the line and paragraph
    separators U+2028/U+2029; lone surrogates; names longer than 255 bytes in UTF-8.
    """
    if not isinstance(name, str) or not name or name[0] in ".-":
        return None
    if "/" in name or "\\" in name:
        return None
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):  # NUL is Cc; Cs: lone surrogates
            return None
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:  # cannot fail: surrogates were rejected above
        return None
    return name
