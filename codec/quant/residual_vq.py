"""Residual vector quantization for training learned codecs, with an exact inference path.

Two halves share one set of codebooks:

- **Training** (:meth:`ResidualVQ.forward` in ``train()`` mode) runs on any device in torch: nearest codewords
  by a float32 matrix product, straight-through (or rotation-trick) gradients, a commitment loss, EMA codebook
  updates, k-means initialisation from the first batch and dead-code restarts. Codebooks are buffers, never
  touched by the optimiser, so a model's optimiser state does not depend on the quantizer.
- **Inference** (:meth:`ResidualVQ.to_codes` / :meth:`ResidualVQ.from_codes`, and ``forward`` in ``eval()``
  mode) computes the exact RVQ codes of :mod:`nctk.codec.kernels.rvq_ref` on CPU numpy through its Numba twin
  :mod:`nctk.codec.kernels.rvq_numba` (same codes bit for bit), so the codes a file stores are the same on
  every machine.

Training-mode codes come from float32 distances and may differ from the exact ones on near-ties; that is
harmless for learning, and everything that is stored or compared goes through the exact path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from nctk.entropy.errors import CodecError

__all__ = ["ResidualVQ", "GroupResidualVQ", "exact_encode", "exact_decode"]

_LAPLACE_EPS = 1e-5  # additive smoothing of EMA cluster sizes, so a codeword never divides by zero
_NORM_EPS = 1e-12  # below this norm a vector has no direction (rotation trick falls back to identity)


# ------------------------------------------------------------------------------------------ exact codes


def exact_encode(x: np.ndarray, codebooks: np.ndarray, n_stages: int | None = None) -> np.ndarray:
    """Exact RVQ codes (N, n) int32 of ``x`` (N, D), from the Numba kernel (equal to the reference)."""
    from nctk.codec.kernels import rvq_numba  # Numba loads on first use, not on import

    return rvq_numba.encode(x, codebooks, n_stages)


def exact_decode(codes: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """Exact RVQ reconstruction (N, D) float32 of ``codes`` (N, n), from the Numba kernel."""
    from nctk.codec.kernels import rvq_numba

    return rvq_numba.decode(codes, codebooks)


# ------------------------------------------------------------------------------------------ helpers


def _nearest(r: Tensor, c: Tensor) -> Tensor:
    """Index of the nearest row of ``c`` (K, D) for each row of ``r`` (N, D), by float32 squared distance.

    ``|r|^2`` is the same for every candidate, so ``|c|^2 - 2 r.c`` ranks them; ties go to the lowest index
    (torch.argmin returns the first minimum), as in the exact definition.
    """
    scores = (c * c).sum(-1)[None, :] - 2.0 * (r @ c.t())
    return scores.argmin(dim=1)


def _sample_rows(data: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """``k`` rows of ``data`` chosen at random (without replacement when there are enough rows)."""
    n = data.shape[0]
    if n >= k:
        idx = torch.randperm(n, generator=gen)[:k]
    else:
        idx = torch.randint(n, (k,), generator=gen)
    return data[idx.to(data.device)]


def _kmeans(data: Tensor, k: int, iters: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on ``data`` (N, D) from ``k`` random rows: (centroids (K, D), cluster sizes (K,)).

    An empty cluster keeps its previous centroid; its size of 0 makes it a dead code, restarted on the next
    training step, which is cheaper than re-seeding inside the loop and has the same effect.
    """
    centroids = _sample_rows(data, k, gen).clone()
    for _ in range(iters):
        assign = _nearest(data, centroids)
        counts = torch.bincount(assign, minlength=k).to(data.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, data)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], centroids)
    counts = torch.bincount(_nearest(data, centroids), minlength=k).to(data.dtype)
    return centroids, counts


def _rotation_trick(e: Tensor, q: Tensor) -> Tensor:
    """A tensor equal in value to ``q`` whose gradient reaches ``e`` through a rotation and rescaling.

    Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation Trick": with ``R`` the rotation
    taking the direction of ``e`` to that of ``q`` and ``lam = |q| / |e|``, both treated as constants,
    ``q == lam * R e``, so backpropagating through ``lam * R e`` gives ``dL/de = lam * R^T dL/dq``: the gradient
    keeps the angle it makes with the codeword, instead of being copied unchanged as straight-through does.

    ``R e = e - 2 w (w.e) + 2 q^ (e^.e)`` with unit vectors ``e^``, ``q^`` and ``w = (e^ + q^) / |e^ + q^|``
    (two Householder-style reflections, never an explicit D x D matrix). The forward value is ``q`` exactly
    (``q + (y - y.detach())`` adds a true zero), so the quantized output is the same bits as the decoder's.
    Rows with ``|e| == 0`` have no direction and fall back to the straight-through (identity) gradient.
    """
    with torch.no_grad():
        ne = e.norm(dim=-1, keepdim=True)
        nq = q.norm(dim=-1, keepdim=True)
        eh = e / ne.clamp_min(_NORM_EPS)
        qh = q / nq.clamp_min(_NORM_EPS)
        w = eh + qh
        # e^ == -q^ makes w = 0: the formula then degenerates to the reflection I - 2 e^ e^T, which still maps
        # e^ to q^ = -e^, so no special case is needed.
        w = w / w.norm(dim=-1, keepdim=True).clamp_min(_NORM_EPS)
        lam = nq / ne.clamp_min(_NORM_EPS)
        has_dir = ne > _NORM_EPS
    rotated = lam * (e - 2.0 * w * (w * e).sum(-1, keepdim=True) + 2.0 * qh * (eh * e).sum(-1, keepdim=True))
    y = torch.where(has_dir, rotated, e)
    return q.detach() + (y - y.detach())


def _straight_through(e: Tensor, q: Tensor) -> Tensor:
    """``q`` in value, identity gradient to ``e``; ``e - e.detach()`` is an exact zero, so the value is ``q``'s bits."""
    return q.detach() + (e - e.detach())


def _perplexity(counts: Tensor) -> Tensor:
    """exp(entropy) of the code histogram ``counts`` (..., K): 1 when one code is used, K when all equally."""
    p = counts / counts.sum(-1, keepdim=True).clamp_min(1.0)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum(-1))


def _as_numpy_2d(x: Tensor | np.ndarray, dim: int, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` (..., dim) as a float32 C-contiguous (N, dim) numpy array, and its leading shape."""
    arr = x.detach().to("cpu", torch.float32).numpy() if isinstance(x, Tensor) else np.asarray(x, np.float32)
    if arr.ndim < 1 or arr.shape[-1] != dim:
        raise CodecError(f"{what}: expected shape (..., {dim}), got {tuple(arr.shape)}")
    lead = tuple(arr.shape[:-1])
    return np.ascontiguousarray(arr.reshape(-1, dim)), lead


def _as_codes_2d(codes: Tensor | np.ndarray, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Integer codes (..., n) as a (N, n) int64 numpy array, and the leading shape."""
    arr = codes.detach().cpu().numpy() if isinstance(codes, Tensor) else np.asarray(codes)
    if arr.ndim < 1 or not np.issubdtype(arr.dtype, np.integer):
        raise CodecError(f"{what}: expected integer codes (..., n_stages), got {arr.dtype} {tuple(arr.shape)}")
    return arr.reshape(-1, arr.shape[-1]).astype(np.int64), tuple(arr.shape[:-1])


# ------------------------------------------------------------------------------------------ ResidualVQ


class ResidualVQ(nn.Module):
    """Residual vector quantizer with EMA codebooks, for training learned codecs.

    Stage ``s`` quantizes the residual left by stages ``0 .. s-1`` with its own codebook of ``codebook_size``
    codewords, so ``num_stages`` stages spend ``num_stages * log2(codebook_size)`` bits per vector.

    Args:
        dim: vector size D (the last axis of the input).
        codebook_size: codewords per stage K.
        num_stages: number of stages S.
        decay: EMA decay of cluster sizes and sums (higher: slower, smoother codebook updates).
        commitment: weight of the commitment loss, which pulls the encoder output towards its codewords.
        kmeans_init: initialise each stage by k-means on that stage's residuals of the first training batch;
            otherwise codebooks start as seeded N(0, 1) noise.
        kmeans_iters: Lloyd iterations of that initialisation.
        dead_code_threshold: a codeword whose EMA cluster size (vectors per step) falls below this is moved
            to a random residual of the current batch; 0 disables restarts.
        quantizer_dropout: probability, per batch element (index along the first axis; each row of a 2-D
            input), of training with only the first ``n ~ U{1..S}`` stages (SoundStream / EnCodec), so one
            model serves every bitrate ``n * log2(K)``.
        rotation_trick: pass gradients by the rotation trick instead of straight through. It is applied once,
            to the whole vector (the input and its full reconstruction), not stage by stage: the input's
            gradient is the reconstruction's, rotated and rescaled.
        seed: all randomness (k-means seeding, restarts, dropout, non-k-means init) derives from it and from
            the step counter, so training is reproducible and resumes identically from a ``state_dict``.

    Buffers (all in the ``state_dict``): ``codebooks`` (S, K, D) float32, ``ema_cluster_size`` (S, K),
    ``ema_embed_sum`` (S, K, D), ``initted`` (bool scalar), ``steps`` (int64 scalar: training steps taken).
    """

    codebooks: Tensor
    ema_cluster_size: Tensor
    ema_embed_sum: Tensor
    initted: Tensor
    steps: Tensor

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        num_stages: int = 8,
        *,
        decay: float = 0.99,
        commitment: float = 0.25,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 1.0,
        quantizer_dropout: float = 0.0,
        rotation_trick: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dim < 1 or codebook_size < 1 or num_stages < 1:
            raise ValueError(f"need dim, codebook_size, num_stages >= 1; got {dim}, {codebook_size}, {num_stages}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout is a probability, got {quantizer_dropout}")
        if kmeans_iters < 0 or dead_code_threshold < 0 or commitment < 0:
            raise ValueError("kmeans_iters, dead_code_threshold and commitment must be >= 0")
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_stages = num_stages
        self.decay = decay
        self.commitment = commitment
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.quantizer_dropout = quantizer_dropout
        self.rotation_trick = rotation_trick
        self.seed = seed

        shape = (num_stages, codebook_size, dim)
        if kmeans_init:
            codebooks = torch.zeros(shape)
        else:
            codebooks = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("codebooks", codebooks)
        # Starting every cluster at size 1 with sum = codeword keeps an unused codeword where it is (its size
        # and sum decay together) instead of collapsing it to zero, until a restart moves it.
        self.register_buffer("ema_cluster_size", torch.ones(num_stages, codebook_size))
        self.register_buffer("ema_embed_sum", codebooks.clone())
        self.register_buffer("initted", torch.tensor(not kmeans_init))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, num_stages={self.num_stages}, "
                f"decay={self.decay}, commitment={self.commitment}, quantizer_dropout={self.quantizer_dropout}, "
                f"rotation_trick={self.rotation_trick}")

    # ---------------------------------------------------------------------------------------- exact path

    def _check_stages(self, n_stages: int | None) -> int:
        n = self.num_stages if n_stages is None else int(n_stages)
        if not 1 <= n <= self.num_stages:
            raise CodecError(f"n_stages must be in [1, {self.num_stages}], got {n_stages}")
        return n

    def codebooks_numpy(self) -> np.ndarray:
        """A float32 (S, K, D) numpy copy of the codebooks: what a frozen codec ships."""
        return self.codebooks.detach().to("cpu", torch.float32).numpy().copy()

    def to_codes(self, x: Tensor | np.ndarray, n_stages: int | None = None) -> Tensor | np.ndarray:
        """Exact codes of ``x`` (..., D) using the first ``n_stages`` stages: (..., n).

        Deterministic and machine-independent (the exact RVQ definition, evaluated on CPU). A tensor input
        gives a LongTensor on its device; a numpy input gives an int32 array.
        """
        n = self._check_stages(n_stages)
        flat, lead = _as_numpy_2d(x, self.dim, "to_codes")
        codes = exact_encode(flat, self.codebooks_numpy(), n).reshape(*lead, n)
        if isinstance(x, Tensor):
            return torch.from_numpy(codes.astype(np.int64)).to(x.device)
        return codes

    def from_codes(self, codes: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Exact reconstruction of ``codes`` (..., n), n <= S: (..., D) float32, the sum of chosen codewords.

        A tensor input gives a float32 tensor on its device; a numpy input gives a numpy array.
        """
        flat, lead = _as_codes_2d(codes, "from_codes")
        if flat.shape[1] > self.num_stages:
            raise CodecError(f"from_codes: at most {self.num_stages} stages, got {flat.shape[1]}")
        out = exact_decode(flat, self.codebooks_numpy()).reshape(*lead, self.dim)
        if isinstance(codes, Tensor):
            return torch.from_numpy(out).to(codes.device)
        return out

    # ---------------------------------------------------------------------------------------- training

    def _generator(self, stream: int = 0) -> torch.Generator:
        """The CPU generator of the current step: a pure function of (seed, steps, stream), so resuming
        from a ``state_dict`` reproduces training; ``stream`` separates independent uses within a step."""
        return torch.Generator().manual_seed((self.seed * 1_000_003 + int(self.steps) * 7 + stream) % (2**63))

    def _stage_counts(self, x: Tensor, n: int, gen: torch.Generator) -> Tensor | None:
        """Stages used per batch element under quantizer dropout, (B,) int64 on x's device, or None (all n)."""
        if not (self.training and self.quantizer_dropout > 0.0 and n > 1):
            return None
        b = x.shape[0] if x.ndim >= 2 else 1
        drop = torch.rand(b, generator=gen) < self.quantizer_dropout
        counts = torch.where(drop, torch.randint(1, n + 1, (b,), generator=gen), torch.full((b,), n))
        return counts.to(x.device)

    def forward(self, x: Tensor, n_stages: int | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Quantize ``x`` (..., D) with the first ``n_stages`` stages (default all).

        Returns ``(quantized, codes, stats)``:

        - ``quantized`` (..., D), x's dtype: the decoded vector in value, with straight-through or rotation-trick
          gradients to ``x``. In eval mode it is exactly ``from_codes(to_codes(x))``.
        - ``codes`` (..., n) int64. In eval mode exactly ``to_codes(x, n)``. In training mode with quantizer
          dropout, the stages an element did not use are marked -1.
        - ``stats``: ``loss`` (the differentiable term to add to the training loss: commitment weight times
          ``commitment``), ``commitment`` (sum over stages of the mean squared distance between each stage's
          input residual and its codeword), and detached diagnostics over the stages actually run:
          ``commitment_per_stage``, ``usage`` (fraction of the K codes used in this batch) and ``perplexity``
          (exp entropy of the batch's code histogram; K is perfect), each (n,); in training mode also
          ``restarted`` (codes restarted this step, per stage).

        Training mode also updates the codebooks (EMA), initialises them on the first batch and restarts
        dead codes; eval mode changes nothing.
        """
        n = self._check_stages(n_stages)
        if x.shape[-1] != self.dim:
            raise CodecError(f"ResidualVQ: expected shape (..., {self.dim}), got {tuple(x.shape)}")
        gen = self._generator() if self.training else None
        counts = self._stage_counts(x, n, gen) if gen is not None else None
        return self._forward(x, n, counts, gen)

    def _forward(
        self, x: Tensor, n: int, stage_counts: Tensor | None, gen: torch.Generator | None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Forward with the stage counts already drawn (GroupResidualVQ shares one draw across its groups)."""
        lead = x.shape[:-1]
        e = x.reshape(-1, self.dim).float()
        m = e.shape[0]
        # Which rows use stage s: element b uses stages < stage_counts[b]; every row of an element shares it.
        per_row = None
        if stage_counts is not None:
            rows_per_elem = m // stage_counts.shape[0] if stage_counts.shape[0] else 0
            per_row = stage_counts.repeat_interleave(rows_per_elem) if m else stage_counts[:0]

        training = self.training and m > 0
        if training and not bool(self.initted):
            self._init_codebooks(e.detach(), gen)

        cb = self.codebooks
        if self.training:
            codes = torch.empty(m, n, dtype=torch.int64, device=e.device)
            r = e.detach()
            for s in range(n):
                codes[:, s] = _nearest(r, cb[s])
                r = r - cb[s][codes[:, s]]  # float32, as the exact definition's residual
        else:
            codes = self.to_codes(e.detach(), n)

        # Decode in the exact order ((0 + C0[c0]) + C1[c1]) + ..., skipping dropped stages, and gather the
        # residual each stage saw (its input) for the commitment loss and the EMA statistics.
        q = torch.zeros_like(e)
        residuals: list[Tensor] = []
        commit_terms: list[Tensor] = []
        for s in range(n):
            words = cb[s][codes[:, s]]
            r_s = e - q  # gradient reaches e; q carries none (codebooks are buffers)
            residuals.append(r_s.detach())
            err = (r_s - words).pow(2)
            if per_row is None:
                commit_terms.append(err.mean())
                q = q + words
            else:
                used = (per_row > s)[:, None]
                commit_terms.append((err * used).sum() / err.numel())
                q = torch.where(used, q + words, q)
        commit_per_stage = torch.stack(commit_terms)
        commitment = commit_per_stage.sum()

        quantized = (_rotation_trick if self.rotation_trick else _straight_through)(e, q)

        with torch.no_grad():
            hist = torch.stack([torch.bincount(codes[:, s], minlength=self.codebook_size) for s in range(n)])
            hist = hist.float()
            stats: dict[str, Tensor] = {
                "loss": self.commitment * commitment,
                "commitment": commitment,
                "commitment_per_stage": commit_per_stage.detach(),
                "usage": (hist > 0).float().mean(-1),
                "perplexity": _perplexity(hist),
            }
            if training:
                stats["restarted"] = self._ema_update(residuals, codes, gen)
                self.steps += 1

        if per_row is not None:
            stage_ids = torch.arange(n, device=codes.device)[None, :]
            codes = torch.where(stage_ids < per_row[:, None], codes, torch.full_like(codes, -1))
        return quantized.to(x.dtype).reshape(x.shape), codes.reshape(*lead, n), stats

    @torch.no_grad()
    def _init_codebooks(self, e: Tensor, gen: torch.Generator) -> None:
        """k-means of each stage on that stage's residuals of ``e`` (all S stages, whatever n this call uses)."""
        r = e
        for s in range(self.num_stages):
            centroids, counts = _kmeans(r, self.codebook_size, self.kmeans_iters, gen)
            self.codebooks[s] = centroids
            self.ema_cluster_size[s] = counts
            self.ema_embed_sum[s] = centroids * counts[:, None]
            r = r - centroids[_nearest(r, centroids)]
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, residuals: list[Tensor], codes: Tensor, gen: torch.Generator) -> Tensor:
        """EMA cluster sizes and sums of the stages run this step, new codewords, dead-code restarts.

        Every row updates every stage it reached, dropout or not: a stage's residual does not depend on
        whether later stages were dropped, so all rows are valid samples of its input distribution.
        Returns the number of codes restarted per stage.
        """
        k = self.codebook_size
        restarted = torch.zeros(len(residuals), dtype=torch.int64, device=codes.device)
        for s, r in enumerate(residuals):
            idx = codes[:, s]
            batch_size = torch.bincount(idx, minlength=k).to(r.dtype)
            batch_sum = torch.zeros(k, self.dim, dtype=r.dtype, device=r.device).index_add_(0, idx, r)
            self.ema_cluster_size[s].mul_(self.decay).add_(batch_size, alpha=1.0 - self.decay)
            self.ema_embed_sum[s].mul_(self.decay).add_(batch_sum, alpha=1.0 - self.decay)
            size = self.ema_cluster_size[s]
            total = size.sum()
            # Laplace smoothing: cluster sizes never reach 0, the total is preserved.
            smoothed = (size + _LAPLACE_EPS) / (total + k * _LAPLACE_EPS) * total
            self.codebooks[s] = self.ema_embed_sum[s] / smoothed[:, None]

            if self.dead_code_threshold > 0.0:
                dead = size < self.dead_code_threshold
                n_dead = int(dead.sum())
                if n_dead:
                    fresh = _sample_rows(r, n_dead, gen)
                    self.codebooks[s][dead] = fresh
                    # The restarted code starts at the threshold with a matching sum, so its codeword is exactly
                    # the sample; if it still attracts nothing it decays below the threshold and is re-drawn on
                    # the next step, until it lands somewhere the data uses.
                    self.ema_cluster_size[s][dead] = self.dead_code_threshold
                    self.ema_embed_sum[s][dead] = fresh * self.dead_code_threshold
                    restarted[s] = n_dead
        return restarted

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A checkpoint's codebooks must match this module's (S, K, D): say which hyperparameter differs.
        key = prefix + "codebooks"
        if key in state_dict and tuple(state_dict[key].shape) != tuple(self.codebooks.shape):
            raise CodecError(f"checkpoint codebooks {tuple(state_dict[key].shape)} do not fit (num_stages, "
                             f"codebook_size, dim) = {tuple(self.codebooks.shape)}")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


# ------------------------------------------------------------------------------------------ GroupResidualVQ


class GroupResidualVQ(nn.Module):
    """Group residual VQ (HiFi-Codec's GRVQ): the D channels split into G equal groups, one ResidualVQ each.

    Each group quantizes ``D / G`` channels with its own S stages, so a vector costs
    ``G * S * log2(K)`` bits; splitting lets small codebooks cover a wide latent. Group ``g`` is seeded
    with ``seed + g``. Under quantizer dropout every group of a batch element uses the same number of
    stages, so the bitrate stays one of ``G * n * log2(K)``.

    Same API as :class:`ResidualVQ`, with codes (..., G, n); keyword arguments go to every group.
    """

    def __init__(
        self,
        dim: int,
        groups: int = 4,
        codebook_size: int = 1024,
        num_stages: int = 8,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if groups < 1 or dim % groups:
            raise ValueError(f"dim {dim} must split into {groups} equal groups")
        self.dim = dim
        self.num_groups = groups
        self.group_dim = dim // groups
        self.num_stages = num_stages
        self.codebook_size = codebook_size
        self.quantizer_dropout = float(kwargs.get("quantizer_dropout", 0.0))
        self.seed = seed
        self.groups = nn.ModuleList(
            ResidualVQ(self.group_dim, codebook_size, num_stages, seed=seed + g, **kwargs) for g in range(groups)
        )

    def codebooks_numpy(self) -> np.ndarray:
        """float32 (G, S, K, D/G) numpy copy of every group's codebooks."""
        return np.stack([q.codebooks_numpy() for q in self.groups])

    def to_codes(self, x: Tensor | np.ndarray, n_stages: int | None = None) -> Tensor | np.ndarray:
        """Exact codes of ``x`` (..., D): (..., G, n); LongTensor on x's device, or int32 numpy."""
        if x.shape[-1] != self.dim:
            raise CodecError(f"to_codes: expected shape (..., {self.dim}), got {tuple(x.shape)}")
        parts = [q.to_codes(x[..., g * self.group_dim:(g + 1) * self.group_dim], n_stages)
                 for g, q in enumerate(self.groups)]
        return torch.stack(parts, dim=-2) if isinstance(x, Tensor) else np.stack(parts, axis=-2)

    def from_codes(self, codes: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Exact reconstruction (..., D) of codes (..., G, n): the groups' reconstructions side by side."""
        if codes.ndim < 2 or codes.shape[-2] != self.num_groups:
            raise CodecError(f"from_codes: expected codes (..., {self.num_groups}, n), got {tuple(codes.shape)}")
        parts = [q.from_codes(codes[..., g, :]) for g, q in enumerate(self.groups)]
        return torch.cat(parts, dim=-1) if isinstance(codes, Tensor) else np.concatenate(parts, axis=-1)

    def forward(self, x: Tensor, n_stages: int | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Quantize ``x`` (..., D) group by group: ``(quantized (..., D), codes (..., G, n), stats)``.

        ``stats``: ``loss`` and ``commitment`` summed over groups; the per-stage diagnostics stacked (G, n).
        """
        if x.shape[-1] != self.dim:
            raise CodecError(f"GroupResidualVQ: expected shape (..., {self.dim}), got {tuple(x.shape)}")
        first = self.groups[0]
        n = first._check_stages(n_stages)
        counts = None
        if self.training:
            # One dropout draw for all groups, from a stream of group 0's step generator that nothing else uses.
            counts = first._stage_counts(x, n, first._generator(stream=1))
        outs = [q._forward(x[..., g * self.group_dim:(g + 1) * self.group_dim], n, counts,
                           q._generator() if q.training else None)
                for g, q in enumerate(self.groups)]
        quantized = torch.cat([o[0] for o in outs], dim=-1)
        codes = torch.stack([o[1] for o in outs], dim=-2)
        stats: dict[str, Tensor] = {}
        for key in outs[0][2]:
            values = [o[2][key] for o in outs]
            stats[key] = torch.stack(values).sum() if key in ("loss", "commitment") else torch.stack(values)
        return quantized, codes, stats

