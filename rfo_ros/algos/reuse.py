"""Sample reuse for the short-horizon loop: many actor updates from one differentiable rollout.

Back-propagation through a window already yields, for every policy sample ``s`` (its raw observation
``o_s``, its noise ``ε_s``), the adjoint ``λ_s = dJ/dz_s`` of its executed latent: the *total*
derivative of the window objective through the simulator, the critic bootstrap and every later
action. Since θ enters J only through the samples,

    dJ/dθ = Σ_s λ_s · ∂z_θ(ε_s; o_s)/∂θ        (o_s held fixed)

so the surrogate ``L(θ) = -Σ_s λ_s · z_θ(ε_s; o_s)`` (``adjoint_surrogate``) has exactly the BPTT
gradient at θ_old. Further minibatch epochs on it reuse the expensive rollout (RPO, Zhong et al.
2025, carried to flows); the regularisers' ``reuse_weight`` (RFO: L_stab towards the window's own
(o, z_old) pairs) and dropping samples whose latent has moved more than ``max_latent_shift`` keep
the first-order model honest. ``epochs = 1`` is plain BPTT, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.config import DiffConfig
from rfo_ros.distributed import all_ranks, gather_cat
from rfo_ros.nets.actor import Actor


@dataclass
class WindowSamples:
    """The policy samples of one window, flattened over (chunk boundary, env): S = N·⌈H/C⌉.

    ``obs`` (S, D) raw observations, ``noise`` (S, C, m), ``z`` (S, C, m) executed latents (detached),
    ``adjoint`` (S, C, m) = dJ/dz, or None until the backward pass has run.
    """

    obs: torch.Tensor
    noise: torch.Tensor
    z: torch.Tensor
    adjoint: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.obs.shape[0]


def regenerate(actor: Actor, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The latent z_θ(ε; o) (B, C, m) the current actor maps stored noise to (differentiable in θ)."""
    return actor(obs, noise)[1]


def adjoint_surrogate(
    actor: Actor,
    obs: torch.Tensor,
    noise: torch.Tensor,
    adjoint: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``-Σ_s w_s λ_s · z_θ(ε_s; o_s)`` (a loss: scalar) and the regenerated latents (B, C, m).

    At θ_old (and w = 1) its gradient is the back-propagated gradient of -J. ``weight`` (B,) masks
    or scales samples (e.g. 0 for those outside the trust region).
    """
    z = regenerate(actor, obs, noise)
    return surrogate_loss(z, adjoint, weight), z


def surrogate_loss(
    z: torch.Tensor, adjoint: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """``-Σ_s w_s λ_s · z_s`` for regenerated latents z (B, C, m) and adjoints (B, C, m)."""
    per_sample = (adjoint * z).flatten(1).sum(-1)
    if weight is not None:
        per_sample = per_sample * weight
    return -per_sample.sum()


def clip_adjoints(adjoint: torch.Tensor, quantile: float) -> torch.Tensor:
    """Scale each sample's adjoint (S, C, m) down to at most the ``quantile`` of their norms.

    The pre-clip gradient of a contact-rich window is heavy-tailed (p99/median ~ 500 on the
    quadruped): a few samples would otherwise set the direction of a whole globally clipped step.
    Under torchrun the quantile is the whole batch's (every rank's norms), as in one process.
    """
    norms = adjoint.flatten(1).norm(dim=-1)
    cap = torch.quantile(gather_cat(norms), quantile)
    scale = torch.where(norms > cap, cap / norms.clamp_min(1e-30), torch.ones_like(norms))
    return adjoint * scale.reshape(-1, *([1] * (adjoint.dim() - 1)))


def latent_shift_rms(z_new: torch.Tensor, z_old: torch.Tensor) -> torch.Tensor:
    """Root-mean-square latent displacement per sample (B,) over its C·m dimensions."""
    return (z_new - z_old).flatten(1).pow(2).mean(-1).sqrt()


class SampleReuse:
    """The actor's updates from one window: ``first_step`` (epoch 1), then ``reuse`` (epochs 2..M of
    minibatch updates on the adjoint surrogate).

    ``terms`` are the actor's extra losses; each contributes with its ``reuse_weight``. Learning
    rates are ``reuse_lr_scale`` times the current (scheduled) ones. With ``reuse_until_env_steps``,
    the reuse epochs stop once ``set_env_steps`` reports that many env steps (plain BPTT from then on).
    """

    def __init__(self, cfg: DiffConfig, actor: Actor, optim: GuardedOptimizer) -> None:
        self.actor = actor
        self.epochs, self.minibatches = cfg.reuse_epochs, cfg.reuse_minibatches
        self.max_shift, self.lr_scale = cfg.reuse_max_latent_shift, cfg.reuse_lr_scale
        self.until = cfg.reuse_until_env_steps
        self.env_steps = 0
        self.optim = optim
        self.adjoint_quantile = cfg.adjoint_clip_quantile

    def set_env_steps(self, env_steps: int) -> None:
        """The run's env steps so far (every rank's), which ``reuse_until_env_steps`` is counted in."""
        self.env_steps = env_steps

    @property
    def active(self) -> bool:
        return self.epochs > 1 and (self.until is None or self.env_steps < self.until)

    def first_step(
        self,
        objective: torch.Tensor,
        extras: list[torch.Tensor],
        latents: list[torch.Tensor],
        samples: WindowSamples,
    ) -> tuple[float, bool]:
        """The window's own update (epoch 1) on ``-objective + Σ extras``; fills ``samples.adjoint``.

        Without adjoint clipping this is plain back-propagation (the latents' grads are retained to
        read λ when reuse is on). With it, λ comes first (``autograd.grad``), is clipped per sample,
        and the step is taken on the surrogate, whose gradient is BPTT's with the clipped adjoints.
        """
        if self.adjoint_quantile is None:
            if self.active:
                for z in latents:
                    z.retain_grad()
            loss = -objective
            for extra in extras:
                loss = loss + extra
            norm, applied = self.optim.step(loss)
            if self.active and applied:
                samples.adjoint = -torch.cat([z.grad for z in latents])  # loss = -J + terms free of z
            return norm, applied
        # A non-finite window still goes through ``optim.step`` (which skips and counts it), so that under
        # torchrun every rank takes part in the same gradient all-reduce.
        not_finite = torch.full((), float("nan"), device=objective.device)
        if not torch.isfinite(objective):
            return self.optim.step(not_finite)
        adjoint = torch.cat(torch.autograd.grad(objective, latents))
        if not torch.isfinite(adjoint).all():
            return self.optim.step(not_finite)
        samples.adjoint = clip_adjoints(adjoint, self.adjoint_quantile)
        loss, _ = adjoint_surrogate(self.actor, samples.obs, samples.noise, samples.adjoint)
        for extra in extras:
            loss = loss + extra
        norm, applied = self.optim.step(loss)
        if not applied:
            samples.adjoint = None
        return norm, applied

    def reuse(self, samples: WindowSamples, terms, lr_factor: float) -> dict[str, float]:
        """Update the actor in place; returns Policy/ metrics of the reuse steps (empty when M = 1)."""
        usable = samples.adjoint is not None and bool(torch.isfinite(samples.adjoint).all())
        if not self.active or not all_ranks(usable):  # every rank takes the same number of steps
            return {}
        actor, n = self.actor, len(samples)
        size = max(1, n // self.minibatches)
        scale = n / size  # each minibatch's surrogate estimates the full-window one
        self.optim.scale_lr(lr_factor * self.lr_scale)
        kept, shifts, norms, applied = [], [], [], 0
        for _ in range(self.epochs - 1):
            perm = torch.randperm(n)
            for start in range(0, n - size + 1, size):
                idx = perm[start : start + size]
                obs, z_old = samples.obs[idx], samples.z[idx]
                z_new = regenerate(actor, obs, samples.noise[idx])
                shift = latent_shift_rms(z_new.detach(), z_old)
                keep = (shift <= self.max_shift).to(z_old.dtype) if self.max_shift else None
                loss = scale * surrogate_loss(z_new, samples.adjoint[idx], keep)
                for term in terms:
                    if term.reuse_weight > 0:
                        term_loss = term.loss(actor, obs, z_old)
                        if term_loss is not None:
                            loss = loss + term.reuse_weight * term_loss
                norm, ok = self.optim.step(loss)
                applied += int(ok)
                norms.append(norm)
                shifts.append(float(shift.mean()))
                kept.append(1.0 if keep is None else float(keep.mean()))
        self.optim.scale_lr(lr_factor)
        return {
            "Policy/reuse_steps_applied": float(applied),
            "Policy/reuse_kept_fraction": sum(kept) / len(kept),
            "Policy/reuse_latent_shift_rms": sum(shifts) / len(shifts),
            "Policy/reuse_grad_norm_pre_clip": sum(norms) / len(norms),
        }
