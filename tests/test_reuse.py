"""Sample reuse (rfo_ros/algos/reuse.py): the adjoint surrogate's gradient is BPTT's, stored noise
regenerates the executed latents, and ``reuse_epochs: 1`` is the plain algorithm bit for bit."""

import pytest
import torch
from training_settings import TINY_TRAINING

from rfo_ros.algos.reuse import adjoint_surrogate, clip_adjoints, latent_shift_rms, regenerate
from rfo_ros.config import ConfigError, load_config
from rfo_ros.runner import Runner

TINY = [
    *TINY_TRAINING,
    "run.total_env_steps=320",
]
REUSE = [
    "diff.reuse_epochs=3",
    "diff.reuse_minibatches=2",
    "diff.reuse_lr_scale=0.5",
    "diff.reuse_max_latent_shift=0.1",
    "diff.reuse_lambda_stab=1.0",
]


def _runner(tmp_path, *overrides: str) -> Runner:
    return Runner(load_config(None, [*TINY, *overrides]), tmp_path, progress=False)


def _flat_grad(params) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in params])


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("algo, chunk", [("rfo", 1), ("rfo", 4), ("shac", 1)])
def test_surrogate_gradient_equals_backpropagated_gradient(tmp_path, float64, algo, chunk):
    """At θ_old, ∇θ[-Σ λ·z_θ(ε; o)] = ∇θ[-J] through the simulator, the bootstrap and later actions."""
    runner = _runner(tmp_path, f"algo={algo}", f"policy.chunk={chunk}")
    for _ in range(2):  # a trained critic and normaliser make the bootstrap and observations non-trivial
        runner.algo.iterate()
    objective, _, latents, samples = runner.algo._window()
    params = [p for p in runner.actor.policy.parameters() if p.requires_grad]
    runner.actor.zero_grad(set_to_none=True)  # the last update's gradients are still there
    for z in latents:  # one backward pass gives both (the simulator's VJPs run once per window)
        z.retain_grad()
    (-objective).backward()
    bptt = _flat_grad(params)
    adjoint = -torch.cat([z.grad for z in latents])
    runner.actor.zero_grad(set_to_none=True)
    loss, z = adjoint_surrogate(runner.actor, samples.obs, samples.noise, adjoint)
    loss.backward()
    surrogate = _flat_grad(params)
    assert bptt.dtype == torch.float64 and bptt.norm() > 0
    rel = (surrogate - bptt).norm() / bptt.norm()
    assert rel <= 1e-6, float(rel)
    assert torch.allclose(z, samples.z, rtol=0, atol=1e-12)


def test_regenerating_from_stored_noise_reproduces_the_executed_latent(tmp_path):
    runner = _runner(tmp_path, "policy.chunk=2")
    _, _, latents, samples = runner.algo._window()
    assert samples.noise.shape == samples.z.shape == (8 * 4, 2, runner.actor.action_dim)
    with torch.no_grad():
        again = regenerate(runner.actor, samples.obs, samples.noise)
    assert torch.allclose(again, samples.z, rtol=0, atol=1e-6)
    assert torch.allclose(torch.cat(latents).detach(), samples.z, rtol=0, atol=0)


class PlainBPTT:
    """The window's update as it was before sample reuse existed: one clipped step on -J + Σ extras.

    Written here, apart from ``SampleReuse``, so that it cannot drift with it: the reference of the
    bit-for-bit test below, run in the same process as the trainer it checks (no recorded digests,
    which would hold only on the machine that recorded them).
    """

    def __init__(self, optim) -> None:
        self.optim = optim

    def first_step(self, objective, extras, latents, samples) -> tuple[float, bool]:
        loss = -objective
        for extra in extras:
            loss = loss + extra
        return self.optim.step(loss)

    def reuse(self, samples, terms, lr_factor: float) -> dict[str, float]:
        return {}

    def set_env_steps(self, env_steps: int) -> None:
        pass


@pytest.mark.parametrize("algo", ["rfo", "shac"])
def test_one_reuse_epoch_is_the_plain_algorithm_bit_for_bit(tmp_path, algo):
    """``reuse_epochs: 1`` takes exactly the plain update, whatever the other reuse settings say: the
    same weights after 4 iterations as the trainer with the reuse piece replaced by ``PlainBPTT``."""
    # One runner at a time: a runner seeds the global generators its sampling draws from.
    def weights_after(runner: Runner, iterations: int) -> list[dict[str, torch.Tensor]]:
        for _ in range(iterations):
            runner.algo.iterate()
        return [runner.actor.state_dict(), runner.algo.critic.critic.state_dict()]

    reused = weights_after(_runner(tmp_path / "reuse", f"algo={algo}", *REUSE, "diff.reuse_epochs=1"), 4)
    plain = _runner(tmp_path / "plain", f"algo={algo}")
    plain.algo.update = PlainBPTT(plain.algo.optim)
    reference = weights_after(plain, 4)
    initial = weights_after(_runner(tmp_path / "initial", f"algo={algo}"), 0)
    for ours, ref, start in zip(reused, reference, initial, strict=True):
        assert ours.keys() == ref.keys()
        for key in ours:
            assert torch.equal(ours[key], ref[key]), key
        assert any(not torch.equal(ref[k], start[k]) for k in ref)  # the updates did move the weights


@pytest.mark.parametrize("algo", ["rfo", "shac"])
def test_reuse_epochs_take_extra_bounded_steps(tmp_path, algo):
    runner = _runner(tmp_path, f"algo={algo}", *REUSE)
    metrics = [runner.algo.iterate() for _ in range(3)]
    assert all(m["Policy/reuse_steps_applied"] == 4 for m in metrics)  # (3 - 1) epochs x 2 minibatches
    assert all(0 <= m["Policy/reuse_kept_fraction"] <= 1 for m in metrics)
    assert "Perf/reuse_s" in metrics[0]


def test_reuse_stops_at_its_env_step_limit(tmp_path):
    """``reuse_until_env_steps``: the first window (0 env steps taken) reuses, later ones do not."""
    runner = _runner(tmp_path, *REUSE, "diff.reuse_until_env_steps=1")
    first, second = runner.algo.iterate(), runner.algo.iterate()
    assert first["Policy/reuse_steps_applied"] == 4
    assert "Policy/reuse_steps_applied" not in second and second["Policy/update_applied"] == 1.0
    always = _runner(tmp_path / "always", *REUSE)
    always.algo.iterate()
    assert always.algo.iterate()["Policy/reuse_steps_applied"] == 4


def test_the_latent_shift_limit_drops_samples_from_the_surrogate(tmp_path):
    """Every reuse step follows an update, so with δ → 0 no sample is kept (the regularisers still
    act); with a huge δ every sample is."""
    tight = _runner(tmp_path / "tight", *REUSE, "diff.reuse_max_latent_shift=1e-12").algo.iterate()
    assert tight["Policy/reuse_kept_fraction"] == 0.0 and tight["Policy/reuse_steps_applied"] == 4
    loose = _runner(tmp_path / "loose", *REUSE, "diff.reuse_max_latent_shift=1e6").algo.iterate()
    assert loose["Policy/reuse_kept_fraction"] == 1.0


def test_adjoint_clipping_by_hand():
    adjoint = torch.tensor([[[3.0, 4.0]], [[0.6, 0.8]], [[0.0, 2.0]]])  # norms 5, 1, 2
    clipped = clip_adjoints(adjoint, 0.5)  # the median norm, 2
    assert torch.allclose(clipped.flatten(1).norm(dim=-1), torch.tensor([2.0, 1.0, 2.0]))
    assert torch.allclose(clipped[0], adjoint[0] * 0.4)  # direction kept
    assert torch.equal(clipped[1:], adjoint[1:])
    assert torch.allclose(latent_shift_rms(torch.ones(2, 1, 4), torch.zeros(2, 1, 4)), torch.ones(2))


def test_adjoint_clipping_trains_with_and_without_reuse(tmp_path):
    for extra in (["diff.reuse_epochs=1"], ["diff.reuse_epochs=2"]):
        runner = _runner(tmp_path, "diff.adjoint_clip_quantile=0.9", *extra)
        before = [p.detach().clone() for p in runner.actor.policy.parameters()]
        metrics = runner.algo.iterate()
        assert metrics["Policy/update_applied"] == 1.0
        after = list(runner.actor.policy.parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


@pytest.mark.parametrize(
    "override, field",
    [
        ("diff.reuse_epochs=0", "diff.reuse_epochs"),
        ("diff.reuse_minibatches=0", "diff.reuse_minibatches"),
        ("diff.reuse_lr_scale=1.5", "diff.reuse_lr_scale"),
        ("diff.reuse_lr_scale=0", "diff.reuse_lr_scale"),
        ("diff.reuse_max_latent_shift=-0.1", "diff.reuse_max_latent_shift"),
        ("diff.reuse_lambda_stab=-1", "diff.reuse_lambda_stab"),
        ("diff.adjoint_clip_quantile=0", "diff.adjoint_clip_quantile"),
        ("diff.adjoint_clip_quantile=1.5", "diff.adjoint_clip_quantile"),
        ("diff.reuse_epoch=2", "diff.reuse_epoch: unknown key"),
        ("diff.optimizer=sgd", "diff.optimizer"),
        ("critic.ensemble=0", "critic.ensemble"),
        ("sapo.alpha_init=0", "sapo.alpha_init"),
        ("sapo.alpha_lr=-1", "sapo.alpha_lr"),
    ],
)
def test_new_config_keys_reject_bad_values(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config(None, [override])


def test_the_window_objective_is_its_pieces_returns_plus_their_bootstraps(tmp_path):
    """J of a window, written out per env and step from the window's own record: each episode piece's
    discounted return, plus γ^k·V(final state) where it closes without a failure (the window's end or a
    truncation), over N·H. The trainer takes the bootstrap values in one batch after the rollout."""
    runner = _runner(tmp_path, "algo=rfo")
    for _ in range(2):  # a trained critic: the bootstrap is not ~0
        runner.algo.iterate()
    objective, data, _, _ = runner.algo._window()
    rew, term, done, v_next = (data[k].double() for k in ("rew", "term", "done", "v_next"))
    horizon, n = rew.shape
    gamma, total = runner.cfg.gamma, 0.0
    for env in range(n):
        ret, discount = 0.0, 1.0
        for t in range(horizon):
            ret += discount * float(rew[t, env])
            discount *= gamma
            if done[t, env] or t == horizon - 1:
                total += ret + (0.0 if term[t, env] else discount * float(v_next[t, env]))
                ret, discount = 0.0, 1.0
    assert float(v_next.abs().max()) > 0.1
    assert float(objective) == pytest.approx(total / (n * horizon), rel=1e-5)
