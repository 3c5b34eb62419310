"""RFO's differentiable fall barrier (``diff.lambda_fall``, rfo_ros/algos/fall_barrier.py)."""

import math

import numpy as np
import pytest
import torch
from training_settings import TINY_TRAINING

from rfo_ros.algos.fall_barrier import FallBarrier
from rfo_ros.config import load_config
from rfo_ros.envs import make_task
from rfo_ros.envs.legged import yaw_quat
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.runner import Runner
from rfo_ros.sim.autograd import SimState


def _tilted_quat(deg: float) -> torch.Tensor:
    """(w, x, y, z) of a roll by ``deg`` degrees."""
    half = math.radians(deg) / 2
    return torch.tensor([math.cos(half), math.sin(half), 0.0, 0.0], dtype=torch.float64)


def test_the_proximity_is_zero_standing_and_one_at_either_termination_bound():
    task = make_task("quadruped")  # trunk dropped from 0.30 m, ends below 0.15 m or past 60 degrees
    qpos = task.initial_state(4, np.random.default_rng(0)).qpos.clone()
    qpos[:, 3:7] = torch.from_numpy(yaw_quat(np.zeros(4)))
    qpos[1, 2] = task.min_height  # at the height bound
    qpos[2, 3:7] = _tilted_quat(task.max_tilt_deg)  # at the tilt bound
    qpos[3, 2] = (task.min_height + task.start_height) / 2 - 0.02  # sinking, inside the soft zone
    qpos.requires_grad_(True)
    proximity = task.fall_proximity(SimState(qpos, torch.zeros(4, task.model.nv), torch.zeros(4, 0)))
    assert proximity[0].item() == 0.0
    assert proximity[1].item() == pytest.approx(1.0) and proximity[2].item() == pytest.approx(1.0)
    assert 0 < proximity[3].item() < 0.25
    (grad,) = torch.autograd.grad(proximity[3], qpos)
    assert grad[3, 2] < 0  # higher is safer: the gradient points up


def test_the_barrier_enters_the_windows_reward_not_the_reported_return():
    task = make_task("quadruped")
    env = VecEnv(task, 2, seed=0, threads=1)
    env.reset()
    sunk = env.state.qpos.clone()
    sunk[0, 2] = (task.min_height + task.start_height) / 2 - 0.03  # env 0 low, env 1 standing
    env.state = SimState(sunk, torch.zeros_like(env.state.qvel), env.state.act)
    plain = VecEnv(make_task("quadruped"), 2, seed=0, threads=1)
    plain.reset()
    plain.state = SimState(sunk.clone(), torch.zeros_like(env.state.qvel), env.state.act)
    barrier = FallBarrier(env, weight=2.0)
    action, plain_action = torch.zeros(2, 12, requires_grad=True), torch.zeros(2, 12, requires_grad=True)
    shaped, reference = barrier.step(action), plain.step(plain_action)
    penalty = (reference.reward - shaped.reward).detach()
    expected = 2.0 * task.fall_proximity(env.state).detach()
    torch.testing.assert_close(penalty, expected.to(penalty.dtype))
    assert penalty[0] > 0 and penalty[1] == 0
    np.testing.assert_array_equal(env.episode_return, plain.episode_return)  # what training reports
    # The gradient sees the barrier through the step: the low env's action gradient changes.
    (grad,) = torch.autograd.grad(shaped.reward[0], action)
    (plain_grad,) = torch.autograd.grad(reference.reward[0], plain_action)
    assert torch.isfinite(grad).all() and not torch.allclose(grad, plain_grad)


def test_a_run_with_the_barrier_trains_and_a_task_without_falls_is_refused(tmp_path):
    runner = Runner(
        load_config(None, [*TINY_TRAINING, "algo=rfo", "env.task=quadruped", "diff.lambda_fall=1.0"]),
        tmp_path / "run",
        progress=False,
    )
    assert isinstance(runner.algo.env, FallBarrier)
    row = runner.algo.iterate()
    assert math.isfinite(row["Loss/actor"])
    with pytest.raises(ValueError, match="diff.lambda_fall: task CartpoleSwingUp has no fall condition"):
        Runner(
            load_config(None, [*TINY_TRAINING, "algo=rfo", "env.task=cartpole", "diff.lambda_fall=1.0"]),
            tmp_path / "cartpole",
            progress=False,
        )
