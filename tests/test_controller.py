"""The ROS-free controller at worked numbers: a two-joint model with a scripted chunk, no rclpy, no ONNX.

Model: joints a, b with limits [-1, 1], action map the identity, chunk C = 3 planned every 3 steps;
observation frame = base_lin_vel ×2, joint_pos - (0.5, 0), joint_vel ×0.5, last_action (9 values).
Control: a joint state with a new stamp is one control step; watchdog 0.1 s; at most 0.25 rad per step.
"""

from __future__ import annotations

import numpy as np
import pytest

from rfo_ros.envs.legged_obs import ObsField, ObsLayout
from rfo_ros.runtime.controller import Controller, ControllerConfig, MalformedInputError
from rfo_ros.runtime.metadata import ModelMetadata
from rfo_ros.runtime.policy import Policy

LAYOUT = ObsLayout(
    (
        ObsField.make("base_lin_vel", 3, "", scale=2.0),
        ObsField.make("joint_pos", 2, "", offset=(0.5, 0.0)),
        ObsField.make("joint_vel", 2, "", scale=0.5),
        ObsField.make("last_action", 2, ""),
    )
)
PLAN = np.array([[0.1, 0.2], [0.3, 0.4], [5.0, -5.0]])  # row 2 lies outside the joint limits


def metadata(history: int = 1) -> ModelMetadata:
    one, two = np.ones(2), np.zeros(2)
    return ModelMetadata(
        source="scripted", task="t", algo="rfo", policy_kind="flow", training_commit="c", export_time="now",
        joint_names=("a", "b"), dt=0.01, flow_steps=1, flow_solver="euler", chunk=3, action_dim=2,
        obs_dim=history * LAYOUT.size, obs_layout=LAYOUT, obs_history=history, normalization={},
        action_scale=one, action_offset=two, action_low=-one, action_high=one, image=None, zero_noise=True,
    )  # fmt: skip


class ScriptedPolicy(Policy):
    """Returns ``plan`` whatever it observes; keeps every observation it was given."""

    provider = "scripted"

    def __init__(self, meta: ModelMetadata, plan: np.ndarray = PLAN) -> None:
        super().__init__(meta)
        self.plan, self.seen = plan, []

    def _execute(self) -> np.ndarray:
        self.seen.append(self.buffers["observation"][0].astype(np.float64))
        return self.plan


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warning(self, message: str, throttle: bool = False) -> None:
        self.lines.append(message)


def make(history: int = 1, plan: np.ndarray = PLAN, **config) -> Controller:
    settings = {"tick_source": "state", "watchdog_timeout_s": 0.1, "max_joint_step": 0.25, **config}
    return Controller(
        ScriptedPolicy(metadata(history), plan), ControllerConfig(**settings), log=RecordingLog()
    )


def sense(c: Controller, now: float, pos=(1.0, -0.5), vel=(2.0, 4.0)):
    """imu and odom, then the joint state stamped ``now`` (the control-step trigger)."""
    c.imu(np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3), now)
    c.odom(np.array([0.1, 0.0, 0.0]), now)
    return c.joint_state(np.array(pos), np.array(vel), now, stamp=now)


def test_the_observation_is_the_layout_applied_to_the_inputs():
    c = make()
    sense(c, 0.0)
    expected = [0.2, 0, 0, 0.5, -0.5, 1.0, 2.0, 0, 0]
    np.testing.assert_allclose(c.policy.seen[0], expected)


def test_a_chunk_executes_step_by_step_clamped_and_rate_limited():
    c = make()
    out = sense(c, 0.00, pos=(0.0, 0.0))
    np.testing.assert_allclose(out.chunk, [[0.1, 0.2], [0.3, 0.4], [1.0, -1.0]])  # clamped to the limits
    np.testing.assert_allclose(out.command, [0.1, 0.2])  # 0.1 and 0.2 from the measured (0, 0): allowed
    out = sense(c, 0.01)
    assert out.chunk is None  # the chunk covers steps 0..2
    np.testing.assert_allclose(out.command, [0.3, 0.4])
    out = sense(c, 0.02)
    np.testing.assert_allclose(out.command, [0.55, 0.15])  # (1, -1) is 0.7 and 1.4 away: 0.25 per step
    assert c.counts["rate_limited_steps"] == 1
    np.testing.assert_allclose(c.last_action, [1.0, -1.0])  # the scheduled action, in policy units
    out = sense(c, 0.03)
    assert out.chunk is not None and c.counts["plans"] == 2  # step 3: the next plan
    np.testing.assert_allclose(out.command, [0.30, 0.2])  # 0.55 - 0.25 = 0.30 bounds the fall to 0.1
    assert c.step == 4 and c.counts["ticks"] == 4


def test_a_repeated_stamp_only_refreshes_the_inputs():
    c = make()
    sense(c, 0.05)
    out = c.joint_state(np.array([0.2, 0.2]), np.zeros(2), now=0.051, stamp=0.05)  # 0 would be "unknown"
    assert out.chunk is None and out.command is None and c.step == 1
    np.testing.assert_allclose(c.inputs.joint_pos, [0.2, 0.2])


def test_stale_input_holds_the_last_command_then_resumes_with_a_new_plan():
    c = make()
    first = sense(c, 0.0).command.copy()
    assert c.watchdog_state(0.05) == "ok"
    out = c.tick(0.15)  # every input is 0.15 s old: over the 0.1 s limit
    np.testing.assert_allclose(out.command, first)
    assert c.holding and c.watchdog_state(0.15) == "stale" and c.counts["hold_ticks"] == 1
    assert "state is stale (joint_states last arrived 0.150 s ago" in c.log.lines[-1]
    out = sense(c, 0.2)
    assert out.chunk is not None and not c.holding  # the old chunk is forgotten: plan again
    assert c.log.lines[-1] == "state is fresh again: resuming the policy"


def test_one_stale_input_is_enough_to_hold():
    c = make()
    sense(c, 0.0)
    c.imu(np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3), 0.2)
    out = c.joint_state(np.zeros(2), np.zeros(2), 0.2, stamp=0.2)  # odom is 0.2 s old
    assert out.command is None and out.chunk is None
    assert c.tick(0.2).command is not None and c.holding


def test_a_missing_required_input_is_named_and_the_default_pose_held():
    c = make()
    c.imu(np.array([1.0, 0.0, 0.0, 0.0]), np.zeros(3), 0.0)
    assert c.tick(0.0).command is None  # no joint state ever: nothing to hold against
    out = c.joint_state(np.zeros(2), np.zeros(2), 0.0, stamp=0.0)
    assert out.command is None and c.missing_inputs == ["odom"]
    out = c.tick(0.01)
    np.testing.assert_allclose(out.command, [0.0, 0.0])  # the default pose (the action offset)
    assert "waiting for odom: the model observes base_lin_vel" in c.log.lines[0]
    assert c.policy.seen == []


def test_non_finite_inputs_are_refused_and_leave_the_last_values():
    c = make()
    sense(c, 0.0)
    with pytest.raises(MalformedInputError, match="joint_state holds NaN"):
        c.joint_state(np.array([np.nan, 0.0]), np.zeros(2), 0.01, stamp=0.01)
    with pytest.raises(MalformedInputError):
        c.imu(np.array([1.0, 0.0, 0.0, 0.0]), np.array([np.inf, 0, 0]), 0.01)
    with pytest.raises(MalformedInputError):
        c.cmd_vel(np.array([np.nan, 0.0, 0.0]), 0.01)
    np.testing.assert_allclose(c.inputs.joint_pos, [1.0, -0.5])
    assert c.inputs.t_joint == 0.0 and c.inputs.t_imu == 0.0 and c.inputs.command[0] == 1.0
    assert c.step == 1


def test_a_non_finite_plan_is_never_executed():
    c = make(plan=np.full((3, 2), np.nan))
    out = sense(c, 0.0, pos=(0.0, 0.0))
    np.testing.assert_allclose(out.command, [0.0, 0.0])  # hold: the default pose
    assert out.chunk is None and c.holding and c.dropped == {"model/nonfinite": 1}
    assert c.counts["plans"] == 0 and c.counts["ticks"] == 0


def test_the_history_restarts_after_a_hold():
    c = make(history=2)
    sense(c, 0.00, vel=(2.0, 0.0))
    sense(c, 0.01, vel=(4.0, 0.0))
    frames = np.stack(c.history.stored)
    np.testing.assert_allclose(frames[:, 5], [1.0, 2.0])  # joint_vel[0] × 0.5, oldest first
    np.testing.assert_allclose(c.policy.seen[0][[5, 14]], [1.0, 1.0])  # step 0: the first frame twice
    c.tick(0.2)  # stale: hold
    sense(c, 0.3, vel=(6.0, 0.0))
    np.testing.assert_allclose(np.stack(c.history.stored)[:, 5], [3.0, 3.0])  # no frame from before
    np.testing.assert_allclose(c.policy.seen[-1][[5, 14]], [3.0, 3.0])


def test_an_old_cmd_vel_reverts_to_the_default_command():
    c = make(cmd_vel_timeout_s=0.5, default_command=(0.8, 0.0, 0.0))
    c.cmd_vel(np.array([0.4, -0.1, 0.3]), 0.0)
    c.tick(0.4)
    assert list(c.inputs.command) == [0.4, -0.1, 0.3]
    c.tick(0.6)
    assert list(c.inputs.command) == [0.8, 0.0, 0.0]


def test_an_inactive_controller_keeps_inputs_and_commands_nothing():
    c = make()
    c.active = False
    out = sense(c, 0.0)
    assert out.command is None and out.chunk is None and c.tick(0.5).command is None
    np.testing.assert_allclose(c.inputs.joint_pos, [1.0, -0.5])


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"tick_source": "clock"}, "tick_source='clock'"),
        ({"replan_every": 4}, "replan_every=4 exceeds the model's chunk length 3"),
        ({"blend": "realtime"}, "blend=realtime needs a model exported with --inpainting"),
    ],
)
def test_settings_the_model_cannot_run_with_are_refused(config, match):
    from rfo_ros.runtime import ModelError

    with pytest.raises(ModelError, match=match):
        make(**config)


def test_a_model_observing_a_field_the_controller_cannot_build_is_refused():
    from dataclasses import replace

    from rfo_ros.runtime import ModelError

    meta = replace(metadata(), obs_layout=ObsLayout((ObsField.make("state", 9, ""),)))
    with pytest.raises(ModelError, match=r"observes \['state'\], which the controller cannot build"):
        Controller(ScriptedPolicy(meta), ControllerConfig())
