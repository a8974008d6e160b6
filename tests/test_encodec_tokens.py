"""``nctk tokens`` and :mod:`nctk.codec.audio.tokens`: audio to EnCodec RVQ codes and back (random weights)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from safetensors.torch import save_file

from nctk.cli.main import main
from nctk.codec.audio import encodec, tokens
from nctk.entropy.errors import CodecError

HOP = 320


@pytest.fixture(scope="module")
def state():
    return encodec.random_state_dict("24khz", seed=5)


@pytest.fixture(scope="module")
def model(state):
    return encodec.load(state)


@pytest.fixture(scope="module")
def ckpt(state, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "encodec24.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def tone(n: int, channels: int = 1, rate: int = 24000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(150, 2000, (channels, 1)) * t)
            + 0.02 * rng.normal(size=(channels, n))).astype(np.float32)


def wav_bytes(x: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.T, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def test_codes_round_trip_through_an_npy_file(model):
    x = tone(24000 // 4 + 77)
    arrays = tokens.encode(model, x, 24000, 6.0)
    assert arrays["codes"].shape == (8, -(-x.shape[1] // HOP)) and arrays["codes"].dtype == np.int32
    np.testing.assert_array_equal(arrays["codes"], model.encode(x, 6.0).codes)
    back = tokens.from_bytes(tokens.to_bytes(arrays, ".npy"))
    assert set(back) == {"codes"}
    y, rate = tokens.decode(model, back)
    assert rate == 24000 and y.shape == (1, arrays["codes"].shape[1] * HOP)
    np.testing.assert_array_equal(y, model.decode(arrays["codes"]))


@pytest.mark.parametrize("block", [1, 7, 50])
def test_block_encoding_gives_the_whole_file_codes(model, block):
    x = tone(24000 // 3 + 5, seed=1)
    whole = tokens.encode(model, x, 24000, 3.0)["codes"]
    np.testing.assert_array_equal(tokens.encode(model, x, 24000, 3.0, block_frames=block)["codes"], whole)


def test_multichannel_files_are_coded_channel_by_channel(model):
    x = tone(4000, channels=2, seed=2)
    arrays = tokens.encode(model, x, 24000, 1.5)
    assert arrays["codes"].shape == (2, 2, -(-4000 // HOP))
    np.testing.assert_array_equal(arrays["codes"][1], model.encode(x[1:], 1.5).codes)
    y, _ = tokens.decode(model, tokens.from_bytes(tokens.to_bytes(arrays, ".npz")))
    assert y.shape == (2, 4000)


def test_npz_keeps_the_original_rate_and_length(model):
    x = tone(16000 // 5 + 3, rate=16000, seed=3)
    arrays = tokens.encode(model, x, 16000, 6.0)
    y, rate = tokens.decode(model, tokens.from_bytes(tokens.to_bytes(arrays, ".npz")))
    assert rate == 16000 and y.shape == x.shape


def test_the_48khz_model_needs_its_segment_scales():
    m48 = encodec.load(encodec.random_state_dict("48khz", seed=6))
    x = tone(48000 // 4, channels=1, rate=48000, seed=4)  # mono: coded as two equal channels
    arrays = tokens.encode(m48, x, 48000, 6.0)
    assert "scales" in arrays and arrays["codes"].shape[0] == 4  # 150 frames/s of 10-bit codes: 1.5 kbps each
    with pytest.raises(CodecError, match="segment scales"):
        tokens.to_bytes(arrays, ".npy")
    y, rate = tokens.decode(m48, tokens.from_bytes(tokens.to_bytes(arrays, ".npz")))
    assert rate == 48000 and y.shape == (2, x.shape[1])
    np.testing.assert_array_equal(tokens.encode(m48, x, 48000, 6.0, block_frames=33)["codes"], arrays["codes"])


@pytest.mark.parametrize("data, match", [
    (b"not numpy at all", "not a token file"),
    (b"", "not a token file"),
])
def test_bad_token_files_give_one_clear_error(model, data, match):
    with pytest.raises(CodecError, match=match):
        tokens.decode(model, tokens.from_bytes(data))


def test_pickled_and_misshapen_token_files_are_refused(model):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CodecError, match="without pickles"):
        tokens.from_bytes(buf.getvalue())
    for codes, match in ((np.zeros((3, 4, 5, 6), np.int32), "do not fit"), (np.full((2, 5), 5000), r"\[0, 1024\)"),
                         (np.zeros((2, 5), np.float32), "integers")):
        with pytest.raises(CodecError, match=match):
            tokens.decode(model, {"codes": codes})


def test_the_cli_encodes_and_decodes(ckpt, model, tmp_path, capsys):
    x = tone(24000 // 4, seed=7)
    src = tmp_path / "speech.wav"
    src.write_bytes(wav_bytes(x, 24000))
    assert main(["tokens", str(src), "--model", str(ckpt), "--kbps", "6", "-o", str(tmp_path / "c.npy")]) == 0
    codes = np.load(tmp_path / "c.npy")
    np.testing.assert_array_equal(codes, model.encode(x, 6.0).codes)
    assert main(["tokens", str(src), "--model", str(ckpt), "--kbps", "6", "--block-frames", "3",
                 "-o", str(tmp_path / "b.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), codes)
    assert main(["tokens", str(tmp_path / "c.npy"), "--model", str(ckpt), "-o", str(tmp_path / "out.wav")]) == 0
    y, rate = sf.read(tmp_path / "out.wav", always_2d=True)
    assert rate == 24000 and y.shape == (codes.shape[1] * HOP, 1)
    assert "codes of shape (8, 19)" in capsys.readouterr().err


def test_cli_errors_are_one_line_and_leave_nothing(ckpt, tmp_path, capsys):
    src = tmp_path / "s.wav"
    src.write_bytes(wav_bytes(tone(2000), 24000))
    (tmp_path / "junk.wav").write_bytes(b"RIFF nonsense")
    cases = [
        ["tokens", str(src), "--model", str(ckpt), "-o", str(tmp_path / "x.txt")],
        ["tokens", str(tmp_path / "junk.wav"), "--model", str(ckpt), "-o", str(tmp_path / "j.npy")],
        ["tokens", str(src), "--model", str(tmp_path / "missing.th"), "-o", str(tmp_path / "m.npy")],
        ["tokens", str(src), "--model", str(ckpt), "--kbps", "5", "-o", str(tmp_path / "k.npy")],
    ]
    for argv in cases:
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert ".npy or .npz" in err and "not an audio file" in err and "cannot read checkpoint" in err
    assert "1.5, 3, 6, 12, 24 kbps" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "s.wav"]
