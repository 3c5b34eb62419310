"""A bare rclpy echo: every ``joint_states`` answered at once by an empty ``action_chunk`` with its stamp.

The floor under the policy node's latency (``python -m rfo_ros.bench latency``): the same topics, QoS,
process layout and executor, and no work in between, so node − echo is what the policy node itself costs.
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from rfo_ros.nodes.params import Param, declare_params
from rfo_ros.nodes.spin import EXECUTORS, run_node

PARAMS = (Param("executor", "single", f"rclpy executor: {', '.join(EXECUTORS)}"),)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class EchoNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("echo_node", **kwargs)
        self.params = declare_params(self, PARAMS)
        self._reply = JointTrajectory()
        self._pub = self.create_publisher(JointTrajectory, "action_chunk", RELIABLE)
        self.create_subscription(JointState, "joint_states", self._echo, RELIABLE)

    def _echo(self, msg: JointState) -> None:
        self._reply.header.stamp = msg.header.stamp
        self._pub.publish(self._reply)


def main(args=None) -> int:
    return run_node(EchoNode, "echo_node", (ValueError,), args)


if __name__ == "__main__":
    sys.exit(main())
