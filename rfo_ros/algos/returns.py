"""Return estimators as pure functions over (T, N) tensors.

``terminated`` stops bootstrapping (failure); ``done`` (terminated or truncated) stops the
λ-recursion at an episode boundary, where a truncated episode still bootstraps from ``next_values``
(the value of the state it reached, before the reset).
"""

from __future__ import annotations

import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates A_t (T, N).

    ``δ_t = r_t + γ (1 - term_t) V(s'_t) - V(s_t)``; ``A_t = δ_t + γ λ (1 - done_t) A_{t+1}``; the
    last step of the window bootstraps with its own ``next_values``. ``A + values`` is the TD(λ) target.
    """
    not_term = 1.0 - terminated.float()
    not_done = 1.0 - done.float()
    deltas = rewards + gamma * not_term * next_values - values
    adv = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * not_done[t] * running
        adv[t] = running
    return adv


def td_lambda_targets(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(λ) value targets G_t (T, N) = GAE advantages + V(s_t)."""
    return gae(rewards, values, next_values, terminated, done, gamma, lam) + values
