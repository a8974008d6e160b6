"""Classical audio codecs (Opus, Vorbis, MP3, FLAC) behind one small protocol, for RD sweeps.

These are harness codecs: bytes in memory for measuring rate and distortion, not ``.nctk`` file codecs. All go
through soundfile's libsndfile (its PyPI wheels bundle libopus, libvorbis, LAME, mpg123 and libFLAC), with every
setting libsndfile lets a caller choose pinned here, so a sweep is reproducible and its "codec_version" says what
ran. A codec whose library is missing stays in the registry with ``available()`` False; nothing is installed on
demand. Nothing heavy is imported at module load: numpy and soundfile are loaded by the first call that needs them.

Audio is an :class:`Audio`: float32 samples of shape (frames, channels) and a sample rate. Codecs refuse sample
rates their format cannot carry instead of resampling, because a resampled reference would no longer be the file
being measured. Ogg streams get a random serial number from libsndfile, so Opus and Vorbis bytes differ from run
to run in those four header bytes; their size and decoded samples do not.
"""

from __future__ import annotations

import functools
import io
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nctk.entropy.errors import CodecError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True, eq=False)
class Audio:
    """A clip: float32 ``samples`` of shape (frames, channels), nominally in [-1, 1], at ``sample_rate`` Hz.

    Validated on construction (at least one frame and one channel, finite samples) so codecs and metrics never
    see a malformed clip; use :meth:`from_array` to build one from a mono or float64 array. Compared by identity
    (``eq=False``): element-wise array equality has no single truth value.
    """

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        import numpy as np

        x, sr = self.samples, self.sample_rate
        if isinstance(sr, bool) or not isinstance(sr, int) or sr <= 0:
            raise CodecError(f"sample_rate must be a positive integer (Hz), got {sr!r}")
        if not isinstance(x, np.ndarray):
            raise CodecError(f"samples must be a numpy array of shape (frames, channels), got {type(x).__name__}")
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise CodecError(f"samples must be float32 of shape (frames, channels) with at least one of each, got "
                             f"shape {x.shape} and dtype {x.dtype} (Audio.from_array converts mono and float64)")
        if not np.isfinite(x).all():
            raise CodecError("samples contain NaN or infinity")

    @classmethod
    def from_array(cls, samples: Any, sample_rate: int) -> Audio:
        """An :class:`Audio` from a 1-D (mono) or (frames, channels) float array, converted to float32.

        Integer PCM is refused rather than scaled: whether 32767 means full scale depends on where it came from.
        """
        import numpy as np

        if not isinstance(samples, np.ndarray):
            raise CodecError(f"samples must be a 1-D or (frames, channels) float numpy array, "
                             f"got {type(samples).__name__}")
        if samples.dtype.kind != "f" or samples.ndim not in (1, 2):
            raise CodecError(f"samples must be a 1-D or (frames, channels) float numpy array, "
                             f"got dtype {samples.dtype} and shape {samples.shape}")
        x = samples.reshape(-1, 1) if samples.ndim == 1 else samples
        return cls(np.ascontiguousarray(x, dtype=np.float32), sample_rate)

    @property
    def frames(self) -> int:
        """Number of sample frames (samples per channel)."""
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def load_audio(path: str | os.PathLike) -> Audio:
    """Read an audio file (anything libsndfile reads: WAV, FLAC, Ogg, MP3) as an :class:`Audio` in float32.

    16-bit files come back as integers / 32768, so FLAC re-encodes them bit-exactly. CodecError names the file.
    """
    import soundfile as sf

    try:
        x, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
        raise CodecError(f"cannot read audio {os.fspath(path)!r}: {e}") from e
    if x.shape[0] == 0:
        raise CodecError(f"cannot use audio {os.fspath(path)!r}: it has no samples")
    return Audio(x, int(sr))


@runtime_checkable
class AudioCodec(Protocol):
    """What a sweep needs from an audio codec: a stable id, a default quality sweep and a byte round trip.

    ``qualities`` is the default sweep, ascending, so rate grows along it (a lossless codec has one point);
    ``quality_range`` bounds what ``encode`` accepts (inclusive). ``decode`` takes the clip that was encoded as
    ``like`` (its channels and sample rate are checked against the stream's) and returns the decoder's output,
    whose length may differ from the original's (encoder delay, padding): measurement aligns them.
    """

    id: str
    description: str
    modality: str
    lossless: bool
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str

    def available(self) -> bool: ...

    def version(self) -> str: ...

    def encode(self, audio: Audio, quality: int) -> bytes: ...

    def decode(self, data: bytes, like: Audio) -> Audio: ...


@functools.lru_cache(maxsize=1)
def _packaged_library() -> bytes:
    """The bytes of the libsndfile that soundfile bundles (empty when it uses the system's), read once.

    The bundled library links its codecs statically and exports no version call for them, so their version
    strings ("libopus 1.4", "LAME3.100") are read from the binary for ``version()``.
    """
    import soundfile

    path = getattr(soundfile, "_full_path", None)  # set by soundfile only when it loaded its packaged library
    try:
        with open(path, "rb") as f:
            return f.read()
    except (OSError, TypeError):
        return b""


@dataclass(frozen=True)
class SoundfileCodec:
    """An :class:`AudioCodec` that writes and reads one libsndfile format/subtype with a pinned compression level.

    ``sample_rates`` are the rates the format carries (None: any); ``library`` is the name of the codec library
    and ``version_pattern`` finds its version in the bundled libsndfile (group 1). Subclasses map a quality to
    libsndfile's compression level (0.0 = best quality, 1.0 = smallest) in :meth:`write_options`.
    """

    id: str
    description: str
    format: str
    subtype: str
    qualities: tuple[int, ...]
    quality_range: tuple[int, int]
    requires: str
    library: str
    version_pattern: bytes
    sample_rates: tuple[int, ...] | None = None
    max_channels: int = 8
    lossless: bool = False
    modality: str = "audio"

    def available(self) -> bool:
        """Whether soundfile imports and its libsndfile writes this format and subtype (installs nothing)."""
        try:
            import soundfile as sf
        except (ImportError, OSError):  # OSError: the module is there but libsndfile is not
            return False
        return self.subtype in sf.available_subtypes(self.format)

    def version(self) -> str:
        """The libraries that produce the bytes, e.g. ``"soundfile 0.14.0, libsndfile 1.2.2, libopus 1.4"``."""
        if not self.available():
            raise CodecError(f"audio baseline {self.id!r} is not available here: it needs {self.requires}")
        import soundfile as sf

        out = f"soundfile {sf.__version__}, libsndfile {sf.__libsndfile_version__}"
        found = re.search(self.version_pattern, _packaged_library())
        return out + (f", {self.library} {found.group(1).decode()}" if found else "")

    def _check(self, audio: Audio, quality: int) -> None:
        if not isinstance(audio, Audio):
            raise CodecError(f"{self.id}: audio must be an nctk.rd.baselines.audio.Audio, got {type(audio).__name__}")
        lo, hi = self.quality_range
        if isinstance(quality, bool) or not isinstance(quality, int) or not lo <= quality <= hi:
            raise CodecError(f"{self.id}: quality must be an integer in [{lo}, {hi}], got {quality!r}")
        if self.sample_rates is not None and audio.sample_rate not in self.sample_rates:
            rates = ", ".join(str(r) for r in self.sample_rates)
            raise CodecError(f"{self.id}: sample rate {audio.sample_rate} Hz is not one the format carries "
                             f"({rates} Hz); resample the input first")
        if audio.channels > self.max_channels:
            raise CodecError(f"{self.id}: at most {self.max_channels} channels, got {audio.channels}")
        if not self.available():
            raise CodecError(f"audio baseline {self.id!r} is not available here: it needs {self.requires}")

    def write_options(self, audio: Audio, quality: int) -> dict[str, Any]:
        """The keyword arguments given to ``soundfile.write`` besides format and subtype."""
        raise NotImplementedError

    def _pcm(self, audio: Audio) -> np.ndarray:
        """The array handed to libsndfile (float32 samples; FLAC overrides this with exact 16-bit integers)."""
        return audio.samples

    def encode(self, audio: Audio, quality: int) -> bytes:
        """Compress ``audio`` at ``quality`` (within ``quality_range``) to the format's bytes (a whole file)."""
        import soundfile as sf

        self._check(audio, quality)
        options = self.write_options(audio, quality)
        buf = io.BytesIO()
        try:
            sf.write(buf, self._pcm(audio), audio.sample_rate, format=self.format, subtype=self.subtype, **options)
        except (RuntimeError, ValueError, TypeError) as e:  # LibsndfileError is a RuntimeError
            raise CodecError(f"{self.id}: encoding {audio.duration:.2f} s of {audio.channels}-channel "
                             f"{audio.sample_rate} Hz audio at quality {quality} failed: {e}") from e
        return buf.getvalue()

    def _read(self, f: Any) -> np.ndarray:
        return f.read(dtype="float32", always_2d=True)

    def decode(self, data: bytes, like: Audio) -> Audio:
        """Decompress bytes made by :meth:`encode` to an :class:`Audio`; other formats are refused.

        ``like`` is the encoded clip: the stream must have its channels and sample rate. The length is the
        decoder's (see :class:`AudioCodec`).
        """
        import soundfile as sf

        if not self.available():
            raise CodecError(f"audio baseline {self.id!r} is not available here: it needs {self.requires}")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise CodecError(f"{self.id}: data must be bytes, got {type(data).__name__}")
        if not isinstance(like, Audio):
            raise CodecError(f"{self.id}: like must be an nctk.rd.baselines.audio.Audio, got {type(like).__name__}")
        what = f"{self.format}/{self.subtype}"
        try:
            with sf.SoundFile(io.BytesIO(bytes(data))) as f:
                if (f.format, f.subtype) != (self.format, self.subtype):
                    raise CodecError(f"{self.id}: cannot decode {len(data)} bytes as {what}: they are "
                                     f"{f.format}/{f.subtype}")
                if (f.samplerate, f.channels) != (like.sample_rate, like.channels):
                    raise CodecError(f"{self.id}: the stream is {f.channels}-channel {f.samplerate} Hz, the "
                                     f"reference {like.channels}-channel {like.sample_rate} Hz")
                x, sr = self._read(f), f.samplerate
        except (RuntimeError, ValueError, TypeError) as e:  # LibsndfileError ("Format not recognised"), truncation
            raise CodecError(f"{self.id}: cannot decode {len(data)} bytes as {what}: {e}") from e
        if x.shape[0] == 0:
            raise CodecError(f"{self.id}: the {len(data)}-byte stream decodes to no samples")
        return Audio(x, int(sr))


# libsndfile 1.2.2, src/ogg_opus.c, SFC_SET_COMPRESSION_LEVEL: the target bitrate OPUS_SET_BITRATE gets is
#   (int) ((1.0 - level) * 250000.0 + 6000.0) * channels    bits per second,
# i.e. 6 to 256 kbps per channel, linear in the level. The measured rates match (Ogg framing adds ~1.3 kbps at
# 6 kbps: 24 kHz mono speech gives 7.4, 13.2, 25.5, 47.9 kbps for 6, 12, 24, 48).
_OPUS_MIN_BPS, _OPUS_SPAN_BPS = 6000, 250000


@dataclass(frozen=True)
class OpusCodec(SoundfileCodec):
    """Ogg Opus where quality is the nominal total bitrate in kbps (libopus's VBR target, as opusenc's --bitrate).

    Settings libsndfile fixes (not choosable through soundfile): OPUS_APPLICATION_AUDIO, complexity 10, libopus's
    default constrained VBR, 20 ms frames, Ogg pages of about 1 s. Decoding removes the pre-skip (the encoder's
    look-ahead) from the granule positions, so the output has the input's length and no delay (alignment finds
    a lag of 0 or +-1 sample, phase rather than delay). The per-channel target must be 6 to 256 kbps, so
    ``quality`` must be at least 6 x channels.
    """

    def write_options(self, audio: Audio, quality: int) -> dict[str, Any]:
        """The compression level whose libsndfile bitrate is ``quality`` kbps in total (rounded down to whole bps
        per channel)."""
        per_channel = quality * 1000 / audio.channels
        if per_channel < _OPUS_MIN_BPS:
            raise CodecError(f"{self.id}: quality {quality} kbps is under Opus's 6 kbps per channel for "
                             f"{audio.channels} channels (use at least {6 * audio.channels})")
        # +0.5 bps: libsndfile truncates to int, and 1 - level is not exact in binary, so aim half a bit high
        level = 1.0 - (per_channel - _OPUS_MIN_BPS + 0.5) / _OPUS_SPAN_BPS
        return {"compression_level": min(max(level, 0.0), 1.0)}


@dataclass(frozen=True)
class VorbisCodec(SoundfileCodec):
    """Ogg Vorbis where quality / 100 is libvorbis's VBR quality (oggenc's ``-q quality/10``).

    libsndfile calls ``vorbis_encode_init_vbr(quality / 100)`` (its compression level is ``1 - quality / 100``)
    and clips below 0, so Vorbis bottoms out at oggenc's q0: about 26 kbps on 24 kHz mono speech (q100: 88).
    """

    def write_options(self, audio: Audio, quality: int) -> dict[str, Any]:
        """The compression level ``1 - quality / 100``."""
        return {"compression_level": 1.0 - quality / 100}


# MPEG Layer III bitrates (kbps) per MPEG version, and the sample rates of each version. libsndfile 1.2.2
# (src/mpeg_l3_encode.c) asks LAME for CBR at int(top - level * (top - bottom)) kbps, [bottom, top] being
# [32, 320] for MPEG-1, [8, 160] for MPEG-2 and [8, 64] for MPEG-2.5; LAME then snaps it to a legal bitrate.
_MP3_VERSIONS = {
    (32000, 44100, 48000): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (16000, 22050, 24000): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (8000, 11025, 12000): (8, 16, 24, 32, 40, 48, 56, 64),
}


@dataclass(frozen=True)
class Mp3Codec(SoundfileCodec):
    """MPEG-1/2/2.5 Layer III (LAME through libsndfile), constant bitrate, where quality is the bitrate in kbps.

    Only the bitrates of the sample rate's MPEG version are accepted (e.g. 8 to 160 kbps at 16 to 24 kHz, 32 to
    320 kbps at 32 to 48 kHz), so ``quality`` is exactly the coded rate (plus LAME's header frame and padding);
    LAME's other settings are its defaults. The decoder (mpg123) removes LAME's encoder delay and padding only when LAME
    could write that gapless header, which needs a frame large enough for it: at 24 kHz mono from 64 kbps up, not
    below, where the output starts 1105 samples (576 + 529) late and is 1152 samples longer than the input.
    The default sweep (32 to 160 kbps) suits 16 to 48 kHz input; 8 to 12 kHz input takes at most 64 kbps.
    """

    def write_options(self, audio: Audio, quality: int) -> dict[str, Any]:
        """The compression level libsndfile turns into ``quality`` kbps, and constant bitrate."""
        legal = next(b for rates, b in _MP3_VERSIONS.items() if audio.sample_rate in rates)
        if quality not in legal:
            raise CodecError(f"{self.id}: at {audio.sample_rate} Hz the MP3 bitrates are "
                             f"{', '.join(map(str, legal))} kbps, got {quality}")
        bottom, top = (32, 320) if legal[0] == 32 else (8, legal[-1])
        # +0.5 kbps before libsndfile's int() for the same reason as Opus's half bit; clipped at the ends
        level = (top - quality - 0.5) / (top - bottom)
        return {"compression_level": min(max(level, 0.0), 1.0), "bitrate_mode": "CONSTANT"}


@dataclass(frozen=True)
class FlacCodec(SoundfileCodec):
    """FLAC, 16-bit, where quality is the FLAC compression level 0..8 (libsndfile: level / 8).

    Lossless for 16-bit PCM input (what 16-bit WAV or FLAC files read as: integers / 32768): samples are turned
    into int16 as round(x * 32768), clipped to [-32768, 32767], and decoded back as integers / 32768. Other
    float input is rounded to 16 bits. The rate falls as the level rises, so the default sweep is level 5 only.
    """

    def write_options(self, audio: Audio, quality: int) -> dict[str, Any]:
        """The compression level ``quality / 8`` (libsndfile rounds ``level * 8`` back to ``quality``)."""
        return {"compression_level": quality / 8}

    def _pcm(self, audio: Audio) -> np.ndarray:
        import numpy as np

        return np.clip(np.rint(audio.samples.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)

    def _read(self, f: Any) -> np.ndarray:
        import numpy as np

        return (f.read(dtype="int16", always_2d=True).astype(np.float32) / np.float32(32768.0)).astype(np.float32)


_SF = "soundfile with a libsndfile (>= 1.1 for MP3) that"
_RATES_16_48 = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

AUDIO_BASELINES: dict[str, AudioCodec] = {
    c.id: c
    for c in (
        OpusCodec("opus", "Ogg Opus (libopus via libsndfile), application audio, complexity 10, VBR, quality = "
                  "kbps", "OGG", "OPUS", (6, 8, 12, 16, 24, 32, 48, 64), (6, 256), f"{_SF} writes Ogg Opus",
                  "libopus", rb"libopus (\d+\.\d+(?:\.\d+)?)", sample_rates=(8000, 12000, 16000, 24000, 48000)),
        VorbisCodec("vorbis", "Ogg Vorbis (libvorbis via libsndfile), VBR, quality = 100 x vorbis quality", "OGG",
                    "VORBIS", (0, 10, 20, 30, 40, 60, 80, 100), (0, 100), f"{_SF} writes Ogg Vorbis",
                    "libvorbis", rb"Xiph.Org libVorbis (\d+\.\d+\.\d+)"),
        Mp3Codec("mp3", "MP3 (LAME via libsndfile), constant bitrate, quality = kbps", "MP3", "MPEG_LAYER_III",
                 (32, 40, 48, 64, 80, 96, 128, 160), (8, 320), f"{_SF} writes MPEG Layer III", "LAME",
                 rb"LAME ?(\d+\.\d+)", sample_rates=_RATES_16_48, max_channels=2),
        FlacCodec("flac", "FLAC (libFLAC via libsndfile), 16-bit, lossless, quality = compression level", "FLAC",
                  "PCM_16", (5,), (0, 8), f"{_SF} writes FLAC", "libFLAC",
                  rb"reference libFLAC (\d+\.\d+\.\d+)", lossless=True),
    )
}

