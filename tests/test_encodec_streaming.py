"""Streaming without seams: chunked encoding gives exactly the whole-signal codes, chunked decoding the
whole-signal samples, with bounded state and the documented latency (random weights; no package needed)."""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
import pytest

from nctk.codec.audio import encodec
from nctk.entropy.errors import CodecError

HOP = 320


@pytest.fixture(scope="module")
def model():
    return encodec.load(encodec.random_state_dict("24khz", seed=3))


@pytest.fixture(scope="module")
def model48():
    return encodec.load(encodec.random_state_dict("48khz", seed=4))


def signal(n: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 24000
    x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 3000, (channels, 1)) * t) + 0.05 * rng.normal(size=(channels, n))
    return x.astype(np.float32)


def encode_in_chunks(model, x: np.ndarray, sizes, bandwidth: float = 6.0) -> tuple[np.ndarray, list[int]]:
    s = model.stream_encoder(bandwidth)
    parts, counts, i, k = [], [], 0, 0
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        parts.append(s.feed(x[:, i : i + n]))
        counts.append(parts[-1].shape[1])
        i, k = i + n, k + 1
    parts.append(s.flush())
    return np.concatenate(parts, axis=1), counts


@pytest.mark.parametrize("sizes", [[HOP], [333], [7], [4801], [HOP * 7 + 1], [1, 5000, 17, HOP, 2]],
                         ids=["1frame", "333", "7", "4801", "7frames+1", "mixed"])
def test_chunked_encoding_gives_the_whole_codes(model, sizes):
    x = signal(24000 + 123, seed=1)
    whole = model.encode(x, 6.0)
    assert whole.codes.shape == (8, -(-x.shape[1] // HOP))
    codes, _ = encode_in_chunks(model, x, sizes)
    np.testing.assert_array_equal(codes, whole.codes)


def test_one_sample_at_a_time(model):
    x = signal(1500, seed=2)
    codes, _ = encode_in_chunks(model, x, [1], 24.0)
    np.testing.assert_array_equal(codes, model.encode(x, 24.0).codes)


@pytest.mark.parametrize("n", [1, 100, 319, 320, 321, 2239, 2240, 2241, 6 * HOP + 5])
def test_short_signals_and_the_start(model, n):
    """Lengths around the hop and around the 7 frames the encoder needs before its first code."""
    x = signal(n, seed=n)
    whole = model.encode(x, 3.0)
    assert whole.codes.shape == (4, -(-n // HOP))
    np.testing.assert_array_equal(encode_in_chunks(model, x, [7, 300], 3.0)[0], whole.codes)
    emb = model.encoder.whole(model.audio(x))  # the direct (non-streaming) padding path agrees too
    np.testing.assert_array_equal(model.quantize(emb, 4), whole.codes)


def test_the_blocks_of_a_whole_encode_do_not_matter(model, monkeypatch):
    x = signal(3 * 24000 + 50, seed=5)
    codes = model.encode(x, 12.0).codes
    monkeypatch.setattr(encodec, "ENCODE_BLOCK", 4999)
    np.testing.assert_array_equal(model.encode(x, 12.0).codes, codes)


def test_thread_count_does_not_change_codes(model):
    x = signal(3 * 24000, seed=6)  # large enough for the parallel kernels
    codes = model.encode(x, 24.0).codes
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        np.testing.assert_array_equal(model.encode(x, 24.0).codes, codes)
    finally:
        numba.set_num_threads(threads)


def test_encoder_latency(model):
    """Codes come out once 7 frames are in (the last convolution's left reflection), then one per frame."""
    x = signal(20 * HOP, seed=7)
    codes, counts = encode_in_chunks(model, x, [HOP])
    assert counts == [0] * 6 + [7] + [1] * 13
    assert codes.shape[1] == 20  # nothing left for flush: the length is a whole number of frames
    _, counts = encode_in_chunks(model, signal(20 * HOP + 1, seed=7), [HOP])
    assert counts == [0] * 6 + [7] + [1] * 13 + [0]  # the last sample's frame comes at flush


@pytest.mark.parametrize("sizes", [[1], [2], [7], [50], [3, 1, 40]])
def test_chunked_decoding_gives_the_whole_samples(model, sizes):
    codes = model.encode(signal(24000 + 123, seed=8), 6.0).codes
    whole = model.decode(codes)
    assert whole.shape == (1, codes.shape[1] * HOP)
    d = model.stream_decoder()
    parts, i, k = [], 0, 0
    while i < codes.shape[1]:
        n = sizes[k % len(sizes)]
        parts.append(d.feed(codes[:, i : i + n]))
        i, k = i + n, k + 1
    parts.append(d.flush())
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_decoder_latency(model):
    codes = model.encode(signal(20 * HOP, seed=9), 1.5).codes
    d = model.stream_decoder()
    counts = [d.feed(codes[:, i : i + 1]).shape[1] for i in range(20)]
    assert counts == [0] * 6 + [7 * HOP] + [HOP] * 13
    assert d.flush().shape == (1, 0)


def test_decode_trims_to_the_length(model):
    x = signal(5000, seed=10)
    enc = model.encode(x, 6.0)
    assert model.decode(enc).shape == (1, 5000)
    np.testing.assert_array_equal(model.decode(enc), model.decode(enc.codes)[:, :5000])


def _peak_while_streaming(model, seconds: int) -> int:
    x = signal(24000 * seconds, seed=11)
    s = model.stream_encoder(6.0)
    tracemalloc.start()
    try:
        for i in range(0, x.shape[1], 24000):
            s.feed(x[:, i : i + 24000])
        s.flush()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_does_not_grow_with_length(model):
    _peak_while_streaming(model, 1)  # one-time allocations (cached RVQ tables) out of the way
    short = _peak_while_streaming(model, 4)
    long = _peak_while_streaming(model, 16)
    assert long < 1.1 * short + (1 << 20)
    assert long < 48 << 20  # 1 s chunks: a few copies of the first layers' activations


def test_a_flushed_stream_refuses_more(model):
    s = model.stream_encoder(1.5)
    s.feed(signal(1000))
    s.flush()
    with pytest.raises(CodecError, match="flushed"):
        s.feed(signal(10))
    with pytest.raises(CodecError):
        model.stream_encoder(5.0)  # not one of the model's bandwidths


def test_bad_audio_and_codes(model):
    with pytest.raises(CodecError, match="shape"):
        model.encode(np.zeros((2, 100), np.float32))
    with pytest.raises(CodecError, match="floating"):
        model.encode(np.zeros(100, np.int16))
    with pytest.raises(CodecError, match="NaN"):
        model.encode(np.full(100, np.nan, np.float32))
    with pytest.raises(CodecError, match=r"\[0, 1024\)"):
        model.decode(np.full((2, 3), 1024))
    with pytest.raises(CodecError, match="n_q"):
        model.decode(np.zeros((33, 3), np.int64))


# ------------------------------------------------------------------------------------------ 48 kHz segments


@pytest.mark.parametrize("sizes", [[1000], [48000], [12345, 47520]])
def test_segment_streaming_gives_the_whole_codes_and_samples(model48, sizes):
    x = signal(48000 * 2 + 777, channels=2, seed=12)
    whole = model48.encode(x, 6.0)
    assert whole.codes.shape == (4, 150 + 150 + 6) and whole.scales.shape == (3,)
    s = model48.stream_encoder(6.0)
    segs, i, k, first = [], 0, 0, None
    while i < x.shape[1]:
        n = sizes[k % len(sizes)]
        segs += s.feed(x[:, i : i + n])
        if segs and first is None:
            first = i + n  # a segment comes out once its 48000 samples are in
        i, k = i + n, k + 1
    segs += s.flush()
    assert first >= 48000
    np.testing.assert_array_equal(np.concatenate([c for c, _ in segs], axis=1), whole.codes)
    np.testing.assert_array_equal(np.float32([sc for _, sc in segs]), whole.scales)
    d = model48.stream_decoder()
    out = np.concatenate([d.feed(segs[:1]), d.feed(segs[1:]), d.flush()], axis=1)
    np.testing.assert_array_equal(out[:, : x.shape[1]], model48.decode(whole))


def test_segment_model_needs_its_scales(model48):
    enc = model48.encode(signal(5000, channels=2), 3.0)
    with pytest.raises(CodecError, match="scale"):
        model48.decode(enc.codes)
    with pytest.raises(CodecError, match="not causal"):
        model48.encoder.stream()
