"""The observation history (``env.obs_history: K``): K frames oldest first, in training and in the node."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from rfo_ros.config import ConfigError, load_config
from rfo_ros.envs import make_task, task_from_config, task_options_from_metadata
from rfo_ros.envs.legged_obs import FrameHistory
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.sim.batched import FDConfig

K = 3


def test_frame_history_stacks_oldest_first_and_the_first_frame_fills_the_older_slots():
    h = FrameHistory(K)
    a, b, c, d, e = (np.full((2, 2), v) for v in (1.0, 2.0, 3.0, 4.0, 5.0))
    np.testing.assert_array_equal(h.stack(a), np.concatenate([a, a, a], -1))  # nothing stored yet
    assert h.stored == []
    np.testing.assert_array_equal(h.push(a), np.concatenate([a, a, a], -1))
    np.testing.assert_array_equal(h.push(b), np.concatenate([a, a, b], -1))
    np.testing.assert_array_equal(h.push(c), np.concatenate([a, b, c], -1))
    np.testing.assert_array_equal(h.push(d), np.concatenate([b, c, d], -1))
    np.testing.assert_array_equal(h.stack(e), np.concatenate([c, d, e], -1))  # not stored
    np.testing.assert_array_equal(h.current(), np.concatenate([b, c, d], -1))
    restarted = h.restart(np.array([False, True]), e)
    np.testing.assert_array_equal(restarted[0], np.concatenate([b, c, d], -1)[0])
    np.testing.assert_array_equal(restarted[1], np.full(6, 5.0))
    h.clear()
    np.testing.assert_array_equal(h.push(e), np.full((2, 6), 5.0))
    one = FrameHistory(1)
    assert one.push(a) is a and one.stack(b) is b
    for bad in (0, 1.5, "3", True):
        with pytest.raises(ValueError, match="frames must be a positive integer"):
            FrameHistory(bad)


def history_env(n: int = 2) -> VecEnv:
    task = make_task("quadruped", base_lin_vel=False, obs_history=K)
    return VecEnv(task, n, seed=3, threads=1, fd=FDConfig(overlap=False))


def test_the_env_observes_its_last_frames_and_a_reset_env_starts_afresh():
    env = history_env()
    d = env.task.obs_dim
    assert d == 45 and env.obs_dim == K * d
    obs = env.reset()
    frames = [env.observe_frame()]  # no sensor noise: the same frame again
    torch.testing.assert_close(obs, torch.cat([frames[0]] * K, 1), rtol=0, atol=0)
    torch.manual_seed(0)
    for t in range(1, 5):
        result = env.step(torch.rand(2, 12) * 2 - 1)
        frames.append(env.observe_frame())  # the task's own observation of the state reached
        window = [frames[max(t - j, 0)] for j in range(K - 1, -1, -1)]
        torch.testing.assert_close(result.obs, torch.cat(window, 1), rtol=0, atol=0)
    env.episode_step[1] = env.task.info.episode_length - 1  # env 1 times out at the next step
    result = env.step(torch.zeros(2, 12))
    assert result.truncated.tolist() == [False, True]
    fresh = env.observe_frame()[1]
    torch.testing.assert_close(result.obs[1], torch.cat([fresh] * K), rtol=0, atol=0)
    torch.testing.assert_close(result.obs[0], result.final_obs[0], rtol=0, atol=0)  # env 0 goes on
    assert not torch.equal(result.final_obs[1, -d:], fresh)  # the state it reached, before the reset
    env.close()


def test_the_gradient_reaches_past_actions_through_the_stored_frames_until_detach():
    env = history_env()
    env.reset()
    first = torch.zeros(2, 12, requires_grad=True)
    env.step(first)
    env.step(torch.zeros(2, 12))
    obs = env.step(torch.zeros(2, 12)).obs
    d = env.task.obs_dim
    # The oldest frame (after the first step) observes ``first`` as its last action and its motion.
    (grad,) = torch.autograd.grad(obs[:, :d].sum(), first)
    assert grad.abs().sum() > 0
    env.detach()
    assert all(frame.grad_fn is None for frame in env.history.stored)
    env.close()


def test_a_history_env_resumes_exactly():
    env = history_env()
    env.reset()
    for _ in range(4):
        env.step(torch.full((2, 12), 0.2))
    saved = env.state_dict()
    expected = [env.step(torch.full((2, 12), -0.1)).obs for _ in range(3)]
    other = history_env()
    other.load_state_dict(saved)
    again = [other.step(torch.full((2, 12), -0.1)).obs for _ in range(3)]
    torch.testing.assert_close(torch.stack(again), torch.stack(expected), rtol=0, atol=0)
    env.close()
    other.close()


def test_bad_history_settings_give_clear_errors():
    with pytest.raises(ConfigError, match="obs_history.*greater than or equal to 1"):
        load_config(None, ["env.task=quadruped", "env.obs_history=0"])
    with pytest.raises(ValueError, match=r"takes no options \(got obs_history\)"):
        task_from_config("cartpole", obs_history=K)
    with pytest.raises(ValueError, match="the depth task observes one frame"):
        task_from_config("quadruped_depth", obs_history=K)
    with pytest.raises(ValueError, match="obs_history must be a positive integer"):
        make_task("quadruped", obs_history=0)


def test_an_exported_history_model_carries_its_frames_and_is_evaluated_with_them(tmp_path):
    from rfo_ros.bench import robust
    from rfo_ros.bench.latency import export_untrained_policy
    from rfo_ros.runtime import load_metadata

    model = export_untrained_policy(
        tmp_path / "history.onnx", base_lin_vel=False, obs_history=K, flow_steps=1, chunk=1
    )
    meta = load_metadata(model)
    assert meta.obs_dim == K * 45
    written = json.loads(meta.extra["obs_layout"])
    assert (written["size"], written["frame_size"], written["history"]) == (
        135,
        45,
        K,
    )
    options = task_options_from_metadata(meta.robot)
    assert options["obs_history"] == K and options["base_lin_vel"] is False
    out = tmp_path / "rows.json"
    args = argparse.Namespace(policies=str(model), labels="history", sets="nominal,sensor_noise", episodes=2,
                              command=1.0, seed=0, json=str(out), zero_noise=True)  # fmt: skip
    assert robust.run(args) == 0
    assert [row["set"] for row in json.loads(out.read_text())] == ["nominal", "sensor_noise"]


@pytest.mark.parametrize("algo", ["rfo", "ppo"])
def test_both_training_paths_train_export_and_resume_a_history_policy(tmp_path, algo):
    """The differentiable path (RFO) and the plain one (PPO) train on the stacked observation; the run
    resumes with its history, and the export carries K frames."""
    from training_settings import TINY_TRAINING

    from rfo_ros.export import export_onnx
    from rfo_ros.runner import Runner
    from rfo_ros.runtime import load_metadata

    overrides = [*TINY_TRAINING, "env.task=quadruped", "env.num_envs=4", "env.base_lin_vel=false",
                 f"env.obs_history={K}", f"algo={algo}", "run.total_env_steps=64", "run.eval_episodes=1",
                 "run.checkpoint_every=1", "onpolicy.rollout_steps=8", "critic.iterations=2"]  # fmt: skip
    cfg = load_config(None, overrides)
    runner = Runner(cfg, tmp_path / "run", progress=False)
    runner.write_config()
    assert runner.actor.obs_dim == K * 45
    runner.train()
    assert runner.env.stats.env_steps == 64
    resumed = Runner(cfg, tmp_path / "run", progress=False)
    resumed.resume()
    assert [f.shape for f in resumed.env.history.stored] == [(4, 45)] * K
    export_onnx(tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "h.onnx", zero_noise=True)
    meta = load_metadata(tmp_path / "h.onnx")
    assert meta.obs_history == K and meta.obs_dim == K * 45
    assert meta.obs_layout.size == 45
