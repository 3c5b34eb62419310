"""The gait prior (rfo_ros/envs/gait.py): its clock and prior, the robot-file section, the task's use."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rfo_ros.envs import VecEnv, make_task
from rfo_ros.envs.gait import GaitPrior
from rfo_ros.robot import Robot, RobotError

GAIT_ROBOT = "config/robots/go1_fine_gait.yaml"


def _trot(dt: float = 0.02) -> GaitPrior:
    return GaitPrior(2.5, [0.0, 0.0, 0.5, 0.5], [0.0, 0.3, 0.0, 0.3], dt)


def test_prior_is_each_joints_lift_in_its_swing_half():
    gait = _trot()
    steps = torch.arange(20, dtype=torch.float64)  # one 0.4 s cycle at 2.5 Hz and 50 Hz
    phi = 2 * math.pi * 2.5 * 0.02 * steps
    prior = gait.prior(steps)
    assert torch.allclose(prior[:, 1], 0.3 * torch.clamp(torch.sin(phi), min=0), atol=1e-12)
    # Joint 3's leg is half a cycle on.
    assert torch.allclose(prior[:, 3], 0.3 * torch.clamp(-torch.sin(phi), min=0), atol=1e-12)
    assert torch.all(prior[:, 0] == 0) and torch.all(prior[:, 1] * prior[:, 3] == 0)  # pairs never both up
    assert torch.allclose(gait.clock(steps), torch.stack([torch.sin(phi), torch.cos(phi)], 1), atol=1e-12)


@pytest.mark.parametrize("ahead", [1, 3, 7])
def test_prior_from_the_clock_turned_ahead_is_the_prior_then(ahead):
    """What the exported graph does for a chunk's later steps: only the observed clock is needed."""
    gait = _trot()
    steps = torch.tensor([0.0, 4.0, 13.0, 101.0], dtype=torch.float64)
    turned = gait.prior_from_clock(gait.clock(steps), ahead=ahead)
    assert torch.allclose(turned, gait.prior(steps + ahead), atol=1e-12)


def test_bad_gait_sections_are_refused():
    with pytest.raises(ValueError, match="frequency_hz must be > 0"):
        GaitPrior(0.0, [0.0], [0.1], 0.02)
    with pytest.raises(ValueError, match="gait.phase has 2 values, gait.lift 1"):
        GaitPrior(2.0, [0.0, 0.5], [0.1], 0.02)


def test_a_gait_with_the_wrong_number_of_joints_is_refused_naming_it(tmp_path):
    path = tmp_path / "bad_gait.yaml"  # the MJCF is a world name in sim/: found from any folder
    path.write_text(open(GAIT_ROBOT).read().replace("phase: [0.0, 0.0, 0.0,", "phase: [0.0, 0.0,"))
    with pytest.raises(RobotError, match="gait.phase has 11 values for 12 joints"):
        Robot.load(path)


def test_task_observes_the_clock_and_adds_the_prior_that_resets_restart():
    task = make_task("legged", robot=GAIT_ROBOT)
    assert task.obs_layout.names[-1] == "gait_clock" and task.obs_dim == 50
    env = VecEnv(task, 4, seed=0)
    obs = env.reset()
    clock = obs[:, task.obs_layout.slice("gait_clock")]
    assert torch.allclose(clock, torch.tensor([[0.0, 1.0]] * 4, dtype=clock.dtype))
    zero = torch.zeros(4, task.action_dim)
    stand = task.joint_targets(zero)
    for _ in range(3):
        result = env.step(zero)
    assert torch.all(task.gait_steps == 3)
    expected = task.gait.clock(torch.full((4,), 3.0)).to(result.obs.dtype)
    assert torch.allclose(result.obs[:, task.obs_layout.slice("gait_clock")], expected, atol=1e-6)
    lifted = task.joint_targets(zero) - stand  # stand was at the clock's start, where sin φ = 0
    assert torch.allclose(lifted, task.gait.prior(task.gait_steps), atol=1e-12)
    assert lifted.abs().max() > 0.1
    task.resample(np.array([True, False, False, True]), env.rng)
    assert task.gait_steps.tolist() == [0.0, 3.0, 3.0, 0.0]


def test_the_prior_alone_steps_in_place_without_falling():
    """The shipped trot is a safe start: zero actions for 4 s, 8 envs, no fall, feet leave the ground."""
    task = make_task("legged", robot=GAIT_ROBOT)
    env = VecEnv(task, 8, seed=1)
    env.reset()
    zero = torch.zeros(8, task.action_dim)
    falls = 0
    for _ in range(200):
        falls += int(env.step(zero).terminated.sum())
    assert falls == 0


def test_robots_without_a_gait_are_unchanged():
    task = make_task("legged", robot="config/robots/go1_fine.yaml")
    assert "gait_clock" not in task.obs_layout.names and task.gait is None
    action = torch.rand(3, task.action_dim) * 2 - 1
    assert torch.equal(task.joint_targets(action), task.action_to_ctrl(action))


# --- deployment: the exported graph adds the prior from the observed clock; the controller keeps time --
def _gait_model(tmp_path, chunk: int = 3):
    from rfo_ros.checkpoint import save_checkpoint
    from rfo_ros.export import export_onnx
    from rfo_ros.nets.actor import Actor

    task = make_task("legged", robot=GAIT_ROBOT)
    torch.manual_seed(0)
    spec = {"obs_dim": task.obs_dim, "action_dim": task.action_dim, "hidden": (32, 32), "chunk": chunk}
    actor = Actor("flow", {**spec, "steps": 2})
    actor.normalizer.update(torch.randn(256, task.obs_dim) * 0.5)
    payload = {"task": "legged", "task_options": task.options(), "algo": "rfo", "actor": actor.spec(),
               "config": {}, "commit": "test", "iteration": 0, "env_steps": 0}  # fmt: skip
    save_checkpoint(tmp_path / "gait.pt", payload)
    report = export_onnx(tmp_path / "gait.pt", tmp_path / "gait.onnx", zero_noise=True)  # parity inside
    return task, actor.eval(), report


def test_exported_chunk_is_what_the_training_env_would_command_at_each_step(tmp_path):
    task, actor, report = _gait_model(tmp_path)
    assert report.parity_max_abs_error <= 1e-5 and report.metadata.gait is not None
    env = VecEnv(task, 2, seed=0)
    env.reset()
    for _ in range(5):  # the clock 5 steps on: the graph must turn it for the chunk's later steps
        obs = env.step(torch.zeros(2, task.action_dim)).obs
    from rfo_ros.evaluate import OnnxActor

    onnx_actor = OnnxActor(report.path)
    commands = onnx_actor.session.run(None, {"observation": obs.numpy().astype(np.float32)})[0]
    with torch.no_grad():
        actions = actor(obs, torch.zeros(2, 3, task.action_dim))[0]
    steps = task.gait_steps.clone()
    for k in range(3):
        task.gait_steps = steps + k
        np.testing.assert_allclose(commands[:, k], task.joint_targets(actions[:, k]).numpy(), atol=1e-4)
    task.gait_steps = steps
    # Mapped back to policy units (the prior taken off), the actions are the actor's own.
    np.testing.assert_allclose(onnx_actor(obs)[0].numpy(), actions.numpy(), atol=1e-4)
    # The prior at the observation's own step (what the teacher and bench chunks take off): the chunk's first.
    meta, values = report.metadata, obs.numpy().astype(np.float64)
    np.testing.assert_allclose(meta.step_prior(values), meta.chunk_prior(values)[:, 0], atol=1e-12)


def test_controller_feeds_its_own_clock_and_takes_the_prior_off_the_last_action(tmp_path):
    from rfo_ros.runtime import make_policy
    from rfo_ros.runtime.controller import Controller, ControllerConfig

    task, actor, report = _gait_model(tmp_path)
    meta = report.metadata
    policy = make_policy(report.path, provider="cpu")
    seen, infer = [], policy.infer

    def recording(obs, **kwargs):  # the observations the controller plans from
        seen.append(np.array(obs, dtype=np.float64))
        return infer(obs, **kwargs)

    policy.infer = recording
    config = ControllerConfig(tick_source="state", watchdog_timeout_s=1.0, max_joint_step=10.0)
    c = Controller(policy, config)
    clock = task.obs_layout.slice("gait_clock")
    for step in range(5):  # plans at steps 0 and 3 (C = 3)
        now = 0.02 * (step + 1)
        c.imu(np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3), now)
        c.odom(np.zeros(3), now)
        assert c.joint_state(meta.action_offset, np.zeros(12), now, stamp=now).command is not None
        planned_at = step - step % 3
        assert len(seen) == planned_at // 3 + 1
        np.testing.assert_allclose(seen[-1][clock], meta.gait.clock_at(planned_at), atol=1e-12)
        with torch.no_grad():
            want = actor(torch.as_tensor(seen[-1], dtype=torch.float32)[None], torch.zeros(1, 3, 12))[0]
        # The command executed at this step had the prior of this step added: taken off, it is the
        # actor's action for this step of the chunk (what training's last_action field holds).
        np.testing.assert_allclose(c.last_action, want[0, step - planned_at].numpy(), atol=1e-4)
