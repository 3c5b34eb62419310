"""Worked numbers for the pure maths: returns, CFM, the FPO ratio, Euler integration, the NaN guard."""

import math

import pytest
import torch
from torchdiffeq import odeint

from rfo_ros.algos.cfm import ExplorationRegularizer, StabilityRegularizer
from rfo_ros.algos.fpo import FlowMatchingRatio
from rfo_ros.algos.on_policy import clipped_surrogate
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.ppo import GaussianRatio
from rfo_ros.algos.returns import gae, td_lambda_targets
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.flow import FlowPolicy, euler_integrate


def test_gae_two_steps_by_hand():
    g, lam = 0.9, 0.5
    r = torch.tensor([[1.0], [2.0]])
    v = torch.tensor([[0.5], [1.0]])
    v_next = torch.tensor([[1.0], [3.0]])
    no = torch.zeros(2, 1, dtype=torch.bool)
    adv = gae(r, v, v_next, no, no, g, lam)
    d1 = 2.0 + 0.9 * 3.0 - 1.0
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    assert adv[1, 0].item() == pytest.approx(d1)
    assert adv[0, 0].item() == pytest.approx(d0 + g * lam * d1)


def test_td_lambda_stops_at_termination_and_bootstraps_at_truncation():
    r = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    v = torch.zeros(2, 2)
    v_next = torch.full((2, 2), 10.0)
    term = torch.tensor([[True, False], [False, False]])
    done = torch.tensor([[True, True], [False, False]])  # env 0 failed, env 1 truncated at t=0
    targets = td_lambda_targets(r, v, v_next, term, done, 0.9, 0.95)
    assert targets[0, 0].item() == pytest.approx(1.0)  # failure: no bootstrap
    assert targets[0, 1].item() == pytest.approx(1.0 + 0.9 * 10.0)  # truncation: bootstrap, no λ-tail


def test_euler_integrates_a_constant_field_exactly_and_matches_torchdiffeq():
    x0 = torch.randn(3, 4)
    c = torch.randn(4)
    assert torch.allclose(euler_integrate(lambda x, u: c.expand_as(x), x0, 5), x0 + c, atol=1e-6)

    torch.manual_seed(0)
    policy = FlowPolicy(obs_dim=3, action_dim=2, chunk=2, steps=6)
    obs, noise = torch.randn(5, 3), torch.randn(5, 2, 2)
    z_ours = policy.latent(obs, noise)
    feat = policy.features(obs)
    ref = odeint(
        lambda u, x: policy.velocity(x, u.expand(x.shape[0]), feat),
        noise.reshape(5, 4),
        torch.tensor([0.0, 1.0]),
        method="euler",
        options={"step_size": 1 / 6},
    )[-1]
    assert torch.allclose(z_ours.reshape(5, 4), ref, atol=1e-5)


def test_the_split_euler_solve_has_the_plain_solves_value_and_gradients():
    """``FlowPolicy.latent`` computes the first layer's observation and time parts once; the value and
    every parameter's gradient equal those of the plain Euler solve of ``velocity``."""
    torch.manual_seed(1)
    policy = FlowPolicy(obs_dim=6, action_dim=3, chunk=2, steps=4, hidden=[32, 16])
    obs, noise = torch.randn(7, 6), torch.randn(7, 2, 3)
    weights = torch.randn(7, 2, 3)

    def grads(z):
        policy.zero_grad()
        (weights * z).sum().backward()
        return [p.grad.clone() for p in policy.parameters()]

    z_split = policy.latent(obs, noise)
    g_split = grads(z_split)
    feat = policy.features(obs)
    z_plain = euler_integrate(lambda x, u: policy.velocity(x, u, feat), noise.reshape(7, 6), 4)
    g_plain = grads(z_plain.reshape(7, 2, 3))
    assert torch.allclose(z_split, z_plain.reshape(7, 2, 3), atol=1e-6)
    for a, b in zip(g_split, g_plain, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("chunk", [1, 4])
def test_chunk_shapes(chunk):
    actor = Actor("flow", {"obs_dim": 7, "action_dim": 3, "chunk": chunk, "steps": 2, "hidden": [16]})
    actions, z = actor(torch.randn(5, 7))
    assert actions.shape == z.shape == (5, chunk, 3)
    assert actions.abs().max() <= 1.0
    det1, _ = actor(torch.ones(2, 7), torch.zeros(2, chunk, 3))
    det2, _ = actor(torch.ones(2, 7), torch.zeros(2, chunk, 3))
    assert torch.equal(det1, det2)  # zero-noise mode is deterministic


def test_cfm_regularisers_decrease_when_fitting_a_fixed_target():
    torch.manual_seed(0)
    actor = Actor("flow", {"obs_dim": 4, "action_dim": 2, "chunk": 2, "steps": 4, "hidden": [64, 64]})
    obs = torch.randn(256, 4)
    z = torch.tanh(obs[:, :2]).repeat(1, 2).reshape(256, 2, 2) * 1.5
    stab = StabilityRegularizer(weight=1.0, batch=256)
    assert stab.loss(actor, obs, z) is None  # nothing generated yet
    stab.end_iteration(obs, z)
    expl = ExplorationRegularizer(weight=1.0, batch=256, clip=0.98)
    opt = torch.optim.Adam(actor.parameters(), lr=3e-3)
    for reg in (stab, expl):
        torch.manual_seed(1)
        first = reg.loss(actor, obs, z).item()
        for _ in range(300):
            loss = reg.loss(actor, obs, z)
            opt.zero_grad()
            loss.backward()
            opt.step()
        torch.manual_seed(1)
        assert reg.loss(actor, obs, z).item() < 0.7 * first


def test_fpo_ratio_is_one_at_old_parameters_and_moves_after_a_step():
    torch.manual_seed(0)
    actor = Actor("flow", {"obs_dim": 4, "action_dim": 2, "steps": 3, "hidden": [32]})
    ratio = FlowMatchingRatio(clip=0.05, n_mc=8)
    obs = torch.randn(16, 4)
    with torch.no_grad():
        _, z = actor(obs)
        old = ratio.record(actor, obs, z)
    assert torch.allclose(ratio.log_ratio(actor, obs, z, old), torch.zeros(16), atol=1e-6)
    loss = clipped_surrogate(ratio.log_ratio(actor, obs, z, old), torch.ones(16), 0.05)
    loss.backward()
    torch.optim.SGD(actor.parameters(), lr=0.1).step()
    assert ratio.log_ratio(actor, obs, z, old).abs().max() > 1e-4


def test_ppo_ratio_is_one_at_old_parameters():
    actor = Actor("gaussian", {"obs_dim": 4, "action_dim": 2, "hidden": [32]})
    ratio = GaussianRatio(clip=0.2)
    obs = torch.randn(8, 4)
    with torch.no_grad():
        _, z = actor(obs)
        old = ratio.record(actor, obs, z)
    assert torch.allclose(ratio.log_ratio(actor, obs, z, old), torch.zeros(8), atol=1e-6)


def test_clipped_surrogate_by_hand():
    log_ratio = torch.log(torch.tensor([1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0])
    # min(1.5*1, 1.2*1) = 1.2 ; min(0.5*-1, 0.8*-1) = -0.8 -> loss = -(1.2 - 0.8)/2
    assert clipped_surrogate(log_ratio, adv, 0.2).item() == pytest.approx(-0.2)


def test_guarded_optimizer_skips_non_finite_updates():
    w = torch.nn.Parameter(torch.ones(3))
    opt = GuardedOptimizer([w], lr=0.1, clip=1.0)
    norm, applied = opt.step((w * float("nan")).sum())
    assert not applied and opt.skipped == 1 and torch.equal(w.data, torch.ones(3))
    norm, applied = opt.step((w * 2).sum())
    assert applied and math.isfinite(norm) and not torch.equal(w.data, torch.ones(3))


def test_image_observations_keep_their_leading_dims():
    from rfo_ros.nets.encoders import ObsSplit

    split = ObsSplit(obs_dim=5 + 64, image_shape=(1, 8, 8), image_features=7)
    assert split(torch.randn(3, 69)).shape == (3, 12)
    assert split(torch.randn(4, 3, 69)).shape == (4, 3, 12)  # (time, batch, D) as the critic sees it


def _critic_after_one_fit(huber_delta, targets):
    from rfo_ros.algos.critic import CriticLearner
    from rfo_ros.config import CriticConfig
    from rfo_ros.nets.critic import Critic
    from rfo_ros.nets.normalizer import ObsNormalizer

    torch.manual_seed(3)
    cfg = CriticConfig(hidden=(16,), iterations=1, minibatches=1, huber_delta=huber_delta)
    learner = CriticLearner(Critic(4, cfg.hidden), cfg, ObsNormalizer(4))
    obs = torch.randn(64, 4)
    torch.manual_seed(4)  # the same minibatch draw in both fits
    loss = learner.fit(obs, targets(learner.critic(obs).detach()))
    return learner, loss


def test_the_huber_critic_fits_small_errors_as_the_squared_error_and_bounds_a_falls_pull():
    near = lambda v: v + 0.01  # noqa: E731 - every error inside the width
    plain, plain_loss = _critic_after_one_fit(None, near)
    huber, huber_loss = _critic_after_one_fit(5.0, near)
    assert huber_loss == pytest.approx(plain_loss)
    for a, b in zip(plain.critic.parameters(), huber.critic.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)

    # A fall (its target drops to 0, 200 below the value) pulls on the critic no harder than an error of
    # the width: the loss's gradient per sample is clipped at 2·delta/B, where the squared error's is 2e/B.
    errors = torch.tensor([-200.0, -50.0, 3.0, 0.5], requires_grad=True)
    huber._huber(errors).backward()
    assert errors.grad.tolist() == pytest.approx([-2.5, -2.5, 1.5, 0.25])
