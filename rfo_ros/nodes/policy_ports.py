"""The ROS side of the policy, shared by the plain and the lifecycle node: it owns the subscriptions,
publishers and timers of one rclpy node, converts messages for ``rfo_ros.runtime.controller.Controller``
(which holds the control law) and publishes what the controller returns.

Inputs (sensor-data QoS, relative names): ``joint_states``, ``imu``, ``cmd_vel``, ``odom`` when the model
observes ``base_lin_vel``, and ``camera/depth`` (1 channel, with ``camera/camera_info`` when the model
records its camera: any resolution and intrinsics are resampled, ``camera_input``) or ``camera/image_raw``
(3 channels) when it has an image input.
Outputs (reliable): ``action_chunk`` (JointTrajectory in the model's joint order, C points at
``time_from_start = k·dt``, ``header.stamp`` = stamp of the ``joint_states`` message observed),
``joint_commands`` (Float64MultiArray, one per control step, in ``robot_joint_names`` order) and
``diagnostics``. Times given to the controller are ``time.monotonic`` (the steady clock).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rfo_ros.nodes.camera_input import image_input
from rfo_ros.nodes.input_thread import InputThread, ServedElsewhere
from rfo_ros.nodes.params import declare_params
from rfo_ros.nodes.policy_params import PARAMS, controller_config
from rfo_ros.nodes.ros_conversions import (
    JointStateReader,
    MalformedMessageError,
    float_field_view,
    read_quaternion_wxyz,
    read_vector3,
)
from rfo_ros.nodes.serialized import SerializedMessage
from rfo_ros.paths import resolve_model_path
from rfo_ros.runtime import GpuUnavailableError, ModelError, ModelMetadata, Policy, make_policy
from rfo_ros.runtime.controller import Controller, Output
from rfo_ros.runtime.stats import LatencyWindow, PolicyStats

WARN_THROTTLE_S = 2.0
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
PROVIDERS = ("auto", "cuda", "cpu")


class PolicyNodeError(RuntimeError):
    """The node cannot run: model missing/corrupt, model and robot disagree, or a bad parameter."""


class _NodeLog:
    """The controller's log on the node's rclpy logger (throttled messages at most every 2 s)."""

    def __init__(self, node: Node) -> None:
        self._logger = node.get_logger()

    def info(self, message: str) -> None:
        self._logger.info(message)

    def warning(self, message: str, throttle: bool = False) -> None:
        if throttle:
            self._logger.warning(message, throttle_duration_sec=WARN_THROTTLE_S)
        else:
            self._logger.warning(message)


class PolicyPorts:
    """Parameters, model, controller and ROS entities of one policy node; ``setup``/``teardown`` bracket
    the time it runs (the plain node's lifetime, the lifecycle node's configured states)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.params = declare_params(node, PARAMS)
        self.lock = threading.RLock()  # input thread vs executor callbacks
        self.controller: Controller | None = None
        self.input_thread: InputThread | None = None
        self.entities: list = []  # subscriptions, publishers, timers: destroyed by ``teardown``
        # Scratch for the messages' values before the controller takes them.
        self._quat, self._ang_vel, self._lin_vel = np.zeros(4), np.zeros(3), np.zeros(3)

    @property
    def policy(self) -> Policy | None:
        """The loaded model (None before ``setup`` and after ``teardown``)."""
        return None if self.controller is None else self.controller.policy

    @property
    def metadata(self) -> ModelMetadata:
        return self.controller.metadata

    def setup(self, active: bool = True) -> None:
        """Load and check the model, build the controller, then create every ROS entity."""
        p = self.params
        if p.provider not in PROVIDERS:
            raise PolicyNodeError(f"parameter provider={p.provider!r}: choose one of {', '.join(PROVIDERS)}")
        policy = self._load_model()
        meta = policy.metadata
        self.robot_joint_names = tuple(p.robot_joint_names or meta.joint_names)
        try:
            meta.check_robot(self.robot_joint_names, commanded=True)
        except ModelError as exc:
            raise PolicyNodeError(f"model and robot disagree (robot_joint_names): {exc}") from exc
        try:
            controller = Controller(policy, controller_config(p), image_topic(meta), _NodeLog(self.node))
        except ModelError as exc:
            raise PolicyNodeError(f"model {self.model_path}: {exc}") from exc
        controller.active = active
        self.controller = controller
        self._stamp = None  # builtin_interfaces/Time of the latest joint_states
        self._received_ns = 0  # rmw reception time (system clock, ns) of the latest joint_states
        self.node_latency, self.dispatch_latency = LatencyWindow(), LatencyWindow()
        # The model's camera (None without an image input): message -> image, and its own counters.
        self.camera = image_input(meta.image, p.depth_range_m, _NodeLog(self.node)) if meta.image else None
        self.image_latency, self.images = LatencyWindow(), 0
        self._joints = JointStateReader(meta.joint_names)
        # joint_commands go out in the robot's order; everything inside stays in the model's order.
        self._to_robot = np.array([meta.joint_names.index(n) for n in self.robot_joint_names])
        self.control_rate_hz = p.control_rate_hz or 1.0 / meta.dt
        self._create_interfaces()
        self.node.get_logger().info(
            f"policy {self.model_path} (task {meta.task}, {meta.policy_shape}) on "
            f"{policy.provider}; {self.control_rate_hz:g} Hz, {p.tick_source} ticks, "
            f"replan every {controller.replan_every} steps"
        )

    def _load_model(self) -> Policy:
        p = self.params
        self.model_path = resolve_model_path(p.model_path)
        if not self.model_path.is_file():
            raise PolicyNodeError(
                f"policy model not found: {self.model_path} (set the model_path parameter, or export a "
                "checkpoint with `python -m rfo_ros.export CHECKPOINT -o models/quadruped.onnx`)"
            )
        try:
            return make_policy(
                self.model_path, backend="onnx", provider=p.provider, require_gpu=p.require_gpu, seed=p.seed
            )
        except (ModelError, GpuUnavailableError, ValueError) as exc:
            raise PolicyNodeError(f"cannot load policy model {self.model_path}: {exc}") from exc

    def teardown(self) -> None:
        """Stop the input thread and release every entity and the model (idempotent)."""
        self.stop_inputs()
        destroy = (
            (Subscription, self.node.destroy_subscription),
            (Publisher, self.node.destroy_publisher),
            (Timer, self.node.destroy_timer),
        )
        for entity in self.entities:
            next(fn for kind, fn in destroy if isinstance(entity, kind))(entity)
        self.entities = []
        self.controller = None

    def stop_inputs(self) -> None:
        """Stop serving the sensor subscriptions on the input thread (idempotent)."""
        if self.input_thread is not None:
            self.input_thread.stop()
            self.input_thread = None

    def _create_interfaces(self) -> None:
        node, sensor, c = self.node, qos_profile_sensor_data, self.controller
        group = ServedElsewhere() if self.params.input_thread else None
        inputs = [node.create_subscription(Imu, "imu", self.imu_callback, sensor, callback_group=group)]
        if c.needs_odom:  # a model without base_lin_vel (joints and IMU alone) never reads odometry
            inputs.append(
                node.create_subscription(Odometry, "odom", self.odom_callback, sensor, callback_group=group)
            )
        info_topic = None if self.camera is None else self.camera.camera_info_topic
        if info_topic is not None:  # before its images, so a frame finds its CameraInfo taken
            info_callback = self.camera_info_callback
            inputs.append(
                node.create_subscription(CameraInfo, info_topic, info_callback, sensor, callback_group=group)
            )
        if c.image_input is not None:
            inputs.append(
                node.create_subscription(
                    Image, c.image_input, self.image_callback, sensor, callback_group=group
                )
            )
        # Last on purpose: when imu/odom/image and joint_states (the trigger of a control step) are ready
        # together, they are taken in creation order (InputThread, and rclpy's executors), so the trigger
        # sees the others.
        inputs.append(
            node.create_subscription(
                JointState, "joint_states", self.joint_states_callback, sensor, callback_group=group
            )
        )
        inputs.append(node.create_subscription(Twist, "cmd_vel", self.cmd_vel_callback, RELIABLE))
        self.entities.extend(inputs)
        self.input_thread = InputThread(node, inputs[:-1], name="policy_node_inputs") if group else None
        self._chunk_pub = node.create_publisher(JointTrajectory, "action_chunk", RELIABLE)
        self._command_pub = node.create_publisher(Float64MultiArray, "joint_commands", RELIABLE)
        self._diag_pub = node.create_publisher(DiagnosticArray, "diagnostics", RELIABLE)
        self.entities.extend([self._chunk_pub, self._command_pub, self._diag_pub])
        self._init_messages()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.entities.append(
            node.create_timer(1.0 / self.control_rate_hz, self.control_timer_callback, clock=steady)
        )
        if self.params.publish_diagnostics_hz > 0:
            period = 1.0 / self.params.publish_diagnostics_hz
            self.entities.append(node.create_timer(period, self.diagnostics_timer_callback, clock=steady))
        if self.input_thread is not None:
            self.input_thread.start()
        node.get_logger().info(
            "waiting for the model's inputs: "
            + "; ".join(f"{name} ({c.input_hint(name)})" for name in c.required_inputs())
        )

    def _init_messages(self) -> None:
        """Outgoing messages serialized once; the hot path only writes numbers into their bytes."""
        meta = self.metadata
        chunk = JointTrajectory(joint_names=list(meta.joint_names))
        views = []
        for k in range(meta.chunk):
            point = JointTrajectoryPoint()
            views.append(float_field_view(point, "positions", meta.action_dim))
            nanoseconds = round(k * meta.dt * 1e9)
            point.time_from_start.sec, point.time_from_start.nanosec = divmod(nanoseconds, 1_000_000_000)
            chunk.points.append(point)
        self._chunk_out = SerializedMessage(chunk, views, chunk.header)
        command = Float64MultiArray()
        self._command_out = SerializedMessage(command, [float_field_view(command, "data", meta.action_dim)])

    # --- input callbacks ---------------------------------------------------------------------------
    def joint_states_callback(self, msg: JointState, info: dict) -> None:
        """``info``: rclpy's MessageInfo (two parameters make rclpy pass it); its reception time starts
        the node-latency clock."""
        entered_ns = time.time_ns()
        received_ns = info.get("received_timestamp") or entered_ns  # rmw reception (system clock)
        with self.lock:
            self.dispatch_latency.add(max(entered_ns - received_ns, 0) * 1e-9)
            try:
                self._joints.read(msg)
            except MalformedMessageError as exc:
                self.controller.drop("joint_states", exc)
                return
            stamp = msg.header.stamp
            self._stamp, self._received_ns = stamp, received_ns
            seconds = stamp.sec + stamp.nanosec * 1e-9
            joints, now = self._joints, time.monotonic()
            self._publish(self.controller.joint_state(joints.position, joints.velocity, now, seconds))

    def imu_callback(self, msg: Imu) -> None:
        with self.lock:
            try:
                read_quaternion_wxyz(msg.orientation, self._quat)
                read_vector3(msg.angular_velocity, self._ang_vel)  # body frame (REP 145)
            except MalformedMessageError as exc:
                self.controller.drop("imu", exc)
                return
            self.controller.imu(self._quat, self._ang_vel, time.monotonic())

    def odom_callback(self, msg: Odometry) -> None:
        with self.lock:
            try:
                read_vector3(msg.twist.twist.linear, self._lin_vel)  # body frame (REP 105: child_frame_id)
            except MalformedMessageError as exc:
                self.controller.drop("odom", exc)
                return
            self.controller.odom(self._lin_vel, time.monotonic())

    def cmd_vel_callback(self, msg: Twist) -> None:
        command = np.array((msg.linear.x, msg.linear.y, msg.angular.z))
        self._accept("cmd_vel", self.controller.cmd_vel, command)

    def camera_info_callback(self, msg: CameraInfo) -> None:
        with self.lock:
            self.camera.camera_info(msg)

    def image_callback(self, msg: Image, info: dict) -> None:
        """A camera frame: converted (resampled) outside the lock, counted with its latency from rmw
        reception to the controller when accepted, counted under ``dropped`` when refused."""
        received_ns = info.get("received_timestamp") or time.time_ns()
        try:
            image = self.camera.image(msg)
        except MalformedMessageError as exc:
            with self.lock:
                self.controller.drop("image", exc)
            return
        if self._accept("image", self.controller.image, image):
            with self.lock:
                self.images += 1
                self.image_latency.add(max(time.time_ns() - received_ns, 0) * 1e-9)

    def _accept(self, source: str, give, value: np.ndarray) -> bool:
        """Hand ``value`` to the controller input ``give``; a refused one is counted and warned about."""
        with self.lock:
            try:
                give(value, time.monotonic())
            except MalformedMessageError as exc:
                self.controller.drop(source, exc)
                return False
            return True

    # --- timers and outputs ------------------------------------------------------------------------
    def control_timer_callback(self) -> None:
        with self.lock:
            self._publish(self.controller.tick(time.monotonic()))

    def _publish(self, out: Output) -> None:
        if out.chunk is not None:
            self._chunk_out.rows[:] = out.chunk
            self._chunk_out.set_stamp(self._stamp)
            self._chunk_pub.publish(self._chunk_out.payload())
            self.node_latency.add(max(time.time_ns() - self._received_ns, 0) * 1e-9)
        if out.command is not None:
            self._publish_command(out.command)

    def _publish_command(self, command: np.ndarray) -> None:
        """``command`` (model order) on ``joint_commands`` in the robot's order."""
        np.take(command, self._to_robot, out=self._command_out.rows[0])
        self._command_pub.publish(self._command_out.payload())

    def publish_hold(self) -> None:
        """Publish the hold command once (the last safe command; nothing if none was ever sent)."""
        with self.lock:
            c = self.controller
            if c is not None and c.command is not None and self.node.context.ok():
                self._publish_command(c.command)

    # --- diagnostics and stats ---------------------------------------------------------------------
    @property
    def missing_inputs(self) -> list[str]:
        """Inputs the model needs that have never arrived (joint_states, imu, odom, image order)."""
        return self.controller.missing_inputs

    @property
    def last_command(self) -> np.ndarray | None:
        """The last published joint command in ``robot_joint_names`` order (None before the first)."""
        command = self.controller.command
        return None if command is None else command[self._to_robot].copy()

    @property
    def stats(self) -> PolicyStats:
        """Latencies, provider, watchdog state and counters: what ``diagnostics`` publishes."""
        with self.lock:
            c = self.controller
            return PolicyStats(
                provider=c.policy.provider,
                watchdog=c.watchdog_state(time.monotonic()),
                ticks=c.counts["ticks"],
                plans=c.counts["plans"],
                hold_ticks=c.counts["hold_ticks"],
                rate_limited_steps=c.counts["rate_limited_steps"],
                model_latency=c.model_latency.summary(),
                node_latency=self.node_latency.summary(),
                dispatch_latency=self.dispatch_latency.summary(),
                dropped=dict(c.dropped),
                images=self.images,
                image_latency=self.image_latency.summary(),
                camera="" if self.camera is None else self.camera.status,
            )

    def diagnostics_timer_callback(self) -> None:
        self._diag_pub.publish(self.diagnostics_message())

    def diagnostics_message(self) -> DiagnosticArray:
        """The ``diagnostics`` message: watchdog level, latencies, counters and missing inputs."""
        s = self.stats
        level = {"ok": DiagnosticStatus.OK, "waiting": DiagnosticStatus.WARN, "stale": DiagnosticStatus.ERROR}
        message = {"ok": "running", "waiting": "waiting for state", "stale": "stale state: holding"}
        missing = self.missing_inputs
        values = {
            "provider": s.provider,
            "watchdog": s.watchdog,
            **{
                f"{name}_latency_{q}_ms": f"{getattr(getattr(s, f'{name}_latency'), f'{q}_ms'):.3f}"
                for name in ("model", "node", "dispatch")
                for q in ("p50", "p99")
            },
            "ticks": str(s.ticks),
            "plans": str(s.plans),
            "hold_ticks": str(s.hold_ticks),
            "rate_limited_steps": str(s.rate_limited_steps),
            "dropped_total": str(s.dropped_total),
            "missing_inputs": ",".join(missing),
            **(_camera_diagnostics(s) if self.camera is not None else {}),
            **{f"dropped/{k}": str(v) for k, v in sorted(s.dropped.items())},
        }
        status = DiagnosticStatus(
            level=level[s.watchdog],
            name=f"{self.node.get_fully_qualified_name()}: control",
            message=self.controller.missing_message(missing) if missing else message[s.watchdog],
            hardware_id=str(self.model_path),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.node.get_clock().now().to_msg()
        return array


def _camera_diagnostics(s: PolicyStats) -> dict[str, str]:
    """The camera's diagnostics values: frames accepted, their latency, the camera in use."""
    latency = s.image_latency
    return {
        "images": str(s.images),
        "image_latency_p50_ms": f"{latency.p50_ms:.3f}",
        "image_latency_p99_ms": f"{latency.p99_ms:.3f}",
        "camera": s.camera,
    }


def image_topic(meta: ModelMetadata) -> str | None:
    """The topic of the model's image input: ``camera/depth`` (1 channel), ``camera/image_raw`` (3)."""
    if meta.image is None:
        return None
    return "camera/depth" if meta.image.shape[0] == 1 else "camera/image_raw"
