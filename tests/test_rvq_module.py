"""codec.quant ResidualVQ / GroupResidualVQ: exact codes, determinism, and that training actually learns.

Toy data only (a mixture of 32 Gaussians in D=8, a 2-D manifold in D=16), small codebooks, a few hundred
steps: the whole file runs in seconds on two cores.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from nctk.codec.kernels.rvq_ref import decode_reference, encode_reference
from nctk.codec.quant import GroupResidualVQ, ResidualVQ
from nctk.codec.quant.residual_vq import _rotation_trick
from nctk.entropy.errors import CodecError, NctkError

torch.set_num_threads(2)

# ------------------------------------------------------------------------------------------ toy data


def mixture(n: int, seed: int, *, d: int = 8, k: int = 32, scale: float = 2.0, spread: float = 0.25,
            offset: float = 0.0) -> torch.Tensor:
    """``n`` samples of a fixed mixture of ``k`` Gaussians in ``d`` dimensions (centres fixed, draws by seed)."""
    centres = torch.randn(k, d, generator=torch.Generator().manual_seed(1234)) * scale
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(k, (n,), generator=g)
    return offset + centres[which] + spread * torch.randn(n, d, generator=g)


def manifold(n: int, seed: int) -> torch.Tensor:
    """``n`` points of a fixed smooth 2-D manifold embedded in 16 dimensions."""
    g = torch.Generator().manual_seed(77)
    w1 = torch.randn(2, 8, generator=g)
    w2 = torch.randn(8, 16, generator=g) / 8**0.5
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return torch.tanh(z @ w1) @ w2


def train_quantizer(q: nn.Module, steps: int, batch: int = 256, **data_kw) -> nn.Module:
    q.train()
    for i in range(steps):
        q(mixture(batch, seed=i, **data_kw))
    return q


def eval_mse(q: nn.Module, x: torch.Tensor, n_stages: int | None = None) -> tuple[float, dict]:
    """Held-out MSE and stats in eval mode, leaving the module's mode as it was."""
    was = q.training
    q.eval()
    with torch.no_grad():
        out, _, stats = q(x, n_stages)
    q.train(was)
    return (out - x).pow(2).mean().item(), stats


def train_autoencoder(q: nn.Module, steps: int = 300, latent: int = 8) -> dict:
    """Linear encoder -> quantizer -> linear decoder on the manifold; returns the numbers the tests check."""
    torch.manual_seed(0)
    enc, dec = nn.Linear(16, latent), nn.Linear(latent, 16)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=3e-3)
    w0 = enc.weight.detach().clone()
    losses = []
    for i in range(steps):
        x = manifold(256, seed=i)
        quantized, _, stats = q(enc(x))
        rec = (dec(quantized) - x).pow(2).mean()
        (rec + stats["loss"]).backward()
        if i == 0:
            first_grad = enc.weight.grad.abs().sum().item()
        opt.step()
        opt.zero_grad()
        losses.append(rec.item())
    test = manifold(2048, seed=10**6)
    q.eval()
    with torch.no_grad():
        per_n = [(dec(q(enc(test), n)[0]) - test).pow(2).mean().item() for n in range(1, q.num_stages + 1)]
    return {"first": losses[0], "last": float(np.mean(losses[-20:])), "per_n": per_n,
            "weight_change": (enc.weight.detach() - w0).abs().max().item(), "first_grad": first_grad}


def strictly_decreasing(values: list[float]) -> bool:
    return all(a > b for a, b in zip(values[:-1], values[1:], strict=True))


# ------------------------------------------------------------------------------------------ exact codes


@pytest.mark.parametrize("kmeans_init", [True, False])
def test_to_codes_from_codes_equal_reference(kmeans_init):
    q = train_quantizer(ResidualVQ(8, 32, 4, kmeans_init=kmeans_init, seed=3), steps=5)
    cb = q.codebooks_numpy()
    assert cb.shape == (4, 32, 8) and cb.dtype == np.float32
    x = (torch.randn(3, 170, 8, generator=torch.Generator().manual_seed(5)) * 2).float()
    flat = x.reshape(-1, 8).numpy()
    for n in (None, 1, 3, 4):
        codes = q.to_codes(x, n)
        ref = encode_reference(flat, cb, n)
        assert codes.dtype == torch.int64 and codes.shape == (3, 170, ref.shape[1])
        assert np.array_equal(codes.reshape(-1, ref.shape[1]).numpy(), ref)
        xhat = q.from_codes(codes)
        assert xhat.dtype == torch.float32 and xhat.shape == (3, 170, 8)
        assert np.array_equal(xhat.reshape(-1, 8).numpy(), decode_reference(ref, cb))  # bit for bit
    # numpy in, numpy out (int32 codes like the reference)
    codes_np = q.to_codes(flat, 2)
    assert codes_np.dtype == np.int32 and np.array_equal(codes_np, encode_reference(flat, cb, 2))
    assert np.array_equal(q.from_codes(codes_np), decode_reference(codes_np, cb))


def test_ties_go_to_the_lowest_index_in_every_path():
    q = ResidualVQ(4, 8, 2, kmeans_init=False)
    cb = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(0))
    cb[:, 5] = cb[:, 2]  # exact duplicates: every vector nearest to one is tied with the other
    cb[:, 7] = cb[:, 2]
    q.codebooks.copy_(cb)
    x = cb[0, 2].repeat(50, 1) + 0.01 * torch.randn(50, 4, generator=torch.Generator().manual_seed(1))
    codes = q.to_codes(x)
    assert np.array_equal(codes.numpy(), encode_reference(x.numpy(), cb.numpy()))
    assert (codes[:, 0] == 2).all()
    q.eval()
    assert torch.equal(q(x)[1], codes)
    q.train()
    assert torch.equal(q(x)[1][:, 0], codes[:, 0])  # the float32 training path breaks ties the same way


def test_eval_forward_is_to_codes_and_from_codes():
    q = train_quantizer(ResidualVQ(8, 32, 3, seed=1), steps=20)
    q.eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    x = mixture(300, seed=99).reshape(3, 100, 8).requires_grad_(True)
    quantized, codes, stats = q(x)
    assert torch.equal(codes, q.to_codes(x))
    assert torch.equal(quantized, q.from_codes(codes))  # same bits, despite carrying gradients
    for n in (1, 2):
        qn, cn, _ = q(x, n)
        assert torch.equal(cn, q.to_codes(x, n)) and torch.equal(qn, q.from_codes(cn))
    g = torch.randn_like(x)
    quantized.backward(g)
    assert torch.equal(x.grad, g)  # straight through: identity gradient
    assert all(torch.equal(v, q.state_dict()[k]) for k, v in before.items())  # eval changes nothing
    assert {"loss", "commitment", "commitment_per_stage", "usage", "perplexity"} <= set(stats)


def test_training_path_codes_agree_with_exact_codes():
    """Training-mode codes (float32 distances) are the exact codes except on near-ties."""
    q = train_quantizer(ResidualVQ(8, 64, 3, seed=2), steps=30)
    frozen = copy.deepcopy(q)  # the forward below updates q's codebooks after choosing its codes
    x = mixture(4000, seed=1234)
    _, codes, _ = q(x)
    assert (codes == frozen.to_codes(x)).all(dim=1).float().mean() > 0.99


def test_bad_arguments_raise_clear_errors():
    q = train_quantizer(ResidualVQ(8, 16, 2), steps=1)
    with pytest.raises(CodecError, match="n_stages"):
        q.to_codes(torch.zeros(3, 8), 3)
    with pytest.raises(CodecError, match="expected shape"):
        q(torch.zeros(3, 7))
    with pytest.raises(CodecError, match="at most 2 stages"):
        q.from_codes(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(NctkError):
        q.from_codes(torch.full((3, 2), 16))  # out of range codes
    with pytest.raises(ValueError):
        GroupResidualVQ(10, groups=4)


# ------------------------------------------------------------------------------------------ determinism


def test_deterministic_given_seed():
    kw = dict(dead_code_threshold=2.0, quantizer_dropout=0.5)
    a = train_quantizer(ResidualVQ(8, 32, 3, seed=11, **kw), steps=40)
    b = train_quantizer(ResidualVQ(8, 32, 3, seed=11, **kw), steps=40)
    c = train_quantizer(ResidualVQ(8, 32, 3, seed=12, **kw), steps=40)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not torch.equal(a.codebooks, c.codebooks)
    x = mixture(50, seed=3)
    assert torch.equal(a(x)[1], b(x)[1])  # including the dropout draw (-1 marks)


def test_state_dict_round_trip_and_identical_resume():
    kw = dict(dead_code_threshold=2.0, quantizer_dropout=0.3)
    a = train_quantizer(ResidualVQ(8, 32, 3, seed=5, **kw), steps=25)
    b = ResidualVQ(8, 32, 3, seed=5, **kw)
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"codebooks", "ema_cluster_size", "ema_embed_sum", "initted", "steps"}
    x = mixture(500, seed=77)
    assert torch.equal(a.to_codes(x), b.to_codes(x))
    assert np.array_equal(a.codebooks_numpy(), b.codebooks_numpy())
    for i in range(10):  # resuming continues the same trajectory: randomness derives from (seed, steps)
        xa = mixture(256, seed=1000 + i)
        out_a, out_b = a(xa), b(xa)
        assert torch.equal(out_a[1], out_b[1])
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    with pytest.raises(CodecError, match="do not fit"):
        ResidualVQ(8, 16, 3).load_state_dict(a.state_dict())
    g1, g2 = GroupResidualVQ(8, 2, 16, 2), GroupResidualVQ(8, 2, 16, 2)
    g1(mixture(128, seed=0))
    g2.load_state_dict(g1.state_dict())
    assert np.array_equal(g1.codebooks_numpy(), g2.codebooks_numpy())


# ------------------------------------------------------------------------------------------ learning


@pytest.mark.parametrize("kmeans_init, max_ratio", [(True, 0.9), (False, 0.1)])
def test_training_lowers_mse_and_keeps_usage_high(kmeans_init, max_ratio):
    """Held-out MSE after the first step vs after 300: k-means start (fitted to that one batch) 0.059 -> 0.047;
    random start 0.73 -> 0.039. Per-stage perplexity ends at 26-30 of 32, all or nearly all codes used."""
    q = ResidualVQ(8, 32, 2, kmeans_init=kmeans_init, seed=0)
    test = mixture(4096, seed=10**6)
    q(mixture(256, seed=0))
    first, _ = eval_mse(q, test)
    train_quantizer(q, steps=300)
    last, stats = eval_mse(q, test)
    assert last < max_ratio * first, (first, last)
    assert (stats["perplexity"] > 0.7 * 32).all(), stats["perplexity"]
    assert (stats["usage"] > 0.9).all()
    # Each stage helps: MSE with one stage is well above MSE with two.
    assert eval_mse(q, test, 1)[0] > 3 * last


def test_dead_code_restart_revives_unused_codes():
    """Random N(0,1) codebooks, data in a tight cluster far from them: almost every code is dead.

    Without restarts one code wins everything (usage 1/64, perplexity 1, MSE ~0.23); with them every code
    is used (usage 0.98, perplexity 54 of 64, MSE 0.009)."""
    data = dict(offset=3.0, scale=0.5, spread=0.1)
    test = mixture(4096, seed=10**6, **data)
    results = {}
    for threshold in (1.0, 0.0):
        q = ResidualVQ(8, 64, 1, kmeans_init=False, dead_code_threshold=threshold, seed=0)
        train_quantizer(q, steps=150, batch=512, **data)
        mse, stats = eval_mse(q, test)
        results[threshold] = (mse, stats["usage"].item(), stats["perplexity"].item())
    (mse_on, usage_on, ppl_on), (mse_off, usage_off, ppl_off) = results[1.0], results[0.0]
    assert usage_off < 0.1 and usage_on > 0.9
    assert ppl_on > 0.6 * 64 and ppl_on > 10 * ppl_off
    assert mse_on < 0.2 * mse_off


def test_quantizer_dropout_mechanics():
    """Per batch element (first axis) a random prefix of stages; dropped stages are -1 and add nothing."""
    q = train_quantizer(ResidualVQ(8, 16, 4, quantizer_dropout=0.5, seed=4), steps=3)
    x = mixture(64 * 5, seed=9).reshape(64, 5, 8)
    frozen = q.codebooks_numpy()  # the forward quantizes with these, then updates them
    quantized, codes, _ = q(x)
    kept = (codes >= 0).sum(-1)  # stages used, per (element, frame)
    assert (kept == kept[:, :1]).all()  # all frames of an element share one count
    assert ((codes >= 0) == (torch.arange(4) < kept[..., None])).all()  # always a prefix
    n_dropped = (kept[:, 0] < 4).sum().item()
    assert 16 <= n_dropped <= 40  # expected 64 * 0.5 * 3/4 = 24
    for b in range(64):
        n = int(kept[b, 0])
        prefix = codes[b, :, :n]
        assert torch.equal(quantized[b], torch.from_numpy(decode_reference(prefix.numpy(), frozen)))
        full = decode_reference(codes[b].clamp_min(0).numpy(), frozen) if n < 4 else None
        assert n == 4 or not np.array_equal(quantized[b].numpy(), full)
    q.eval()
    assert (q(x)[1] >= 0).all()  # no dropout at eval


def test_quantizer_dropout_model_degrades_gracefully():
    """Autoencoder trained with quantizer dropout: held-out MSE falls strictly with every added stage
    (about 0.050, 0.017, 0.013, 0.012 for n = 1..4)."""
    r = train_autoencoder(ResidualVQ(8, 16, 4, quantizer_dropout=0.5, seed=0))
    assert strictly_decreasing(r["per_n"]), r["per_n"]
    assert r["per_n"][-1] < 0.05 * r["first"]


def test_group_residual_vq_trains():
    q = GroupResidualVQ(8, groups=4, codebook_size=16, num_stages=4, seed=0)
    assert len(q.groups) == 4 and q.groups[0].dim == 2
    r = train_autoencoder(q)
    # reconstruction ~0.55 -> ~0.008; the encoder in front receives gradients through all groups
    assert r["last"] < 0.05 * r["first"] and r["weight_change"] > 0.05 and r["first_grad"] > 0
    assert strictly_decreasing(r["per_n"])
    x = torch.randn(2, 30, 8)
    codes = q.to_codes(x, 3)
    assert codes.shape == (2, 30, 4, 3)
    assert torch.equal(q(x, 3)[1], codes)  # q is in eval mode after training
    xhat = q.from_codes(codes)
    parts = [decode_reference(codes[..., g, :].reshape(-1, 3).numpy(), q.codebooks_numpy()[g]) for g in range(4)]
    assert np.array_equal(xhat.reshape(-1, 8).numpy(), np.concatenate(parts, axis=1))
    assert q.codebooks_numpy().shape == (4, 4, 16, 2)
    stats = q(x)[2]
    assert stats["perplexity"].shape == (4, 4) and stats["loss"].ndim == 0


def test_group_dropout_shares_the_stage_count_across_groups():
    q = GroupResidualVQ(8, groups=2, codebook_size=16, num_stages=4, quantizer_dropout=1.0, seed=1)
    q(torch.randn(64, 8))
    _, codes, _ = q(torch.randn(64, 8))
    kept = (codes >= 0).sum(-1)
    assert (kept[:, 0] == kept[:, 1]).all() and kept.min() >= 1 and (kept < 4).any()


# ------------------------------------------------------------------------------------------ rotation trick


def test_rotation_trick_gradient_is_a_scaled_rotation():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(64, 8, generator=g).requires_grad_(True)
    q = torch.randn(64, 8, generator=g)
    out = _rotation_trick(e, q)
    assert torch.equal(out, q)  # value: exactly the codeword
    up = torch.randn(64, 8, generator=g)
    out.backward(up)
    lam = q.norm(dim=1) / e.detach().norm(dim=1)
    torch.testing.assert_close(e.grad.norm(dim=1), lam * up.norm(dim=1))  # R is orthogonal: norms scale by lam
    # R maps e's direction to q's, so R^T maps q's direction back to e's: the gradient of the loss component
    # along q^ lands along e^.
    eh, qh = e.detach() / e.detach().norm(dim=1, keepdim=True), q / q.norm(dim=1, keepdim=True)
    e.grad = None
    _rotation_trick(e, q).backward(qh)
    torch.testing.assert_close(e.grad, lam[:, None] * eh)
    # Parallel e and q: R = I, the gradient is the upstream one scaled by |q| / |e| = 2.
    e2 = torch.randn(5, 8, generator=g).requires_grad_(True)
    _rotation_trick(e2, 2 * e2.detach()).backward(up[:5])
    torch.testing.assert_close(e2.grad, 2 * up[:5])
    # A zero input has no direction: identity (straight-through) gradient.
    e3 = torch.zeros(1, 8, requires_grad=True)
    _rotation_trick(e3, q[:1]).backward(up[:1])
    assert torch.equal(e3.grad, up[:1])


def test_rotation_trick_trains_an_encoder():
    """Linear encoder -> RVQ (rotation trick) -> linear decoder: reconstruction ~0.55 -> ~0.011, and the
    encoder's weights move (gradients reach it through the rotation)."""
    r = train_autoencoder(ResidualVQ(8, 16, 4, rotation_trick=True, seed=0))
    assert r["first_grad"] > 0 and r["weight_change"] > 0.05
    assert r["last"] < 0.05 * r["first"]
    assert strictly_decreasing(r["per_n"])
    # The gradient it passes differs from straight-through on the same input (unless e == q).
    q = ResidualVQ(8, 16, 2, rotation_trick=True)
    q(manifold(256, 0)[:, :8])
    x = manifold(64, 1)[:, :8].requires_grad_(True)
    q.eval()
    up = torch.randn(64, 8)
    q(x)[0].backward(up)
    assert not torch.allclose(x.grad, up)
