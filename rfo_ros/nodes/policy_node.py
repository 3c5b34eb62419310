"""The policy node: ONNX flow policy in, action chunks and per-step joint commands out.

A thin rclpy adapter: ``rfo_ros.nodes.policy_ports.PolicyPorts`` owns the topics (listed there) and
converts messages; ``rfo_ros.runtime.controller.Controller`` holds the control law, with no ROS import.

The observation is built by ``rfo_ros.envs.legged_obs.build_observation`` — the function the training task
uses — with the layout (field order, scales, offsets) read from the model's metadata. A model that
observes a history of K frames gets one frame per control step, stacked by ``legged_obs.FrameHistory`` as
in training; it restarts (the first frame fills the older slots) after a hold and on activation.

Control: a steady-clock timer ticks at ``control_rate_hz`` (``tick_source: timer``, a robot) or every
new ``joint_states`` stamp is one control step (``tick_source: state``, lock-step with a simulator; publish
``imu``/``odom`` before ``joint_states``; a message repeating the last stamp only refreshes the inputs).
When a plan is due the model runs as soon as a fresh ``joint_states`` arrives, so state -> chunk is one
callback. Nothing is published before the first ``joint_states``.

Safety: stale state (no ``joint_states``/``imu``/needed ``odom``/image within ``watchdog_timeout_s`` on the
steady clock) holds the last safe command (the default pose if none), and an input the model needs that
has never arrived is named with what it is for, in the log and in ``diagnostics`` (e.g. "waiting for
odom: the model observes base_lin_vel ..."); malformed or non-finite messages
are dropped, counted and warned about (throttled); commands are clamped to the joint limits and
rate-limited; a non-finite model output is never executed; shutdown publishes the hold command.
"""

from __future__ import annotations

import sys

from rclpy.node import Node

from rfo_ros.nodes.policy_params import PARAMS
from rfo_ros.nodes.policy_ports import PolicyNodeError, PolicyPorts
from rfo_ros.nodes.spin import run_node


class PolicyNode(Node):
    """Runs an exported flow policy in closed loop from construction; see the module docstring.

    ``rfo_ros.nodes.policy_lifecycle_node.PolicyLifecycleNode`` is the managed version."""

    def __init__(self, node_name: str = "policy_node", **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        self.ports: PolicyPorts | None = None
        try:
            self.ports = PolicyPorts(self)
            self.params = self.ports.params  # the declared values, as every node of this package has
            self.ports.setup()
        except Exception:
            super().destroy_node()
            raise

    def destroy_node(self) -> None:
        """Clean hold on shutdown: inputs stop, then the last safe command goes out, then the node goes."""
        try:
            if self.ports is not None:
                self.ports.stop_inputs()
                self.ports.publish_hold()
        finally:
            super().destroy_node()


def main(args=None) -> int:
    """``ros2 run rfo_ros policy_node``: spin until SIGINT/SIGTERM; exit 1 if the node cannot start."""
    return run_node(PolicyNode, "policy_node", (PolicyNodeError,), args)


__all__ = ["PARAMS", "PolicyNode", "PolicyNodeError", "main"]

if __name__ == "__main__":
    sys.exit(main())
