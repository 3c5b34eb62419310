"""A driver node that feeds a policy node robot-like state and times its answers (``rfo_ros.bench.latency``).

Per round trip it publishes ``imu``, ``odom`` and then ``joint_states`` stamped ``(sec=i, nanosec=1)`` and
waits for the ``action_chunk`` whose header carries that stamp (the policy node stamps each chunk with
the observation's stamp): publish -> receipt, measured in this process on one clock.

With a ``DepthStream`` it also plays a depth camera: ``camera/camera_info`` and a ``camera/depth`` frame
right before the ``joint_states`` of every state a frame falls on (``frames_per_state`` of them per state,
e.g. 0.3 for a 30 Hz camera beside 100 Hz states), as the sim node publishes its images: the node takes in
a frame (conversion, resampling) while that state waits behind it, the unsynchronised camera's worst case.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from rfo_ros.nodes.ros_conversions import depth_image_data, fill_camera_info, image_message
from rfo_ros.runtime.camera import Intrinsics

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class DepthStream:
    """A depth camera played beside the states: ``intrinsics`` (its CameraInfo), frames in ``encoding``
    (``16UC1`` millimetres, a RealSense's, or ``32FC1`` metres), ``frames_per_state`` frames per state."""

    intrinsics: Intrinsics
    encoding: str
    frames_per_state: float

    def frame(self) -> np.ndarray:
        """One z-depth frame (metres): the ground ahead of a downward-tilted camera, nearer towards the
        bottom rows (what it shows does not change what the node's conversion costs)."""
        k = self.intrinsics
        rows = np.linspace(3.0, 0.4, k.height, dtype=np.float32)
        return np.repeat(rows[:, None], k.width, axis=1)


@contextmanager
def policy_node_process(
    namespace: str, params: Mapping[str, object], module: str = "rfo_ros.nodes.policy_node"
) -> Iterator[subprocess.Popen]:
    """``python -m rfo_ros.nodes.policy_node`` (or another node ``module``) in its own process, in
    ``namespace``, with ``params`` (``-p name:=value``); terminated (killed if it must be) on exit."""
    cmd = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
    for name, value in params.items():
        cmd += ["-p", f"{name}:={value}"]
    node = subprocess.Popen([*cmd, "--log-level", "warn"], cwd=Path(__file__).resolve().parents[2])
    try:
        yield node
    finally:
        node.terminate()
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            node.kill()


class LatencyDriver:
    """Context manager owning its own rclpy Context, a driver node in ``namespace`` and an executor.

    It plays a robot standing still: ``joint_names`` at ``joint_positions`` (the model's joints and its
    standing pose, from the model's metadata).
    """

    def __init__(
        self,
        namespace: str,
        joint_names: Sequence[str],
        joint_positions: Sequence[float],
        camera: DepthStream | None = None,
    ) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("latency_driver", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node = self.node
        self._imu_pub = node.create_publisher(Imu, "imu", RELIABLE)
        self._odom_pub = node.create_publisher(Odometry, "odom", RELIABLE)
        self._joint_pub = node.create_publisher(JointState, "joint_states", RELIABLE)
        node.create_subscription(JointTrajectory, "action_chunk", self._chunk_callback, RELIABLE)
        node.create_subscription(DiagnosticArray, "diagnostics", self._diagnostics_callback, RELIABLE)
        node.create_subscription(Float64MultiArray, "joint_commands", self._command_callback, RELIABLE)
        #: joint_commands received (one per control tick of the policy node).
        self.commands_received = 0
        self._imu = Imu()
        self._imu.orientation.w = 1.0
        self._odom = Odometry()
        self._joints = JointState(
            name=list(joint_names),
            position=[float(v) for v in joint_positions],
            velocity=[0.0] * len(joint_names),
        )
        self._received: dict[tuple[int, int], float] = {}
        self._next_seq = 1
        self._diagnostics: dict[str, str] | None = None
        self._latest_diagnostics: dict[str, str] = {}
        #: Called with (sequence number, perf_counter arrival time) of each action_chunk when set.
        self.on_chunk = None
        self.camera = camera
        #: Depth frames published (``camera``).
        self.frames_sent = 0
        self._frames_due = 1.0  # the first state brings a frame: the node needs one to plan
        if camera is not None:
            self._info_pub = node.create_publisher(CameraInfo, "camera/camera_info", RELIABLE)
            self._depth_pub = node.create_publisher(Image, "camera/depth", RELIABLE)
            self._info = CameraInfo()
            fill_camera_info(self._info, Time(), "camera", camera.intrinsics)
            pixels = depth_image_data(camera.frame(), camera.encoding)
            self._depth = image_message(Time(), "camera", camera.encoding, pixels)

    def __enter__(self) -> LatencyDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # --- callbacks ---------------------------------------------------------------------------------
    def _chunk_callback(self, msg: JointTrajectory) -> None:
        now = time.perf_counter()
        if self.on_chunk is not None:  # a long run: hand it over instead of keeping every arrival
            self.on_chunk(msg.header.stamp.sec, now)
        else:
            self._received[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = now

    def _command_callback(self, msg: Float64MultiArray) -> None:
        self.commands_received += 1

    def _diagnostics_callback(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self._diagnostics = {kv.key: kv.value for kv in status.values}
            self._latest_diagnostics = self._diagnostics

    # --- driving -----------------------------------------------------------------------------------
    def send(self, seq: int) -> float:
        """Publish one state stamped with ``seq``; the perf_counter time of the joint_states publish."""
        stamp = Time(sec=seq, nanosec=1)
        self._imu.header.stamp = self._odom.header.stamp = self._joints.header.stamp = stamp
        self._imu_pub.publish(self._imu)
        self._odom_pub.publish(self._odom)
        if self.camera is not None and self._frames_due >= 1.0:
            self._frames_due -= 1.0
            self._info.header.stamp = self._depth.header.stamp = stamp
            self._info_pub.publish(self._info)
            self._depth_pub.publish(self._depth)
            self.frames_sent += 1
        if self.camera is not None:
            self._frames_due += self.camera.frames_per_state
        sent = time.perf_counter()
        self._joint_pub.publish(self._joints)
        return sent

    def wait_reply(self, seq: int, timeout_s: float) -> float | None:
        """perf_counter time at which the chunk stamped ``seq`` arrived, or None after ``timeout_s``."""
        key, deadline = (seq, 1), time.perf_counter() + timeout_s
        while key not in self._received:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            self.executor.spin_once(timeout_sec=remaining)
        return self._received.pop(key)

    def wait_for_policy(self, timeout_s: float, process=None) -> None:
        """Probe until the policy node answers (discovery done both ways); raises after ``timeout_s``."""
        deadline, seq = time.monotonic() + timeout_s, 1_000_000_000
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"the policy node exited with status {process.returncode} before answering"
                )
            seq += 1
            self.send(seq)
            if self.wait_reply(seq, 0.2) is not None:
                self._received.clear()
                return
        raise TimeoutError(
            f"no action_chunk from a policy node in {self.node.get_namespace()} after {timeout_s} s"
        )

    def measure(self, count: int, rate_hz: float | None, timeout_s: float = 0.5) -> tuple[list[float], int]:
        """``count`` round trips at ``rate_hz`` (None: each right after the previous answer): the round-trip
        seconds of the answered ones, and how many were lost."""
        period, next_send = (1.0 / rate_hz if rate_hz else 0.0), time.perf_counter()
        round_trips, lost = [], 0
        for seq in range(self._next_seq, self._next_seq + count):
            delay = next_send - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_send += period
            sent = self.send(seq)
            received = self.wait_reply(seq, timeout_s)
            if received is None:
                lost += 1
            else:
                round_trips.append(received - sent)
        self._next_seq += count
        return round_trips, lost

    def last_diagnostics_now(self) -> dict[str, float]:
        """The numeric values of the latest diagnostics received (while another thread spins)."""
        return _numeric(self._latest_diagnostics)

    def last_diagnostics(self, timeout_s: float) -> dict[str, float]:
        """The numeric values of the next diagnostics message (an empty dict if none arrives)."""
        self._diagnostics = None
        deadline = time.monotonic() + timeout_s
        while self._diagnostics is None and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        return _numeric(self._diagnostics or {})


def _numeric(values: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out
