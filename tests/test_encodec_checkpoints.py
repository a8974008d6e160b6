"""Loading EnCodec checkpoints: every accepted form gives the same model; every bad one one clear CodecError,
and no code inside a pickle ever runs."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from nctk.codec.audio import encodec
from nctk.entropy.errors import CodecError

torch = pytest.importorskip("torch")

X = (0.2 * np.sin(np.arange(4000) * 0.03)).astype(np.float32)


@pytest.fixture(scope="module")
def state():
    return encodec.random_state_dict("24khz", seed=5)


@pytest.fixture(scope="module")
def codes(state):
    return encodec.load(state).encode(X, 24.0).codes


def one_line_error(fn, *args, match: str, **kwargs) -> str:
    with pytest.raises(CodecError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_state_dict_file_and_safetensors_give_the_same_codes(state, codes, tmp_path):
    th = tmp_path / "encodec_24khz.th"
    torch.save(state, th)
    np.testing.assert_array_equal(encodec.load(th).encode(X, 24.0).codes, codes)
    np.testing.assert_array_equal(encodec.load(str(th), config="24khz").encode(X, 24.0).codes, codes)
    from safetensors.torch import save_file

    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    np.testing.assert_array_equal(encodec.load(st).encode(X, 24.0).codes, codes)


def test_weight_norm_forms(state, codes):
    """weight_g/weight_v (the package), torch's parametrizations (newer weight_norm), or folded weights;
    numpy arrays and half precision are taken too."""
    folded = encodec.canonical_weights(state, encodec.ENCODEC_24KHZ)
    np.testing.assert_array_equal(encodec.load(dict(folded), config="24khz").encode(X, 24.0).codes, codes)
    param = {}
    for k, v in state.items():
        k = k.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1")
        param[k] = v.numpy()
    np.testing.assert_array_equal(encodec.load(param).encode(X, 24.0).codes, codes)
    half = {k: v.half() for k, v in state.items()}
    assert encodec.load(half).encode(X, 6.0).codes.shape == (8, 13)


def test_48khz_is_recognised():
    model = encodec.load(encodec.random_state_dict("48khz", seed=1))
    assert model.config is encodec.ENCODEC_48KHZ
    assert model.channels == 2 and model.config.n_q == 16


def test_wrong_keys(state):
    s = dict(state)
    del s["decoder.model.15.conv.conv.weight_v"]
    msg = one_line_error(encodec.load, s, match="missing 1 tensors")
    assert "decoder.model.15.conv.conv.weight_v" in msg
    s = dict(state)
    s["encoder.model.99.conv.conv.bias"] = torch.zeros(3)
    one_line_error(encodec.load, s, match=r"1 unexpected \(encoder.model.99")
    s = {k.replace("encoder.", "enc."): v for k, v in state.items()}
    one_line_error(encodec.load, s, config="24khz", match="missing")
    one_line_error(encodec.load, {"a": torch.zeros(1)}, match="neither EnCodec's 24 kHz nor its 48 kHz")
    one_line_error(encodec.load, state, config="96khz", match="unknown EnCodec config")
    one_line_error(encodec.load, state, config="48khz", match="not an encodec_48khz state dict")


def test_wrong_shapes_and_values(state):
    s = dict(state)
    s["encoder.model.3.conv.conv.weight_v"] = torch.zeros(64, 32, 5)
    one_line_error(encodec.load, s, match=r"wrong shapes: encoder.model.3.conv.conv.weight_v \(64, 32, 5\)")
    s = dict(state)
    s["quantizer.vq.layers.3._codebook.embed"] = torch.zeros(1024, 64)
    one_line_error(encodec.load, s, match=r"_codebook.embed \(1024, 64\), expected \(1024, 128\)")
    s = dict(state)
    s["encoder.model.13.lstm.bias_ih_l0"] = torch.full((2048,), float("nan"))
    one_line_error(encodec.load, s, match="NaN")
    s = dict(state)
    s["encoder.model.0.conv.conv.bias"] = torch.zeros(32, dtype=torch.int64)
    one_line_error(encodec.load, s, match="not a floating type")
    s = dict(state)
    s["encoder.model.0.conv.conv.bias"] = "zeros"
    one_line_error(encodec.load, s, match="not a tensor")
    one_line_error(encodec.load, [1, 2], match="a checkpoint path or a state dict")


class _Payload:
    """Unpickling this would create the file it names."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_with_code_never_runs(state, tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.th"
    evil.write_bytes(pickle.dumps({"encoder.model.0.conv.conv.bias": _Payload(str(marker))}))
    one_line_error(encodec.load, evil, match="weights_only=True refused it")
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"x": _Payload(str(marker))}, zipped)
    one_line_error(encodec.load, zipped, match="weights_only=True refused it")
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)  # a whole pickled module, not a state dict
    one_line_error(encodec.load, module, match="cannot be loaded as plain weights")
    assert not marker.exists()


def test_broken_files(state, tmp_path):
    good = tmp_path / "good.th"
    torch.save(state, good)
    cut = tmp_path / "cut.th"
    cut.write_bytes(good.read_bytes()[: os.path.getsize(good) // 2])
    one_line_error(encodec.load, cut, match="cannot be loaded as plain weights")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a checkpoint at all")
    one_line_error(encodec.load, junk, match="cannot be loaded as plain weights")
    st = tmp_path / "bad.safetensors"
    st.write_bytes((200).to_bytes(8, "little") + b'{"x": 1')
    one_line_error(encodec.load, st, match="not a valid safetensors file")
    one_line_error(encodec.load, tmp_path / "absent.th", match="cannot read checkpoint")
    lst = tmp_path / "list.th"
    torch.save([torch.zeros(1)], lst)
    one_line_error(encodec.load, lst, match="holds a list, not a state dict")
