"""The action-rate reward term: its value, its gradient on the differentiable path, its config, and
evaluation's measure of how jumpy a policy's commands are."""

from __future__ import annotations

import pytest
import torch

from rfo_ros.config import ConfigError, load_config
from rfo_ros.envs import make_task
from rfo_ros.envs.shaping import ActionRate, make_shaping
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.evaluate import evaluate


def test_action_rate_is_minus_the_weighted_squared_change_per_env():
    a = torch.tensor([[0.5, -0.5], [1.0, 1.0]])
    prev = torch.tensor([[0.0, 0.5], [1.0, 1.0]])
    # env 0: 0.5² + 1² = 1.25; env 1: no change
    torch.testing.assert_close(ActionRate(0.2)(a, prev), torch.tensor([-0.25, 0.0]))
    assert make_shaping(0.0) == () and isinstance(make_shaping(0.3)[0], ActionRate)
    with pytest.raises(ValueError, match="> 0"):
        ActionRate(0.0)


def _two_steps(weight: float, a0: torch.Tensor, a1: torch.Tensor):
    """Rewards of two steps from the same reset, and d(r0 + r1)/d(a0, a1)."""
    env = VecEnv(make_task("quadruped"), 3, seed=4, threads=1, shaping=make_shaping(weight))
    env.reset()
    a0, a1 = a0.clone().requires_grad_(), a1.clone().requires_grad_()
    r0 = env.step(a0).reward
    r1 = env.step(a1).reward
    grads = torch.autograd.grad((r0 + r1).sum(), (a0, a1))
    return r0.detach(), r1.detach(), grads


def test_vec_env_adds_it_to_the_task_reward_with_its_gradient_on_both_actions():
    gen = torch.Generator().manual_seed(0)
    a0, a1 = (torch.rand(3, 12, dtype=torch.float64, generator=gen) * 0.8 - 0.4 for _ in range(2))
    w = 0.5
    r0, r1, (g0, g1) = _two_steps(0.0, a0, a1)
    s0, s1, (h0, h1) = _two_steps(w, a0, a1)
    # After a reset the previous action is zero: the first step pays for |a_0|².
    torch.testing.assert_close(s0, r0 - w * (a0**2).sum(1).float())
    torch.testing.assert_close(s1, r1 - w * ((a1 - a0) ** 2).sum(1).float())
    # d/da0 of -w(|a0|² + |a1 - a0|²) = -2w·a0 + 2w(a1 - a0); d/da1 = -2w(a1 - a0).
    torch.testing.assert_close(h0 - g0, -2 * w * a0 + 2 * w * (a1 - a0))
    torch.testing.assert_close(h1 - g1, -2 * w * (a1 - a0))


def test_action_rate_config_rejects_a_negative_weight():
    with pytest.raises(ConfigError, match="env.action_rate"):
        load_config(None, ["env.action_rate=-0.1"])
    assert load_config(None, ["env.action_rate=0.2"]).env.action_rate == 0.2


class _Alternating:
    """A policy that flips every action between +x and -x each step (chunk 1)."""

    chunk, action_dim = 1, 1

    def __init__(self, x: float) -> None:
        self.x, self.sign = x, 1.0

    def __call__(self, obs, noise=None):
        self.sign = -self.sign
        return torch.full((obs.shape[0], 1, self.action_dim), self.sign * self.x), None


def test_evaluate_reports_the_rms_change_of_the_commands():
    out = evaluate(_Alternating(0.25), "cartpole", 2, seed=0, deterministic=False)
    assert out["length_mean"] > 2
    assert out["action_change_mean"] == pytest.approx(0.5)  # |0.25 - (-0.25)| on every step after the first


def test_the_training_config_puts_it_in_the_trainers_env(tmp_path):
    from rfo_ros.runner import Runner

    cfg = load_config(
        None, ["env.task=cartpole", "env.num_envs=2", "env.action_rate=0.3", "policy.hidden=[8]"]
    )
    (term,) = Runner(cfg, tmp_path / "run", progress=False).env.shaping
    assert isinstance(term, ActionRate) and term.weight == 0.3
    cfg = load_config(None, ["env.task=cartpole", "env.num_envs=2", "policy.hidden=[8]"])
    assert Runner(cfg, tmp_path / "plain", progress=False).env.shaping == ()
