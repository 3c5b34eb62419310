"""In-process harness for driving nodes in tests: own rclpy Context, executor, a probe node, timeouts.

    with NodeHarness() as h:
        node = h.add(PolicyNode(**h.node_kwargs(parameter_overrides=[...])))
        h.record(JointTrajectory, "action_chunk")
        h.publish("joint_states", msg)            # waits until the node's subscription is matched
        assert h.spin_until(lambda: h.received["action_chunk"], timeout=5.0)

Every harness lives in a fresh namespace (relative topic names keep concurrent or consecutive tests apart)
and its own Context; set ``ROS_AUTOMATIC_DISCOVERY_RANGE``/``ROS_DOMAIN_ID`` (``spin.isolated_ros_env``)
before the first one to keep discovery on this machine.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState

from rfo_ros.envs.legged_obs import quat_rotate_inverse
from rfo_ros.nodes.ros_conversions import fill_imu, fill_odometry, stamp_from_seconds

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class NodeHarness:
    """Context + SingleThreadedExecutor + probe node in a unique namespace; records what it subscribes to."""

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or f"/test_{uuid.uuid4().hex[:10]}"
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.probe = rclpy.create_node("probe", namespace=self.namespace, context=self.context)
        self.executor.add_node(self.probe)
        self.nodes: list[Node] = []
        self.received: dict[str, list] = defaultdict(list)
        self.arrival: dict[str, list[float]] = defaultdict(list)
        self._publishers = {}

    def __enter__(self) -> NodeHarness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def node_kwargs(self, **kwargs) -> dict:
        """Keyword arguments that put a node under test in this harness's context and namespace."""
        return {"context": self.context, "namespace": self.namespace, **kwargs}

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def remove(self, node: Node) -> None:
        self.executor.remove_node(node)
        self.nodes.remove(node)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in reversed(self.nodes):
            node.destroy_node()
        self.probe.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # --- topics ------------------------------------------------------------------------------------
    def record(self, msg_type, topic: str, qos: QoSProfile = RELIABLE) -> list:
        """Subscribe the probe to ``topic``; messages land in ``received[topic]`` (times in ``arrival``)."""

        def callback(msg) -> None:
            self.received[topic].append(msg)
            self.arrival[topic].append(time.monotonic())

        self.probe.create_subscription(msg_type, topic, callback, qos)
        return self.received[topic]

    def publisher(self, msg_type, topic: str):
        if topic not in self._publishers:
            self._publishers[topic] = self.probe.create_publisher(msg_type, topic, RELIABLE)
        return self._publishers[topic]

    def publish(self, topic: str, msg, wait_s: float = 5.0) -> None:
        """Publish ``msg`` once a subscriber is matched (so it is not lost to discovery)."""
        pub = self.publisher(type(msg), topic)
        if not self.spin_until(lambda: pub.get_subscription_count() > 0, wait_s):
            raise TimeoutError(f"nobody subscribes to {self.namespace}/{topic}")
        pub.publish(msg)

    def connect(self, *topics: tuple[type, str], wait_s: float = 5.0) -> None:
        """Create publishers for (msg type, topic) pairs and wait until each has a subscriber."""
        pubs = [self.publisher(msg_type, topic) for msg_type, topic in topics]
        if not self.spin_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), wait_s):
            missing = [t for (_, t), p in zip(topics, pubs, strict=True) if p.get_subscription_count() == 0]
            raise TimeoutError(f"nobody subscribes to {missing} in {self.namespace}")

    def wait_for_publisher(self, topic: str, timeout: float = 5.0) -> bool:
        name = f"{self.namespace}/{topic}" if not topic.startswith("/") else topic
        return self.spin_until(lambda: self.probe.count_publishers(name) > 0, timeout)

    # --- spinning ----------------------------------------------------------------------------------
    def spin_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        """Spin until ``predicate()`` is truthy (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(remaining, 0.01))
        return True

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(max(deadline - time.monotonic(), 0.0), 0.01))


def state_messages(
    qpos: np.ndarray, qvel: np.ndarray, joint_names, stamp_s: float = 0.0
) -> tuple[Imu, Odometry, JointState]:
    """What a robot (or the sim node) reports for a free-base state ``qpos`` (7 + n), ``qvel`` (6 + n).

    Frames as ``sim_node``: the free joint's ``qvel[3:6]`` is already body-frame, ``qvel[0:3]`` is world.
    """
    qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
    stamp = stamp_from_seconds(stamp_s)
    imu, odom = Imu(), Odometry()
    fill_imu(imu, stamp, "base", qpos[3:7], qvel[3:6], None)
    fill_odometry(
        odom,
        stamp,
        "odom",
        "base",
        qpos[0:3],
        qpos[3:7],
        quat_rotate_inverse(qpos[3:7], qvel[0:3]),
        qvel[3:6],
    )
    joints = JointState(
        name=list(joint_names), position=[float(v) for v in qpos[7:]], velocity=[float(v) for v in qvel[6:]]
    )
    joints.header.stamp = stamp
    return imu, odom, joints
