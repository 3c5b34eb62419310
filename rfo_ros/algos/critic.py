"""Value learning shared by every algorithm: critic, Polyak target, minibatch regression.

The critic reads its own observation (``StepResult.critic_obs``): the actor's, or the actor's plus
privileged fields (``rfo_ros.envs.privileged``). Without privileged fields it shares the actor's
normaliser, which the algorithm updates; with them it owns one of its own (``own_normalizer``).
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional as F

from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.returns import td_lambda_targets
from rfo_ros.config import CriticConfig
from rfo_ros.nets.critic import Critic, CriticEnsemble
from rfo_ros.nets.normalizer import ObsNormalizer


class CriticLearner:
    """V_φ with a Polyak-averaged target V_φ̄ (used for bootstraps in the differentiable window).

    ``normalizer`` scales the critic's observations: the actor's own (shared, updated by the algorithm)
    or, with ``own_normalizer``, one that ``update_normalizer`` updates and the checkpoint carries.
    """

    def __init__(
        self,
        critic: Critic | CriticEnsemble,
        cfg: CriticConfig,
        normalizer: ObsNormalizer,
        own_normalizer: bool = False,
    ) -> None:
        self.critic = critic
        self.target = copy.deepcopy(critic).requires_grad_(False)
        self.cfg = cfg
        self.optim = GuardedOptimizer(critic.parameters(), lr=cfg.lr, clip=10.0)
        self.normalizer, self.own_normalizer = normalizer, own_normalizer

    def update_normalizer(self, critic_obs: torch.Tensor) -> None:
        """Fold raw critic observations (..., D) into the critic's own normaliser (shared: the actor's
        is the algorithm's to update)."""
        if self.own_normalizer:
            self.normalizer.update(critic_obs)

    def fit(self, obs_norm: torch.Tensor, targets: torch.Tensor) -> float:
        """Regress V(obs_norm (B, D)) onto targets (B,) for ``cfg.iterations`` minibatches (squared error, or
        the Huber loss with ``cfg.huber_delta``); returns the mean squared error."""
        obs_norm, targets = obs_norm.detach(), targets.detach()
        n = obs_norm.shape[0]
        size = max(1, n // self.cfg.minibatches)
        losses = []
        for _ in range(self.cfg.iterations):
            idx = torch.randint(0, n, (size,))
            # Summed over the ensemble's members, so each fits the targets on its own.
            errors = [member(obs_norm[idx]) - targets[idx] for member in self.critic.members]
            squared = sum((e**2).mean() for e in errors)
            self.optim.step(squared if self.cfg.huber_delta is None else sum(map(self._huber, errors)))
            losses.append(squared.item())  # the squared error is logged either way, to compare runs
        self.update_target()
        return sum(losses) / len(losses)

    def _huber(self, error: torch.Tensor) -> torch.Tensor:
        """Twice the Huber loss (so it equals the squared error inside the width), mean over the batch."""
        return 2.0 * F.huber_loss(error, torch.zeros_like(error), delta=self.cfg.huber_delta)

    def fit_td(self, window: dict[str, torch.Tensor], gamma: float, lam: float) -> float:
        """Fit TD(λ) targets of a rolled window (T, N) of ``critic_obs``, ``rew``, ``v_next``, ``term`` and
        ``done`` (values from the target critic), then fold the window into the normaliser; mean loss."""
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        norm_obs = self.normalizer(window["critic_obs"]).detach()
        with torch.no_grad():
            values = self.target(norm_obs)
        targets = td_lambda_targets(
            window["rew"], values, window["v_next"], window["term"], window["done"], gamma, lam
        )
        loss = self.fit(flat(norm_obs), flat(targets))
        self.update_normalizer(flat(window["critic_obs"]))
        return loss

    @torch.no_grad()
    def update_target(self) -> None:
        tau = self.cfg.target_tau
        for p_t, p in zip(self.target.parameters(), self.critic.parameters(), strict=True):
            p_t.lerp_(p, tau)

    def state_dict(self) -> dict:
        state = {
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "optim": self.optim.state_dict(),
        }
        if self.own_normalizer:
            state["normalizer"] = self.normalizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        self.optim.load_state_dict(state["optim"])
        if self.own_normalizer:
            if "normalizer" not in state:
                raise ValueError("the checkpoint's critic has no privileged observation (env.critic_obs)")
            self.normalizer.load_state_dict(state["normalizer"])
