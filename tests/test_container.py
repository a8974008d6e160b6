"""The .nctk container: round trips, the pinned example file, and hostile-input fuzzing.

Every malformed input must raise a FormatError subclass (never IndexError, struct.error, json errors,
RecursionError, MemoryError), fail fast, and never allocate from an unvalidated length.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nctk.entropy import container as ct
from nctk.entropy.container import (
    FORMAT_VERSION,
    MAGIC,
    MAX_CHUNKS,
    MAX_HEADER,
    MAX_SECTIONS,
    Container,
    Section,
    SectionInfo,
    dumps,
    is_nctk,
    loads,
    read_header,
    write,
)
from nctk.entropy.errors import (
    ChecksumError,
    FormatError,
    LimitError,
    NctkError,
    NotNctkError,
    TruncatedError,
    UnsupportedVersionError,
)

EXAMPLE_HEADER = {"codec": "example", "codec_version": 1}
EXAMPLE_SECTIONS = [Section("data", [b"abc", b""], [3, 0])]
# docs/FORMAT_CONTAINER.md shows this file; if this literal has to change, the format changed.
EXAMPLE_HEX = (
    "894e43544b0d0a1a0100000025000000"  # magic, version 1, flags 0, H = 37
    "7b22636f646563223a226578616d706c65222c22636f6465635f76657273696f6e223a317d"  # header JSON
    "01000000af2861cd"  # S = 1, header CRC
    "046461746102000000"  # name length 4, "data", C = 2
    "0300000003000000c2412435"  # chunk 0: 3 bytes, count 3, crc32(b"abc")
    "000000000000000000000000"  # chunk 1: 0 bytes, count 0, crc32(b"")
    "6725d99e"  # section table CRC
    "616263"  # payloads: b"abc" + b""
)

H = {"codec": "t", "codec_version": 0}


def multi_file() -> bytes:
    """A small file with three sections: several chunks, an empty chunk, a section with no chunks."""
    return dumps({"codec": "multi", "codec_version": 2, "shape": [2, 3], "opts": {"q": 0.5}}, [
        Section("a", [b"hello", b"", b"world!"], [5, 0, 6]),
        Section("empty", [], []),
        Section("z.b-c_9", [bytes(range(7))], [7]),
    ])


# ------------------------------------------------------------------ raw builder (any fields, correct CRCs)


def raw_section(name: bytes, chunks: list[tuple[bytes, int]], *, chunk_count: int | None = None,
                lengths: list[int] | None = None, crcs: list[int] | None = None,
                table_crc: int | None = None) -> bytes:
    if chunk_count is None:
        chunk_count = len(chunks)
    table = bytes([len(name)]) + name + struct.pack("<I", chunk_count)
    for i, (payload, count) in enumerate(chunks):
        length = len(payload) if lengths is None else lengths[i]
        crc = zlib.crc32(payload) if crcs is None else crcs[i]
        table += struct.pack("<III", length, count, crc)
    crc = zlib.crc32(table) if table_crc is None else table_crc
    return table + struct.pack("<I", crc) + b"".join(p for p, _ in chunks)


def raw_file(header: bytes | dict = H, sections: list[bytes] = (), *, magic: bytes = MAGIC,
             version: int = FORMAT_VERSION, flags: int = 0, hlen: int | None = None,
             section_count: int | None = None, header_crc: int | None = None) -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hlen = len(header) if hlen is None else hlen
    count = len(sections) if section_count is None else section_count
    body = struct.pack("<HHI", version, flags, hlen) + header + struct.pack("<I", count)
    crc = zlib.crc32(body) if header_crc is None else header_crc
    return magic + body + struct.pack("<I", crc) + b"".join(sections)


def test_raw_builder_matches_writer():
    data = raw_file(EXAMPLE_HEADER, [raw_section(b"data", [(b"abc", 3), (b"", 0)])])
    assert data.hex() == EXAMPLE_HEX


# ------------------------------------------------------------------------------------- golden + basics


def test_golden_example_bytes():
    data = dumps(EXAMPLE_HEADER, EXAMPLE_SECTIONS)
    assert data.hex() == EXAMPLE_HEX
    c = loads(bytes.fromhex(EXAMPLE_HEX))
    assert c.header == EXAMPLE_HEADER
    assert list(c.sections) == ["data"]
    sec = c.section("data")
    assert [bytes(x) for x in sec.chunks] == [b"abc", b""] and sec.counts == [3, 0]
    assert sec.total_bytes == 3 and sec.total_count == 3


def test_write_matches_dumps_and_returns_size():
    buf = io.BytesIO()
    n = write(buf, EXAMPLE_HEADER, EXAMPLE_SECTIONS)
    assert buf.getvalue() == bytes.fromhex(EXAMPLE_HEX) and n == len(buf.getvalue())


class _TrickleWriter(io.RawIOBase):
    """A raw stream that accepts at most 5 bytes per write() call (short writes)."""

    def __init__(self):
        self.out = bytearray()

    def writable(self):
        return True

    def write(self, b):
        b = memoryview(b)[:5]
        self.out += b
        return len(b)


def test_write_handles_short_writes():
    fp = _TrickleWriter()
    assert write(fp, EXAMPLE_HEADER, EXAMPLE_SECTIONS) == len(EXAMPLE_HEX) // 2
    assert bytes(fp.out).hex() == EXAMPLE_HEX


def test_zero_sections_and_zero_copy_payloads():
    data = dumps(H, [])
    c = loads(data)
    assert c == Container(H, {}) and read_header(data) == (H, [])
    data = multi_file()
    c = loads(data)
    for sec in c.sections.values():
        for chunk in sec.chunks:
            assert isinstance(chunk, memoryview) and chunk.obj is data


def test_accepts_bytearray_memoryview_and_buffer_chunks():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = dumps(H, [Section("f32", [arr, memoryview(b"xy"), bytearray(b"z")], [6, 2, np.int64(1)])])
    for form in (data, bytearray(data), memoryview(data)):
        sec = loads(form).section("f32")
        assert bytes(sec.chunks[0]) == arr.tobytes() and sec.counts == [6, 2, 1]
        assert bytes(sec.chunks[1]) == b"xy" and bytes(sec.chunks[2]) == b"z"


def test_read_header_matches_loads():
    data = multi_file()
    header, infos = read_header(data)
    c = loads(data)
    assert header == c.header
    assert infos == [SectionInfo("a", 3, 11, 11), SectionInfo("empty", 0, 0, 0),
                     SectionInfo("z.b-c_9", 1, 7, 7)]
    assert infos == [SectionInfo(s.name, len(s.chunks), s.total_bytes, s.total_count)
                     for s in c.sections.values()]


def test_read_header_skips_payload_crcs_but_not_structure():
    data = bytearray(multi_file())
    data[-1] ^= 0xFF  # last payload byte
    read_header(data)  # structure intact
    with pytest.raises(ChecksumError, match=r"section 'z.b-c_9' chunk 0"):
        loads(data)
    with pytest.raises(FormatError, match="trailing"):
        read_header(bytes(data) + b"\0")
    with pytest.raises(TruncatedError):
        read_header(bytes(data[:-1]))


def test_is_nctk():
    assert is_nctk(MAGIC) and is_nctk(multi_file()) and is_nctk(memoryview(multi_file()))
    assert not is_nctk(b"") and not is_nctk(MAGIC[:7]) and not is_nctk(b"\x89PNG\r\n\x1a\n")


def test_missing_section_named():
    c = loads(multi_file())
    with pytest.raises(FormatError, match=r"missing section 'nope'.*'a', 'empty', 'z.b-c_9'"):
        c.section("nope")


# ------------------------------------------------------------------------------- hypothesis round trips

json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=16,
)
headers = st.builds(
    lambda extra, codec, version: {**extra, "codec": codec, "codec_version": version},
    st.dictionaries(st.text(max_size=10), json_values, max_size=5),
    st.text(min_size=1, max_size=16),
    st.integers(0, 2**40),
)
section_names = st.from_regex(r"[A-Za-z0-9_.\-]{1,64}", fullmatch=True)
chunk_lists = st.lists(st.tuples(st.binary(max_size=48), st.integers(0, 2**32 - 1)), max_size=5)
section_lists = st.lists(
    st.builds(lambda name, cs: Section(name, [c for c, _ in cs], [n for _, n in cs]),
              section_names, chunk_lists),
    max_size=4, unique_by=lambda s: s.name,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers, section_lists)
def test_round_trip(header, sections):
    data = dumps(header, sections)
    buf = io.BytesIO()
    assert write(buf, header, sections) == len(data) and buf.getvalue() == data
    c = loads(data)
    assert c == Container(header, {s.name: s for s in sections})
    assert list(c.sections) == [s.name for s in sections]
    assert read_header(data) == (header, [SectionInfo(s.name, len(s.chunks), s.total_bytes, s.total_count)
                                          for s in sections])
    # Canonical: re-encoding the parsed file gives the same bytes.
    assert dumps(c.header, list(c.sections.values())) == data


# ------------------------------------------------------------------------------ truncation and bit flips


def test_truncation_at_every_position():
    data = multi_file()
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            loads(data[:n])
        with pytest.raises(TruncatedError):
            read_header(data[:n])


def test_every_single_bit_flip_is_caught():
    data = multi_file()
    kinds = set()
    for bit in range(len(data) * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            loads(bad)
        except FormatError as e:
            kinds.add(type(e))
        else:  # pragma: no cover - the assertion is the test
            pytest.fail(f"flipping bit {bit} (byte {bit // 8}) was not detected")
    assert {NotNctkError, UnsupportedVersionError, ChecksumError, FormatError} <= kinds


def test_every_byte_flip_in_example_caught_by_read_header_outside_payloads():
    data = bytes.fromhex(EXAMPLE_HEX)
    for i in range(len(data) - 3):  # the last 3 bytes are the payload, which read_header does not check
        bad = bytearray(data)
        bad[i] ^= 0xA5
        with pytest.raises(FormatError):
            read_header(bad)


# ------------------------------------------------------------------------------- garbage and mutations


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] = rng.randrange(256)
        elif op == 1:
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del b[i : i + rng.randint(1, 8)]
        elif op == 3:
            j = rng.randrange(len(b) + 1)
            b[i:i] = b[j : j + rng.randint(1, 16)]
        elif op == 4 and len(b) >= 4:
            k = min(i, len(b) - 4)
            value = rng.choice([0, 1, 2, 64, 65, 0xFFFF, 0x10000, 0x10001, MAX_CHUNKS, MAX_CHUNKS + 1,
                                MAX_HEADER, MAX_HEADER + 1, 2**31, 2**32 - 1, len(b)])
            b[k : k + 4] = struct.pack("<I", value)
        elif op == 5:
            del b[i:]
        else:
            b += rng.randbytes(rng.randint(1, 4))
    return bytes(b)


def _expect_format_error_or_valid(data: bytes) -> None:
    """loads/read_header either succeed or raise a FormatError subclass (anything else fails the test);
    read_header fails exactly when loads does, unless the only fault is a payload checksum."""
    try:
        loads(data)
        error = None
    except FormatError as e:
        error = e
    try:
        read_header(data)
        header_ok = True
    except FormatError:
        header_ok = False
    if error is None:
        assert header_ok
    elif header_ok:
        assert isinstance(error, ChecksumError) and " chunk " in str(error)


def test_seeded_random_mutations():
    rng = random.Random(20240611)
    seeds = [multi_file(), bytes.fromhex(EXAMPLE_HEX), dumps(H, [])]
    for _ in range(4000):
        _expect_format_error_or_valid(_mutate(rng, rng.choice(seeds)))


def test_seeded_random_garbage():
    rng = random.Random(7)
    for _ in range(2000):
        size = rng.randrange(64)
        prefix = rng.choice([b"", MAGIC, MAGIC + b"\x01\x00\x00\x00"])
        _expect_format_error_or_valid(prefix + rng.randbytes(size))


def _random_structured(rng: random.Random) -> bytes:
    """Files with CRCs that match whatever random fields they hold, so validation gets past the CRCs."""
    good_header = json.dumps({"codec": "c", "codec_version": 1, "x": [1, {"y": "z"}]}).encode()
    pick = rng.randrange(6)
    if pick == 0:
        header = good_header
    elif pick == 1:
        header = bytearray(good_header)
        header[rng.randrange(len(header))] = rng.randrange(256)
        header = bytes(header)
    elif pick == 2:
        header = rng.randbytes(rng.randint(2, 40))
    elif pick == 3:
        header = rng.choice([b"[]", b"{}", b'"s"', b"null", b'{"codec":"c","codec_version":-1}',
                             b'{"codec":"","codec_version":1}', b'{"codec":"c","codec_version":true}',
                             b'{"codec":"c","codec_version":1,"a":NaN}',
                             b'{"codec":"c","codec_version":1e999}',
                             b'{"codec":"c","codec":"c","codec_version":1}', b"[" * 40 + b"]" * 40])
    elif pick == 4:
        header = good_header[: rng.randrange(len(good_header))] + b'"\\"\\' * rng.randint(0, 5)
    else:
        header = good_header.replace(b"1", b"\xff" if rng.random() < 0.5 else b"\xc3\xa9")
    sections = []
    names = [b"a", b"b", b"", b"x" * 64, b"x" * 65, b"\xff", b"a b", b"a"]
    for _ in range(rng.randint(0, 3)):
        chunks = [(rng.randbytes(rng.randint(0, 6)), rng.randrange(2**32)) for _ in range(rng.randint(0, 3))]
        kw = {}
        if rng.random() < 0.3:
            kw["chunk_count"] = rng.choice([0, len(chunks) + 1, MAX_CHUNKS, MAX_CHUNKS + 1, 2**32 - 1])
        if rng.random() < 0.3 and chunks:
            kw["lengths"] = [rng.choice([len(p), len(p) + 1, max(len(p) - 1, 0), 2**32 - 1])
                             for p, _ in chunks]
        if rng.random() < 0.2 and chunks:
            kw["crcs"] = [rng.randrange(2**32) for _ in chunks]
        sections.append(raw_section(rng.choice(names), chunks, **kw))
    kw = {}
    if rng.random() < 0.2:
        kw["section_count"] = rng.choice([0, len(sections) + 1, MAX_SECTIONS, MAX_SECTIONS + 1])
    if rng.random() < 0.1:
        kw["hlen"] = rng.choice([0, 1, len(header) + 1, MAX_HEADER + 1, 2**32 - 1])
    data = raw_file(header, sections, **kw)
    if rng.random() < 0.1:
        data += rng.randbytes(rng.randint(1, 3))
    return data


def test_structured_fuzz_past_the_crcs():
    rng = random.Random(99)
    outcomes = set()
    for _ in range(3000):
        data = _random_structured(rng)
        try:
            loads(data)
            outcomes.add("ok")
        except FormatError as e:
            outcomes.add(type(e).__name__)
        try:
            read_header(data)
        except FormatError:
            pass
    assert {"ok", "FormatError", "LimitError", "TruncatedError", "ChecksumError"} <= outcomes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_hypothesis_garbage(blob):
    for data in (blob, MAGIC + blob, MAGIC + b"\x01\x00\x00\x00" + blob):
        _expect_format_error_or_valid(data)


# --------------------------------------------------------------------------------- preamble and limits


def test_magic():
    for n in range(len(MAGIC)):
        with pytest.raises(TruncatedError):
            loads(MAGIC[:n])
    for bad in (b"\x89PNG", b"PK\x03\x04" + bytes(40), b"x", bytes(100)):
        with pytest.raises(NotNctkError, match="not an .nctk file"):
            loads(bad)


@pytest.mark.parametrize("version", [0, 2, 0xFFFF])
def test_unsupported_version(version):
    with pytest.raises(UnsupportedVersionError, match=rf"version {version}\b.*version 1"):
        loads(raw_file(H, version=version))


def test_nonzero_flags():
    with pytest.raises(FormatError, match="flags"):
        loads(raw_file(H, flags=1))


@pytest.mark.parametrize("hlen", [0, 1, MAX_HEADER + 1, 2**32 - 1])
def test_header_length_limits(hlen):
    t = time.perf_counter()
    with pytest.raises(LimitError, match="header length"):
        loads(raw_file(H, hlen=hlen))
    assert time.perf_counter() - t < 0.5


def test_header_length_beyond_data_is_truncation():
    with pytest.raises(TruncatedError, match="header"):
        loads(raw_file(H, hlen=MAX_HEADER))


def test_header_checksum():
    with pytest.raises(ChecksumError, match="header checksum"):
        loads(raw_file(H, header_crc=0))


def test_section_count_limit():
    with pytest.raises(LimitError, match="section count"):
        loads(raw_file(H, section_count=MAX_SECTIONS + 1))
    with pytest.raises(TruncatedError, match="section 1"):
        loads(raw_file(H, [raw_section(b"a", [])], section_count=MAX_SECTIONS))


def test_huge_chunk_counts_fail_fast():
    t = time.perf_counter()
    with pytest.raises(LimitError, match="chunk count"):
        loads(raw_file(H, [raw_section(b"a", [], chunk_count=MAX_CHUNKS + 1)]))
    with pytest.raises(LimitError, match="chunk count"):
        loads(raw_file(H, [raw_section(b"a", [], chunk_count=2**32 - 1)]))
    with pytest.raises(TruncatedError, match="chunk table"):
        loads(raw_file(H, [raw_section(b"a", [(b"", 0)], chunk_count=MAX_CHUNKS)]))
    assert time.perf_counter() - t < 0.5


def test_payloads_claiming_a_terabyte_fail_fast():
    # 233 chunks of 2**32 - 1 bytes each: just over 10**12 bytes declared, a few hundred present.
    chunks = [(b"", 0)] * 233
    sec = raw_section(b"big", chunks, lengths=[2**32 - 1] * 233)
    assert 233 * (2**32 - 1) > 10**12
    t = time.perf_counter()
    with pytest.raises(TruncatedError, match=r"section 'big' chunk 0 needs 4294967295 bytes, 0 left"):
        loads(raw_file(H, [sec]))
    with pytest.raises(TruncatedError):
        read_header(raw_file(H, [sec]))
    assert time.perf_counter() - t < 0.5


def test_truncated_message_names_section_and_chunk():
    sec = raw_section(b"x", [(b"a" * 10, 1), (b"b" * 20, 1)])
    with pytest.raises(TruncatedError, match=r"section 'x' chunk 1 needs 20 bytes, 17 left"):
        loads(raw_file(H, [sec])[:-3])


def test_chunk_checksum_names_section_and_chunk():
    sec = raw_section(b"x", [(b"aa", 1), (b"bb", 1)], crcs=[zlib.crc32(b"aa"), 0])
    with pytest.raises(ChecksumError, match=r"section 'x' chunk 1 checksum"):
        loads(raw_file(H, [sec]))


def test_section_table_checksum():
    with pytest.raises(ChecksumError, match="section 0 table checksum"):
        loads(raw_file(H, [raw_section(b"x", [(b"aa", 1)], table_crc=1)]))


def test_trailing_bytes():
    with pytest.raises(FormatError, match="1 trailing bytes"):
        loads(multi_file() + b"\0")


# ------------------------------------------------------------------------------------------ header JSON


@pytest.mark.parametrize("raw, match", [
    (b'{"codec":"c","codec_version":1,"codec":"d"}', "duplicate key 'codec'"),
    (b'{"codec":"c","codec_version":1,"o":{"k":1,"k":2}}', "duplicate key 'k'"),
    (b'{"codec":"c","codec_version":1,"x":NaN}', "NaN"),
    (b'{"codec":"c","codec_version":1,"x":[Infinity]}', "Infinity"),
    (b'{"codec":"c","codec_version":1,"x":-Infinity}', "-Infinity"),
    (b'{"codec":"c","codec_version":1,"x":1e999}', "not finite"),
    (b'{"codec":"c","codec_version":1,"x":"\xff"}', "UTF-8"),
    (b'{"codec":"c","codec_version":1,"x":"\xed\xa0\x80"}', "UTF-8"),  # UTF-8-encoded surrogate
    (b'\xef\xbb\xbf{"codec":"c","codec_version":1}', "JSON"),  # BOM
    ('{"codec":"c","codec_version":1}'.encode("utf-16-le"), "JSON"),
    (b'{"codec":"c","codec_version":1', "JSON"),
    (b'{"codec":"c","codec_version":1}{}', "JSON"),
    (b'{"codec":"c","codec_version":' + b"9" * 5000 + b"}", "JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"codec"', "JSON object"),
    (b'{"codec_version":1}', '"codec"'),
    (b'{"codec":"","codec_version":1}', '"codec"'),
    (b'{"codec":7,"codec_version":1}', '"codec"'),
    (b'{"codec":"c"}', '"codec_version"'),
    (b'{"codec":"c","codec_version":-1}', '"codec_version"'),
    (b'{"codec":"c","codec_version":1.0}', '"codec_version"'),
    (b'{"codec":"c","codec_version":true}', '"codec_version"'),
])
def test_bad_header_json(raw, match):
    with pytest.raises(FormatError, match=match):
        loads(raw_file(raw))


def _nested(depth: int) -> bytes:
    inner = b"0"
    for i in range(depth - 1):
        inner = b"[" + inner + b"]" if i % 2 else b'{"k":' + inner + b"}"
    return b'{"codec":"c","codec_version":1,"n":' + inner + b"}"


def test_header_depth_limit():
    assert loads(raw_file(_nested(32))).header["codec"] == "c"
    with pytest.raises(FormatError, match="deeper than 32"):
        loads(raw_file(_nested(33)))
    # Brackets inside strings do not count.
    loads(raw_file(b'{"codec":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[","codec_version":1,"s":"\\"{{{{{{{{"}'))


@pytest.mark.parametrize("raw", [
    b"[" * MAX_HEADER,
    b'{"a":' * (MAX_HEADER // 5),
    b"[]" * (MAX_HEADER // 2),
    b'"' + b'\\"' * (MAX_HEADER // 2 - 1),  # one unterminated string full of escaped quotes
    b'"\\' * (MAX_HEADER // 2),
    b'["' * (MAX_HEADER // 2),
])
def test_hostile_headers_fail_fast(raw):
    assert len(raw) <= MAX_HEADER
    data = raw_file(raw)
    t = time.perf_counter()
    with pytest.raises(FormatError):
        loads(data)
    assert time.perf_counter() - t < 2.0


# --------------------------------------------------------------------------------------- section names


@pytest.mark.parametrize("name, error", [
    (b"", LimitError), (b"x" * 65, LimitError), (b"a b", FormatError), (b"a/b", FormatError),
    (b"\xff", FormatError), (b"caf\xc3\xa9", FormatError), (b"a\n", FormatError), (b"a\0", FormatError),
])
def test_bad_section_names_rejected_by_reader(name, error):
    with pytest.raises(error, match="name"):
        loads(raw_file(H, [raw_section(name, [])]))


def test_longest_name_and_duplicate_names():
    assert list(loads(raw_file(H, [raw_section(b"x" * 64, [])])).sections) == ["x" * 64]
    with pytest.raises(FormatError, match="duplicate section name 'a'"):
        loads(raw_file(H, [raw_section(b"a", []), raw_section(b"b", []), raw_section(b"a", [])]))


# ---------------------------------------------------------------------------------------------- writer


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a/b", "café", "a\n", "ａ", 5, None])
def test_writer_rejects_bad_names(name):
    with pytest.raises(FormatError, match="bad section name"):
        dumps(H, [Section(name, [], [])])


@pytest.mark.parametrize("header, error, match", [
    ([], FormatError, "JSON object"),
    ({"codec_version": 1}, FormatError, '"codec"'),
    ({"codec": "", "codec_version": 1}, FormatError, '"codec"'),
    ({"codec": "c"}, FormatError, '"codec_version"'),
    ({"codec": "c", "codec_version": -1}, FormatError, '"codec_version"'),
    ({"codec": "c", "codec_version": True}, FormatError, '"codec_version"'),
    ({"codec": "c", "codec_version": 1, "x": float("nan")}, FormatError, "JSON-encodable"),
    ({"codec": "c", "codec_version": 1, "x": float("inf")}, FormatError, "JSON-encodable"),
    ({"codec": "c", "codec_version": 1, "x": object()}, FormatError, "JSON-encodable"),
    ({"codec": "c", "codec_version": 1, "x": b"bytes"}, FormatError, "JSON-encodable"),
    ({"codec": "c", "codec_version": 1, 1: "a", "1": "b"}, FormatError, "JSON-encodable|duplicate"),
    ({"codec": "c", "codec_version": 1, "x": "a" * MAX_HEADER}, LimitError, "header is"),
])
def test_writer_rejects_bad_headers(header, error, match):
    with pytest.raises(error, match=match):
        dumps(header, [])


def test_writer_rejects_deep_and_circular_headers():
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(FormatError, match="deeper than 32"):
        dumps({"codec": "c", "codec_version": 1, "d": deep}, [])
    for _ in range(10000):
        deep = [deep]
    with pytest.raises(FormatError):
        dumps({"codec": "c", "codec_version": 1, "d": deep}, [])
    loop: dict = {"codec": "c", "codec_version": 1}
    loop["self"] = loop
    with pytest.raises(FormatError):
        dumps(loop, [])


def test_writer_rejects_bad_sections():
    with pytest.raises(FormatError, match="duplicate section name 'a'"):
        dumps(H, [Section("a", [], []), Section("a", [], [])])
    with pytest.raises(FormatError, match="2 chunks but 1 counts"):
        dumps(H, [Section("a", [b"", b""], [0])])
    with pytest.raises(LimitError, match="item count -1"):
        dumps(H, [Section("a", [b""], [-1])])
    with pytest.raises(LimitError, match="item count 4294967296"):
        dumps(H, [Section("a", [b""], [2**32])])
    with pytest.raises(FormatError, match="not bool"):
        dumps(H, [Section("a", [b""], [True])])
    with pytest.raises(FormatError, match="not float"):
        dumps(H, [Section("a", [b""], [1.0])])
    with pytest.raises(FormatError, match="not bytes-like"):
        dumps(H, [Section("a", ["text"], [1])])
    with pytest.raises(FormatError, match="contiguous"):
        dumps(H, [Section("a", [np.arange(10)[::2]], [1])])
    with pytest.raises(FormatError, match="Section objects"):
        dumps(H, {"a": Section("a", [], [])})


def test_writer_limits(monkeypatch):
    monkeypatch.setattr(ct, "MAX_SECTIONS", 2)
    with pytest.raises(LimitError, match="3 sections"):
        dumps(H, [Section(n, [], []) for n in "abc"])
    monkeypatch.setattr(ct, "MAX_CHUNKS", 2)
    with pytest.raises(LimitError, match="3 chunks"):
        dumps(H, [Section("a", [b""] * 3, [0] * 3)])
    monkeypatch.setattr(ct, "MAX_CHUNK_BYTES", 4)
    with pytest.raises(LimitError, match="chunk 1 is 5 bytes"):
        dumps(H, [Section("a", [b"1234", b"12345"], [0, 0])])


def test_write_leaves_file_untouched_on_error():
    buf = io.BytesIO()
    with pytest.raises(FormatError):
        write(buf, H, [Section("ok", [b"payload"], [1]), Section("bad name", [], [])])
    assert buf.getvalue() == b""


def test_all_errors_are_nctk_errors():
    for cls in (NotNctkError, TruncatedError, ChecksumError, UnsupportedVersionError, LimitError):
        assert issubclass(cls, FormatError) and issubclass(cls, NctkError)


def test_chunk_views_behave_like_a_list_of_views():
    blob = dumps({"codec": "t", "codec_version": 1}, [Section("s", [b"ab", b"", b"cde"], [1, 0, 2])])
    chunks = loads(blob).section("s").chunks
    assert len(chunks) == 3 and [bytes(c) for c in chunks] == [b"ab", b"", b"cde"]
    assert bytes(chunks[-1]) == b"cde" and [bytes(c) for c in chunks[1:]] == [b"", b"cde"]
    assert [bytes(c) for c in chunks[::-2]] == [b"cde", b"ab"]
    assert isinstance(chunks[0], memoryview)
    with pytest.raises(IndexError):
        chunks[3]
    with pytest.raises(IndexError):
        chunks[-4]


def test_many_empty_chunks_cost_little_memory():
    """Found in review: a file of empty chunks (12 bytes each) made a Python object per chunk (~17x the
    file's size held). Chunk views are now made on access: a few bytes per chunk."""
    import tracemalloc

    n = 1 << 18
    blob = dumps({"codec": "t", "codec_version": 1}, [Section("s", [b""] * n, [0] * n)])
    tracemalloc.start()
    try:
        box = loads(blob)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(box.section("s").chunks) == n
    assert held < 2 * len(blob) and peak < 4 * len(blob)


def test_size_is_the_length_of_the_file_without_joining_it():
    from nctk.entropy import container
    from nctk.entropy.container import Section

    header = {"codec": "x", "codec_version": 1, "n": 3}
    sections = [Section("a", [b"abc", bytearray(b"de")], [3, 2]), Section("b", [], [])]
    assert container.size(header, sections) == len(container.dumps(header, sections))
