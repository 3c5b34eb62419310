"""The policy nodes' ROS parameters (one table, with descriptors) and the controller settings they give."""

from __future__ import annotations

from types import SimpleNamespace

from rclpy.parameter import Parameter

from rfo_ros.nodes.params import Param
from rfo_ros.runtime import BLENDS
from rfo_ros.runtime.controller import ControllerConfig

PARAMS = (
    Param("model_path", "", "exported ONNX policy; empty = models/quadruped.onnx (source tree or share dir)"),
    Param("provider", "auto", "ONNX Runtime execution provider: auto (CUDA if it runs, else CPU), cuda, cpu"),
    Param("require_gpu", False, "refuse to start unless the CUDA execution provider is the one in use"),
    Param(
        "robot_joint_names",
        Parameter.Type.STRING_ARRAY,
        "the robot's joints, in joint_commands order; they must be exactly the model's joints "
        "(unset: the model's own joint order)",
    ),
    Param("control_rate_hz", 0.0, "control rate; 0 = 1/dt of the model", 0.0, 10000.0),
    Param(
        "tick_source",
        "timer",
        "timer: a steady-clock timer at control_rate_hz runs the loop; "
        "state: every joint_states message is one control step (lock-step with a simulator)",
    ),
    Param("replan_every", 0, "run the model every N control steps; 0 = the chunk length C", 0, 100000),
    Param("blend", "latest", f"how overlapping chunks combine: {', '.join(BLENDS)} (rfo_ros.runtime.chunks)"),
    Param("ensemble_decay", 0.01, "weight decay k of blend=ensemble", -100.0, 100.0),
    Param(
        "committed_steps",
        1,
        "blend=realtime: steps of the current chunk each new plan keeps exactly (its inference delay)",
        0,
        1024,
    ),
    Param("watchdog_timeout_s", 0.1, "state older than this (steady clock) is stale: hold", 0.001, 60.0),
    Param("max_joint_step", 0.5, "largest change of a joint command per control step (rad)", 0.0, 100.0),
    Param("zero_noise", True, "deterministic flow (noise = 0); false: seeded Gaussian noise per plan"),
    Param("seed", 0, "seed of the flow noise when zero_noise is false", 0, 2**31 - 1),
    Param(
        "depth_range_m",
        4.0,
        "depth models that record no camera (older exports) only: depth (m) / this, clipped to [0, 1]; "
        "newer models carry their camera's range and field of view and resample any camera",
        0.001,
        1000.0,
    ),
    Param("publish_diagnostics_hz", 1.0, "diagnostics rate (0 = off)", 0.0, 1000.0),
    Param(
        "input_thread",
        True,
        "serve joint_states/imu/odom/camera on a dedicated thread with a minimal wait set (lower latency); "
        "false: through the executor like every other callback",
    ),
    Param("default_cmd_vx", 1.0, "forward velocity command (m/s) until cmd_vel says otherwise", -10.0, 10.0),
    Param("default_cmd_vy", 0.0, "lateral velocity command (m/s) until cmd_vel says otherwise", -10.0, 10.0),
    Param("default_cmd_yaw_rate", 0.0, "yaw-rate command (rad/s) until cmd_vel says otherwise", -10.0, 10.0),
    Param(
        "cmd_vel_timeout_s", 0.0, "a cmd_vel older than this reverts to the defaults; 0 = never", 0.0, 3600.0
    ),
)


def controller_config(p: SimpleNamespace) -> ControllerConfig:
    """The controller's settings from the declared parameter values."""
    return ControllerConfig(
        watchdog_timeout_s=p.watchdog_timeout_s,
        max_joint_step=p.max_joint_step,
        tick_source=p.tick_source,
        replan_every=p.replan_every,
        blend=p.blend,
        ensemble_decay=p.ensemble_decay,
        committed_steps=p.committed_steps,
        zero_noise=p.zero_noise,
        default_command=(p.default_cmd_vx, p.default_cmd_vy, p.default_cmd_yaw_rate),
        cmd_vel_timeout_s=p.cmd_vel_timeout_s,
    )
