"""A new robot's first run tells the truth: "solved" means it walks (tracking, no falls), the tracking
reward's width follows the robot's commands, and a robot file that keeps a misfitting default is warned."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import yaml

from rfo_ros.envs import make_task
from rfo_ros.envs.legged import yaw_quat
from rfo_ros.evaluate import evaluate
from rfo_ros.robot import RobotWarning, fit_warnings, read_description, robot_file


class StandStill:
    """A policy that holds the standing pose (action 0) whatever it observes."""

    chunk = 1

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def __call__(self, obs: torch.Tensor, noise: torch.Tensor | None = None):
        actions = torch.zeros(obs.shape[0], 1, self.action_dim)
        return actions, actions


def _tree(name: str) -> dict:
    return yaml.safe_load(robot_file(name).read_text())


@pytest.mark.parametrize("robot", ["go1", "hexapod"])
def test_a_standing_policy_is_never_solved(robot):
    task = make_task("legged", robot=robot)
    slow = task.command_range[0][0]  # the slowest command: where standing earns the most
    result = evaluate(StandStill(task.action_dim), "legged", 4, 0, True, command=(slow, 0.0, 0.0),
                      task_options=task.options())  # fmt: skip
    assert result["falls"] == 0 and abs(result["forward_speed_mean"]) < 0.1
    assert abs(result["progress_speed_mean"]) < 0.1 and result["heading_change_deg_mean"] < 10.0
    assert result["command_speed_mean"] == pytest.approx(slow)
    assert not task.solved(result)


def test_the_body_frame_speed_and_the_pose_that_measures_progress_disagree_when_the_robot_has_turned():
    """Facing +y and moving along +y at 1 m/s: 1 m/s forward in the body frame (what the command asks),
    and a heading of 90 degrees, so nothing made good along a start heading of +x."""
    task = make_task("quadruped")
    state = task.initial_state(1, np.random.default_rng(0))
    state.qpos[0, 3:7] = torch.from_numpy(yaw_quat(np.array([np.pi / 2]))[0])
    state.qvel[0] = 0.0
    state.qvel[0, 1] = 1.0
    assert float(task.forward_speed(state)[0]) == pytest.approx(1.0)
    x, y, heading = task.planar_pose(state)[0]
    assert heading == pytest.approx(np.pi / 2) and (x, y) == (0.0, 0.0)


def test_solved_needs_tracking_within_the_tolerance_and_no_falls():
    task = make_task("quadruped")
    walking = {"falls": 0, "tracking_error_mean": 0.2, "command_speed_mean": 1.0, "return_mean": 0.0}
    assert task.solved(walking)  # whatever the return
    assert not task.solved({**walking, "falls": 1})
    assert not task.solved({**walking, "tracking_error_mean": 0.31})
    assert "tracking_error_mean <= 0.3 x command_speed_mean" in task.solved_rule


def test_the_tracking_width_follows_the_commands_and_the_go1_keeps_its_numbers():
    go1 = read_description("go1")
    assert (go1.reward_shape.lin_vel_sigma_sq, go1.reward_shape.yaw_rate_sigma_sq) == (1.0, 0.25)
    tree = _tree("hexapod")
    tree["commands"] = {"vx": [0.3, 0.6]}
    slow = read_description(tree)
    assert slow.reward_shape.lin_vel_sigma_sq == pytest.approx(0.45**2)
    # Standing at the typical command now earns e^-1 of the tracking reward, not e^-0.2.
    assert np.exp(-(0.45**2) / slow.reward_shape.lin_vel_sigma_sq) == pytest.approx(np.exp(-1))
    tree["reward_shape"] = {"lin_vel_sigma_sq": 0.5}
    assert read_description(tree).reward_shape.lin_vel_sigma_sq == 0.5  # a width the file sets stays
    tree["commands"] = {"vx": [-1.0, 1.0], "yaw_rate": [-2.0, 2.0]}
    tree.pop("reward_shape")
    both_ways = read_description(tree).reward_shape
    assert (both_ways.lin_vel_sigma_sq, both_ways.yaw_rate_sigma_sq) == (1.0, 4.0)


def test_a_robot_file_keeping_misfitting_defaults_is_warned():
    assert fit_warnings(read_description("go1")) == []
    tree = _tree("hexapod")
    tree.pop("commands")
    (message,) = fit_warnings(read_description(tree))
    assert "no `commands:`" in message and "0.5-1.5 m/s" in message
    tree["commands"] = {"vx": [0.3, 0.6]}
    tree["reward_shape"] = {"lin_vel_sigma_sq": 1.0}
    (message,) = fit_warnings(read_description(tree))
    assert "pays a robot standing still 82% of the velocity-tracking reward" in message
    from rfo_ros.robot import Robot

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Robot.load(tree)
    assert [w.category for w in caught] == [RobotWarning]


def test_a_runs_summary_says_how_it_judged_solved(tmp_path):
    from training_settings import TINY_TRAINING

    from rfo_ros.config import load_config
    from rfo_ros.runner import Runner

    cfg = load_config(None, [*TINY_TRAINING, "env.task=quadruped", "algo=ppo", "run.total_env_steps=8",
                             "onpolicy.rollout_steps=1", "run.eval_episodes=2"])  # fmt: skip
    runner = Runner(cfg, tmp_path / "run", progress=False)
    runner.write_config()
    runner.train()
    summary = runner.finish()
    assert summary["solved"] is False
    assert summary["solved_rule"].startswith("falls == 0 and tracking_error_mean")
    assert summary["eval"]["stochastic"]["command_speed_mean"] > 0.4


def test_evaluate_judges_an_exported_model_and_refuses_a_corrupt_one(tmp_path):
    import json
    import subprocess
    import sys

    from rfo_ros.bench.latency import export_untrained_policy

    model = export_untrained_policy(tmp_path / "untrained.onnx", base_lin_vel=False, flow_steps=1, chunk=1)
    proc = subprocess.run([sys.executable, "-m", "rfo_ros.evaluate", str(model), "--episodes", "2",
                           "--command", "1", "0", "0"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["task"] == "quadruped" and result["solved"] is False
    assert result["stochastic"]["command_speed_mean"] == pytest.approx(1.0)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "rfo_ros.evaluate", str(bad)], capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 1 and "not a loadable ONNX model" in proc.stderr


def test_bench_learn_reports_no_crossing_for_a_robot_without_a_documented_return():
    """The hexapod's robot file documents no ``solved_return`` now: the race columns say never, not crash."""
    from rfo_ros.bench.learn import _first_crossing

    assert read_description("hexapod").episode.solved_return is None
    assert _first_crossing(object(), None) == (None, None)
