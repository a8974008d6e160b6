"""How much each weight tensor's errors matter to a model's outputs: what ``nctk.compress(..., sensitivity=...)``
spreads an error bound by.

The sensitivity of a tensor is the damage to the model's outputs per unit variance of independent noise in its
values, measured by adding small Gaussian noise to that tensor alone: with ``score(ref, out)`` the similarity of
the perturbed outputs to the original ones (default: mean cosine, for embeddings) it is
``(score(ref, ref) - score(ref, out)) / sigma**2``, averaged over a few noise draws. For small noise the damage is
linear in the variance (a second-order Taylor term around a trained model), so one measurement per tensor is
enough, and the results add across tensors.

Example (a sentence-embedding model; ``run`` returns the outputs on the user's calibration inputs)::

    sens = nctk.sensitivity(model, lambda m: m.encode(calibration, convert_to_tensor=True))
    nctk.compress("model.safetensors", bits=3, sensitivity=sens)

Names are ``model.named_parameters()`` names; pass ``prefix`` to strip what the file's keys lack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nctk.entropy.errors import CodecError

NOISE = 0.02  # noise standard deviation, times the tensor's own: small enough to stay in the linear regime


def cosine_score(ref, out) -> float:
    """Mean cosine similarity of matching rows (the last axis is the feature axis)."""
    import torch.nn.functional as F

    return float(F.cosine_similarity(out.reshape(-1, out.shape[-1]).double(),
                                     ref.reshape(-1, ref.shape[-1]).double(), dim=-1).mean())


def sensitivity(model, run: Callable, *, names: Iterable[str] | None = None, score: Callable = cosine_score,
                draws: int = 1, prefix: str = "", seed: int = 0, progress: Callable[[str], None] | None = None,
                ) -> dict[str, float]:
    """``{name: sensitivity}`` for the float parameters of ``model`` (a ``torch.nn.Module``) with at least 64
    values (or those in ``names``): ``run(model)`` computes the outputs to protect; ``score(ref, out)`` says how
    alike two outputs are (higher is better). The model's weights are restored afterwards, also on error."""
    import torch

    params = dict(model.named_parameters())
    wanted = list(names) if names is not None else [k for k, p in params.items()
                                                    if p.is_floating_point() and p.numel() >= 64]
    missing = [k for k in wanted if k not in params]
    if missing:
        raise CodecError(f"model has no parameters {', '.join(map(repr, missing[:3]))}")
    if draws < 1:
        raise CodecError("draws must be at least 1")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    with torch.no_grad():
        ref = run(model)
        top = score(ref, ref)
        for i, k in enumerate(wanted):
            p = params[k]
            keep = p.detach().clone()
            sigma = NOISE * float(keep.double().std()) if keep.numel() > 1 else NOISE * abs(float(keep))
            if not sigma > 0:
                out[k.removeprefix(prefix)] = 0.0
                continue
            loss = 0.0
            try:
                for _ in range(draws):
                    noise = torch.randn(keep.shape, generator=gen, dtype=torch.float64) * sigma
                    p.copy_((keep.double() + noise).to(p.dtype))
                    loss += top - score(ref, run(model))
            finally:
                p.copy_(keep)
            out[k.removeprefix(prefix)] = max(0.0, loss / draws) / sigma**2
            if progress is not None:
                progress(f"sensitivity {i + 1}/{len(wanted)}: {k}")
    return out


__all__ = ["cosine_score", "sensitivity"]
