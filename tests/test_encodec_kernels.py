"""SEANet kernels (codec/audio/seanet_numba.py) equal their reference (seanet_ref.py) bit for bit, and an
element's value never depends on how wide the call computing it is (what makes streaming exact)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nctk.codec.audio import seanet_numba as fast
from nctk.codec.audio import seanet_ref as ref

ROOT = Path(__file__).resolve().parents[1]


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.int32)


def test_simd_hash_names_the_intrinsics_compiled_into_the_kernels():
    digest = hashlib.sha256((ROOT / "codec" / "kernels" / "simd.py").read_bytes()).hexdigest()
    assert fast.SIMD_SHA256 == digest, "simd.py changed: update SIMD_SHA256 in codec/audio/seanet_numba.py"


@pytest.mark.parametrize(("cin", "cout", "k", "stride", "dil"), [
    (1, 32, 7, 1, 1), (32, 16, 3, 1, 2), (64, 128, 8, 4, 1), (5, 3, 2, 1, 1), (7, 1, 7, 1, 1), (3, 40, 10, 5, 1),
])
def test_conv_equals_reference(cin, cout, k, stride, dil):
    rng = np.random.default_rng(cin * 1000 + cout)
    x = rng.normal(size=(61, cin)).astype(np.float32)
    w = rng.normal(size=(cout, cin, k)).astype(np.float32)
    b = rng.normal(size=cout).astype(np.float32)
    r = ref.conv1d(x, w, b, stride, dil)
    f = fast.conv1d(x, fast.pack_conv(w, b), cout, stride, dil)
    assert f.shape == r.shape == ((61 - (k - 1) * dil - 1) // stride + 1, cout)
    np.testing.assert_array_equal(bits(f), bits(r))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(0, 30), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_conv_value_does_not_depend_on_the_call_width(n_out, start, stride, dil, seed):
    """Outputs start .. start+n_out-1 computed alone are the bits of the same outputs of a wide call."""
    rng = np.random.default_rng(seed)
    cin, cout, k = 24, 40, 4
    w = rng.normal(size=(cout, cin, k)).astype(np.float32)
    packed = fast.pack_conv(w, rng.normal(size=cout).astype(np.float32))
    total = start + n_out + 37
    x = rng.normal(size=((total - 1) * stride + (k - 1) * dil + 1, cin)).astype(np.float32)
    wide = fast.conv1d(x, packed, cout, stride, dil)
    part = fast.conv1d(x[start * stride : (start + n_out - 1) * stride + (k - 1) * dil + 1], packed, cout,
                       stride, dil)
    np.testing.assert_array_equal(bits(part), bits(wide[start : start + n_out]))


def test_elu_equals_reference_and_is_accurate():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=50_000) * rng.choice([1e-30, 1e-8, 1e-3, 1, 10, 100, 1e30], 50_000)).astype(np.float32)
    x[:6] = [0.0, -0.0, -1e-45, np.float32(-88.7), -1e38, 1e-45]
    r = ref.elu(x)
    np.testing.assert_array_equal(bits(fast.elu(x)), bits(r))
    exact = np.where(x > 0, x.astype(np.float64), np.expm1(np.minimum(x, 0).astype(np.float64)))
    assert np.all(np.abs(r - exact) <= 1e-7 * np.maximum(1.0, np.abs(exact)) + 1e-45)
    half = fast.elu(x.reshape(100, 500), alpha=0.5)
    np.testing.assert_array_equal(bits(half), bits(ref.elu(x, 0.5)).reshape(100, 500))


def test_sigmoid_and_tanh_are_accurate():
    x = np.concatenate([np.linspace(-30, 30, 20001), [-1e30, 1e30, 0.0, 1e-20, -1e-20]]).astype(np.float32)
    x64 = x.astype(np.float64)
    s = ref.sigmoid(x)
    t = ref.tanh(x)
    with np.errstate(over="ignore"):
        true_s = 1 / (1 + np.exp(-x64))
    assert np.abs(s - true_s).max() <= 6e-8
    assert np.all(np.abs(t - np.tanh(x64)) <= 1.2e-7 * np.maximum(np.abs(np.tanh(x64)), 1e-30))


@pytest.mark.parametrize("hidden", [8, 64])
def test_lstm_equals_reference_and_torch(hidden):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(hidden)
    n_in = 24
    w_ih = (rng.normal(size=(4 * hidden, n_in)) * 0.3).astype(np.float32)
    w_hh = (rng.normal(size=(4 * hidden, hidden)) * 0.3).astype(np.float32)
    b_ih, b_hh = rng.normal(size=(2, 4 * hidden)).astype(np.float32)
    x = rng.normal(size=(30, n_in)).astype(np.float32)
    out_r, h_r, c_r = ref.lstm(x, w_ih, w_hh, b_ih, b_hh)
    h = np.zeros(hidden, np.float32)
    c = np.zeros(hidden, np.float32)
    wih = fast.pack_conv(w_ih[:, :, None], (b_ih + b_hh).astype(np.float32))
    whh = fast.pack_lstm(w_hh)
    first = fast.lstm_layer(x[:11], wih, whh, h, c)  # the state carries across calls
    second = fast.lstm_layer(x[11:], wih, whh, h, c)
    np.testing.assert_array_equal(bits(np.concatenate([first, second])), bits(out_r))
    np.testing.assert_array_equal(bits(h), bits(h_r))
    np.testing.assert_array_equal(bits(c), bits(c_r))
    lstm = torch.nn.LSTM(n_in, hidden, 1)
    with torch.no_grad():
        for name, v in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih), ("bias_hh_l0", b_hh)):
            getattr(lstm, name).copy_(torch.from_numpy(v))
        y, _ = lstm(torch.from_numpy(x)[:, None])
    assert np.abs(y[:, 0].numpy() - out_r).max() < 1e-5


@pytest.mark.parametrize("dim", [128, 8])
def test_cached_rvq_tables_give_the_reference_codes(dim):
    """The model's RVQ (tables made once, rvq_numba's exact selection) against rvq_ref, from single rows up."""
    from nctk.codec.audio.encodec import ExactRVQ
    from nctk.codec.kernels import rvq_ref

    rng = np.random.default_rng(dim)
    cb = (rng.normal(size=(6, 256, dim)) * (0.7 ** np.arange(6))[:, None, None]).astype(np.float32)
    cb[1, 7] = cb[1, 3]  # an exact tie: the lower index wins
    rvq = ExactRVQ(cb)
    x = rng.normal(size=(300, dim)).astype(np.float32)
    x[5] = cb[0, 9] + cb[1, 3]
    for rows, n_q in ((slice(0, 1), 6), (slice(0, 300), 6), (slice(5, 6), 2), (slice(17, 200), 4)):
        np.testing.assert_array_equal(rvq.encode(x[rows], n_q), rvq_ref.encode_reference(x[rows], cb, n_q))
    assert rvq.encode(x[5:6], 2)[0].tolist() == [9, 3]
