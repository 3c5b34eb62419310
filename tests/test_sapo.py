"""SAPO: the entropy bonus, the temperature's pull towards the target entropy, two averaged critics."""

import math

import pytest
import torch
from training_settings import TINY_TRAINING

from rfo_ros.algos.sapo import temperature_loss
from rfo_ros.config import load_config
from rfo_ros.nets.critic import CriticEnsemble
from rfo_ros.runner import Runner

TINY = [
    "algo=sapo",
    *TINY_TRAINING,
    "critic.ensemble=2",
    "run.total_env_steps=320",
    "sapo.alpha_lr=0.05",
]


def test_temperature_loss_by_hand():
    log_alpha = torch.tensor(0.0, requires_grad=True)
    log_prob = torch.tensor([-1.0, -3.0])  # entropy 2 against a target of -0.5: too random
    temperature_loss(log_alpha, log_prob, -0.5).backward()
    assert log_alpha.grad == pytest.approx(2.5)  # -(mean(log π) + H̄) = -(-2 - 0.5): descent lowers α


@pytest.mark.parametrize("init_log_std, direction", [(0.0, -1), (-4.0, +1)])
def test_temperature_moves_towards_the_target_entropy(tmp_path, init_log_std, direction):
    """A policy more random than the target (σ = 1) lowers α; a nearly deterministic one raises it."""
    runner = Runner(
        load_config(None, [*TINY, f"policy.init_log_std={init_log_std}"]), tmp_path, progress=False
    )
    bonus = runner.algo.bonus
    target = -0.5 * runner.env.action_dim
    alphas, entropies = [bonus.alpha], []
    for _ in range(4):
        metrics = runner.algo.iterate()
        alphas.append(metrics["Policy/alpha"])
        entropies.append(metrics["Policy/entropy"])
    assert all(direction * (e - target) < 0 for e in entropies)  # on the side the test means
    steps = [b - a for a, b in zip(alphas, alphas[1:], strict=False)]
    assert all(direction * s > 0 for s in steps), alphas


def test_entropy_bonus_enters_the_objective_and_the_critic_targets(tmp_path):
    """With α > 0 the window's rewards include -α log π; the plain SHAC window's do not."""
    # Each runner seeds torch's global generator: roll each window before building the next runner.
    sapo = Runner(load_config(None, [*TINY, "sapo.alpha_init=10.0"]), tmp_path / "sapo", progress=False)
    _, soft, _, samples = sapo.algo._window()
    shac = Runner(load_config(None, [*TINY, "algo=shac"]), tmp_path / "shac", progress=False)
    _, plain, _, _ = shac.algo._window()
    log_prob = sapo.actor.policy.log_prob(sapo.actor.normalizer(samples.obs), samples.z[:, 0])
    bonus = -10.0 * log_prob.reshape(soft["rew"].shape)
    # Same seed, same env, same initial weights: the plain rewards are the soft ones minus the bonus.
    assert torch.allclose(soft["rew"] - bonus, plain["rew"], atol=1e-4)
    assert bonus.abs().mean() > 1.0
    assert math.isclose(sapo.algo.bonus.alpha, 10.0, rel_tol=1e-6)


def test_two_critics_are_averaged_and_fitted_separately(tmp_path):
    runner = Runner(load_config(None, TINY), tmp_path, progress=False)
    critic = runner.algo.critic.critic
    assert isinstance(critic, CriticEnsemble) and len(critic.members) == 2
    obs = torch.randn(5, runner.env.obs_dim)
    a, b = (m(obs) for m in critic.members)
    assert not torch.allclose(a, b)  # independently initialised
    assert torch.allclose(critic(obs), (a + b) / 2)
    before = [p.detach().clone() for p in critic.parameters()]
    runner.algo.iterate()
    assert all(not torch.equal(x, y) for x, y in zip(before, critic.parameters(), strict=True))
