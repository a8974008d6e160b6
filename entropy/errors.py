"""The one exception family nctk raises for bad input; subclasses name what is wrong.

Every reader (container, coder, codec) raises only these on malformed or hostile data, so callers and
the CLI can catch one type and print one line.
"""

from __future__ import annotations


class NctkError(Exception):
    """Base class of every error nctk raises on purpose (bad input, bad file, bad arguments)."""


class FormatError(NctkError):
    """The bytes are not a valid .nctk file (bad magic, truncated, corrupted, inconsistent)."""


class NotNctkError(FormatError):
    """The input does not start with the .nctk magic bytes."""


class TruncatedError(FormatError):
    """The file ends before a length it declares."""


class ChecksumError(FormatError):
    """A CRC32 does not match: the file was corrupted after it was written."""


class UnsupportedVersionError(FormatError):
    """The file was written by a format, codec or coder version this build cannot read."""


class LimitError(FormatError):
    """A declared size exceeds a hard limit or the bytes actually present."""


class CorruptStreamError(FormatError):
    """An entropy-coded stream failed its end-of-stream integrity check."""


class TableError(NctkError):
    """A coding table is invalid (bad precision, frequencies that do not sum, empty alphabet)."""


class CodecError(NctkError):
    """A codec cannot handle this input (unsupported type, dtype, shape) or the name is unknown."""
