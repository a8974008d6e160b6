"""nctk's EnCodec against Meta's ``encodec`` package (a test-only dependency), same random weights.

The package's ``pretrained=False`` models start with all-zero codebooks (it initialises them by k-means on
the first training batch), which would make every code 0; so the codebooks are drawn per stage from a
Gaussian fitted to the residuals of a training signal through the package's own encoder and quantizer, like
trained codebooks (residuals shrinking stage by stage). Everything else is the package's random init.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nctk.codec.audio import encodec
from nctk.codec.kernels import rvq_ref

package = pytest.importorskip("encodec")
torch = pytest.importorskip("torch")

LENGTHS_24 = [8000, 7777, 24017, 100, 1]  # 25 frames exactly; not multiples of the 320-sample hop
LENGTHS_48 = [47620, 5000]  # two segments (the second 100 samples long), one short segment


def signal(n: int, channels: int, sr: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000, (channels, 1)) * t)
    return (tone * rng.uniform(0.2, 1, (channels, 1)) + 0.05 * rng.normal(size=(channels, n))).astype(np.float32)


def fit_codebooks(ref, segments: list) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        r = torch.cat([ref.encoder(s)[0].T for s in segments])
        for layer in ref.quantizer.vq.layers:
            layer._codebook.embed.copy_(r.mean(0) + r.std(0) * torch.randn(1024, r.shape[1], generator=gen))
            r = r - layer.decode(layer.encode(r[None].transpose(1, 2)))[0].T


@pytest.fixture(scope="module")
def pair24():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm's deprecation warning
        ref = package.EncodecModel.encodec_model_24khz(pretrained=False)
    fit_codebooks(ref, [torch.from_numpy(signal(24000 * 4, 1, 24000, 99))[None]])
    return ref, encodec.load(ref.state_dict())


@pytest.fixture(scope="module")
def pair48():
    torch.manual_seed(0)
    ref = package.EncodecModel.encodec_model_48khz(pretrained=False)
    with torch.no_grad():
        for m in ref.modules():  # GroupNorm starts as the identity: give it something to do
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
    x = torch.from_numpy(signal(48000 * 2, 2, 48000, 99))[None]
    segs = []
    for off in range(0, x.shape[-1], 47520):  # the package's normalisation, per segment
        seg = x[..., off : off + 48000]
        segs.append(seg / (1e-8 + seg.mean(1, keepdim=True).pow(2).mean(2, keepdim=True).sqrt()))
    fit_codebooks(ref, segs)
    return ref, encodec.load(ref.state_dict())


def reference_codes(ref, x: np.ndarray, bandwidth: float):
    ref.set_target_bandwidth(bandwidth)
    with torch.no_grad():
        frames = ref.encode(torch.from_numpy(x)[None])
        out = ref.decode(frames)[0].numpy()[:, : x.shape[1]]
    codes = np.concatenate([f[0][0].numpy() for f in frames], axis=1)
    scales = np.array([float(f[1]) for f in frames]) if frames[0][1] is not None else None
    return codes, scales, out


def test_weight_norm_folds_to_the_package_weights(pair24):
    ref, _ = pair24
    with torch.no_grad():
        ref.encoder(torch.zeros(1, 1, 640))  # the old-style weight norm computes .weight on each forward
        ref.decoder(torch.zeros(1, 128, 2))
    folded = encodec.canonical_weights(ref.state_dict(), encodec.ENCODEC_24KHZ)
    modules = dict(ref.named_modules())
    n = 0
    for name, w in folded.items():
        if name.endswith(("conv.conv.weight", "convtr.convtr.weight")):
            module = modules[name[: -len(".weight")]]
            np.testing.assert_array_equal(w, module.weight.detach().numpy())
            n += 1
    assert n == 36  # 18 convolutions in each half


@pytest.mark.parametrize("bandwidth", [1.5, 3.0, 6.0, 12.0, 24.0])
def test_24khz_codes_and_audio_match_the_package(pair24, bandwidth):
    ref, model = pair24
    equal = total = 0
    for i, n in enumerate(LENGTHS_24):
        x = signal(n, 1, 24000, i)
        codes, _, out = reference_codes(ref, x, bandwidth)
        enc = model.encode(x, bandwidth)
        assert enc.codes.shape == codes.shape == (model.config.codebooks_for(bandwidth), -(-n // 320))
        equal += int((enc.codes == codes).all(axis=0).sum())
        total += codes.shape[1]
        # decoding the package's codes isolates the decoder: within 1e-4 of the package's samples
        mine = model.decode(encodec.EncodedAudio(codes.astype(np.int32), n, 24000, 1))
        assert mine.shape == out.shape == (1, n)
        assert np.abs(mine - out).max() < 1e-4
        if np.array_equal(enc.codes, codes):
            assert np.abs(model.decode(enc) - out).max() < 1e-4
    assert equal / total >= 0.99, f"{equal}/{total} frames with every code equal at {bandwidth} kbps"


@pytest.mark.parametrize("bandwidth", [3.0, 6.0, 12.0, 24.0])
def test_48khz_codes_scales_and_audio_match_the_package(pair48, bandwidth):
    ref, model = pair48
    equal = total = 0
    for i, n in enumerate(LENGTHS_48):
        x = signal(n, 2, 48000, i)
        codes, scales, out = reference_codes(ref, x, bandwidth)
        enc = model.encode(x, bandwidth)
        assert enc.codes.shape == codes.shape
        np.testing.assert_allclose(enc.scales, scales, rtol=1e-6)
        equal += int((enc.codes == codes).all(axis=0).sum())
        total += codes.shape[1]
        mine = model.decode(encodec.EncodedAudio(codes.astype(np.int32), n, 48000, 2, scales.astype(np.float32)))
        assert mine.shape == out.shape == (2, n)
        assert np.abs(mine - out).max() < 1e-4
    assert equal / total >= 0.99, f"{equal}/{total} frames with every code equal at {bandwidth} kbps"


def test_codes_are_the_exact_rvq_definition(pair24):
    _, model = pair24
    x = model.audio(signal(24000, 1, 24000, 5))
    emb = model.encoder.whole(x)
    codes = model.quantize(emb, 32)
    np.testing.assert_array_equal(codes, rvq_ref.encode_reference(emb, model.codebooks, 32).T)
    np.testing.assert_array_equal(model.dequantize(codes), rvq_ref.decode_reference(codes.T, model.codebooks))
