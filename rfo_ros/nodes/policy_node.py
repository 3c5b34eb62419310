"""The policy node: ONNX flow policy in, action chunks and per-step joint commands out (DESIGN §5).

Inputs (sensor-data QoS, relative names): ``joint_states``, ``imu``, ``odom`` (needed when the model
observes the base linear velocity), ``cmd_vel`` (optional; parameters give the default command) and
``camera/depth`` (1 channel) or ``camera/image_raw`` (3 channels) when the model has an image input.
Outputs (reliable): ``action_chunk`` (JointTrajectory in the model's joint order, C points at
``time_from_start = k·dt``, ``header.stamp`` = stamp of the ``joint_states`` message observed),
``joint_commands`` (Float64MultiArray, one per control step, in ``robot_joint_names`` order) and
``diagnostics``.

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

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.subscription import Subscription
from rclpy.timer import Timer
from sensor_msgs.msg import Image, Imu, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from rfo_ros.envs.legged_obs import (
    FrameHistory,
    ObsField,
    ObsLayout,
    build_observation,
    check_frames,
    projected_gravity,
)
from rfo_ros.nodes.input_thread import InputThread, ServedElsewhere
from rfo_ros.nodes.params import Param, declare_params
from rfo_ros.nodes.paths import resolve_model_path
from rfo_ros.nodes.ros_conversions import (
    JointStateReader,
    MalformedMessageError,
    float_field_view,
    image_to_array,
    read_quaternion_wxyz,
    read_vector3,
)
from rfo_ros.nodes.spin import run_node
from rfo_ros.nodes.stats import LatencyWindow, PolicyStats
from rfo_ros.runtime import (
    BLENDS,
    ChunkScheduler,
    GpuUnavailableError,
    InferenceError,
    ModelError,
    make_policy,
)

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
    Param("depth_range_m", 4.0, "32FC1 depth (m) is divided by this and clipped to [0, 1]", 0.001, 1000.0),
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

#: Observation fields this node can produce from ROS messages (``legged_obs`` field names).
KNOWN_FIELDS = (
    "base_lin_vel",
    "base_ang_vel",
    "projected_gravity",
    "command",
    "joint_pos",
    "joint_vel",
    "last_action",
)
WARN_THROTTLE_S = 2.0
#: What each state input is for, so a message about a missing one says what to connect.
INPUT_HINTS = {
    "joint_states": "the model observes joint positions and velocities (sensor_msgs/JointState from the "
    "robot driver)",
    "imu": "the model observes base angular velocity and gravity (sensor_msgs/Imu)",
    "odom": "the model observes base_lin_vel (nav_msgs/Odometry from your state estimator)",
}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class PolicyNodeError(RuntimeError):
    """The node cannot run: model missing/corrupt, model and robot disagree, or a bad parameter."""


@dataclass
class _Inputs:
    """The latest accepted inputs (model joint order) and their steady-clock arrival times."""

    joint_pos: np.ndarray
    joint_vel: np.ndarray
    quat_wxyz: np.ndarray
    ang_vel: np.ndarray
    lin_vel: np.ndarray
    command: np.ndarray
    image: np.ndarray | None = None
    t_joint: float = -np.inf
    t_imu: float = -np.inf
    t_odom: float = -np.inf
    t_image: float = -np.inf
    t_cmd: float = -np.inf
    stamp: object = None  # builtin_interfaces/Time of the latest joint_states
    received_ns: int = 0  # rmw reception time (system clock, ns) of the latest joint_states


def layout_from_metadata(obs_layout: dict) -> ObsLayout:
    """The ``ObsLayout`` a model was trained with, from its ``legged_obs.layout_metadata`` description."""
    try:
        fields = tuple(
            ObsField(
                f["name"], int(f["size"]), tuple(map(float, f["scale"])), tuple(map(float, f["offset"])), ""
            )
            for f in obs_layout["fields"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyNodeError(
            f"model metadata has no usable obs_layout ({exc!r}): {obs_layout!r:.200}"
        ) from exc
    unknown = [f.name for f in fields if f.name not in KNOWN_FIELDS]
    if unknown:
        raise PolicyNodeError(
            f"the model observes {unknown}, which this node cannot build from ROS messages "
            f"(it knows {', '.join(KNOWN_FIELDS)})"
        )
    return ObsLayout(fields)


class PolicyCore:
    """What the plain and the managed (lifecycle) policy nodes share: setup from the model, input
    callbacks, the control loop, safety and diagnostics. Mixed into an rclpy ``Node`` or
    ``LifecycleNode``; ``_commanding`` says whether control steps run (the lifecycle's active state)."""

    _commanding = True

    def _init_core(self) -> None:
        """Before ``_setup``: the state every path (including a failed setup's teardown) relies on."""
        self._ready = False
        self._lock = threading.RLock()  # input thread vs executor callbacks
        self._input_thread = None
        self._entities: list = []  # subscriptions, publishers, timers: destroyed by ``_teardown``
        self.params = declare_params(self, PARAMS)

    def _setup(self) -> None:
        """Load and check the model, then create every subscription, publisher and timer."""
        self._check_params()
        self._load_model()
        self._init_state()
        self._create_interfaces()
        self._ready = True
        meta = self.metadata
        self.get_logger().info(
            f"policy {self.model_path} (task {meta.task}, K={meta.flow_steps}, C={meta.chunk}) on "
            f"{self.policy.provider}; {self.control_rate_hz:g} Hz, {self.params.tick_source} ticks, "
            f"replan every {self.replan_every} steps"
        )

    def _teardown(self) -> None:
        """Stop the input thread and release every interface and the model (idempotent)."""
        self._ready = False
        if self._input_thread is not None:
            self._input_thread.stop()
            self._input_thread = None
        for entity in self._entities:
            self.destroy_entity(entity)
        self._entities = []
        self.policy = None

    def destroy_entity(self, entity) -> None:
        """Destroy a subscription, publisher or timer this node created."""
        for kind, destroy in (
            (Subscription, self.destroy_subscription),
            (Publisher, self.destroy_publisher),
            (Timer, self.destroy_timer),
        ):
            if isinstance(entity, kind):
                destroy(entity)
                return

    # --- setup -------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        p = self.params
        choices = {"provider": ("auto", "cuda", "cpu"), "tick_source": ("timer", "state"), "blend": BLENDS}
        for name, allowed in choices.items():
            if getattr(p, name) not in allowed:
                raise PolicyNodeError(
                    f"parameter {name}={getattr(p, name)!r}: choose one of {', '.join(allowed)}"
                )

    def _load_model(self) -> None:
        p = self.params
        self.model_path = resolve_model_path(p.model_path)
        if not self.model_path.is_file():
            raise PolicyNodeError(
                f"policy model not found: {self.model_path} (set the model_path parameter, or export a "
                "checkpoint with `python -m rfo_ros.export CHECKPOINT -o models/quadruped.onnx`)"
            )
        try:
            self.policy = make_policy(
                self.model_path, backend="onnx", provider=p.provider, require_gpu=p.require_gpu, seed=p.seed
            )
        except (ModelError, GpuUnavailableError, ValueError) as exc:
            raise PolicyNodeError(f"cannot load policy model {self.model_path}: {exc}") from exc
        self.metadata = meta = self.policy.metadata
        self.robot_joint_names = tuple(p.robot_joint_names or meta.joint_names)
        self._check_robot(list(self.robot_joint_names))
        self.layout = layout_from_metadata(meta.obs_layout)
        try:
            self.history_frames = check_frames(meta.obs_layout.get("history", 1), "obs_layout history")
        except ValueError as exc:
            raise PolicyNodeError(f"model {self.model_path}: {exc}") from None
        if self.layout.size * self.history_frames != meta.obs_dim:
            raise PolicyNodeError(
                f"model {self.model_path}: obs_layout has {self.layout.size} entries per frame and "
                f"{self.history_frames} frames, obs_dim is {meta.obs_dim}"
            )
        if p.blend == "realtime" and not meta.inpainting:
            raise PolicyNodeError(
                f"blend=realtime needs a model exported with --inpainting (committed actions are graph "
                f"inputs); {self.model_path} has none: re-export it, or choose latest/ensemble/overlap"
            )
        self.control_rate_hz = p.control_rate_hz or 1.0 / meta.dt
        self.replan_every = p.replan_every or meta.chunk
        if self.replan_every > meta.chunk:
            raise PolicyNodeError(
                f"replan_every={self.replan_every} exceeds the model's chunk length {meta.chunk}"
            )

    def _check_robot(self, robot: list[str]) -> None:
        """The model's joints must be exactly the robot's (any order): every joint commanded, none unknown."""
        try:
            self.metadata.check_robot(robot)
        except ModelError as exc:
            raise PolicyNodeError(f"model and robot disagree (robot_joint_names): {exc}") from exc
        extra = [name for name in robot if name not in self.metadata.joint_names]
        if extra:
            raise PolicyNodeError(
                f"model and robot disagree (robot_joint_names): robot joints {extra} are not commanded "
                f"by model {self.model_path} (its joints: {list(self.metadata.joint_names)})"
            )

    def _init_state(self) -> None:
        meta, m = self.metadata, self.metadata.action_dim
        self.joint_names = tuple(meta.joint_names)
        self._joints = JointStateReader(self.joint_names)
        # joint_commands go out in the robot's order; everything inside stays in the model's order.
        self._to_robot = np.array([self.joint_names.index(n) for n in self.robot_joint_names])
        self._low, self._high = meta.action_low, meta.action_high
        self._offset = meta.action_offset
        self.default_pose = np.clip(self._offset, self._low, self._high)
        self._in = _Inputs(
            joint_pos=self._joints.position,
            joint_vel=self._joints.velocity,
            quat_wxyz=np.array([1.0, 0.0, 0.0, 0.0]),
            ang_vel=np.zeros(3),
            lin_vel=np.zeros(3),
            command=self._default_command(),
        )
        self._last_action = np.zeros(m)  # policy space [-1, 1]: the "last_action" observation field
        self._fields = {
            "base_lin_vel": self._in.lin_vel,
            "base_ang_vel": self._in.ang_vel,
            "projected_gravity": np.zeros(3),
            "command": self._in.command,
            "joint_pos": self._in.joint_pos,
            "joint_vel": self._in.joint_vel,
            "last_action": self._last_action,
        }
        self._needs_odom = "base_lin_vel" in self.layout.names
        self._history = FrameHistory(self.history_frames)
        self._frame_step = -1  # the control step whose frame the history holds last
        # Noise: zero-noise models take none; else zeros (deterministic) or None (the policy's seeded rng).
        self._noise = None if meta.zero_noise or not self.params.zero_noise else np.zeros((meta.chunk, m))
        self._scheduler = ChunkScheduler(
            meta.chunk, m, replan_every=self.replan_every, blend=self.params.blend,
            ensemble_decay=self.params.ensemble_decay,
            committed_steps=min(self.params.committed_steps, meta.chunk),
        )  # fmt: skip
        self._step = 0  # control steps executed
        self._command: np.ndarray | None = None  # last published command (model order), always safe
        self._holding = False
        self._counts = {"ticks": 0, "plans": 0, "hold_ticks": 0, "rate_limited_steps": 0}
        self._dropped: dict[str, int] = {}
        self._model_latency = LatencyWindow()
        self._node_latency = LatencyWindow()
        self._dispatch_latency = LatencyWindow()

    def _default_command(self) -> np.ndarray:
        p = self.params
        return np.array([p.default_cmd_vx, p.default_cmd_vy, p.default_cmd_yaw_rate], dtype=np.float64)

    def _create_interfaces(self) -> None:
        sensor = qos_profile_sensor_data
        group = ServedElsewhere() if self.params.input_thread else None
        inputs = [
            self.create_subscription(Imu, "imu", self.imu_callback, sensor, callback_group=group),
            self.create_subscription(Odometry, "odom", self.odom_callback, sensor, callback_group=group),
        ]
        self.image_topic = None
        if self.metadata.image is not None:
            self.image_topic = "camera/depth" if self.metadata.image.shape[0] == 1 else "camera/image_raw"
            inputs.append(
                self.create_subscription(
                    Image, self.image_topic, self.image_callback, sensor, callback_group=group
                )
            )
        # Last on purpose: when imu/odom/image and joint_states (the trigger of a control step) are ready
        # together, they are taken in creation order (InputThread, and rclpy's executors), so the trigger
        # sees the others.
        inputs.append(
            self.create_subscription(
                JointState, "joint_states", self.joint_states_callback, sensor, callback_group=group
            )
        )
        inputs.append(self.create_subscription(Twist, "cmd_vel", self.cmd_vel_callback, RELIABLE))
        self._entities.extend(inputs)
        self._input_thread = InputThread(self, inputs[:-1], name="policy_node_inputs") if group else None
        self._chunk_pub = self.create_publisher(JointTrajectory, "action_chunk", RELIABLE)
        self._command_pub = self.create_publisher(Float64MultiArray, "joint_commands", RELIABLE)
        self._diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", RELIABLE)
        self._entities.extend([self._chunk_pub, self._command_pub, self._diag_pub])
        self._init_messages()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._entities.append(
            self.create_timer(1.0 / self.control_rate_hz, self.control_timer_callback, clock=steady)
        )
        if self.params.publish_diagnostics_hz > 0:
            period = 1.0 / self.params.publish_diagnostics_hz
            self._entities.append(self.create_timer(period, self.diagnostics_timer_callback, clock=steady))
        if self._input_thread is not None:
            self._input_thread.start()
        self.get_logger().info(
            "waiting for the model's inputs: "
            + "; ".join(f"{name} ({self._input_hint(name)})" for name in self._required_inputs())
        )

    def _init_messages(self) -> None:
        """Preallocated outgoing messages; the hot path only writes numbers into their buffers."""
        meta = self.metadata
        self._chunk_msg = JointTrajectory(joint_names=list(self.joint_names))
        self._chunk_views = []
        for k in range(meta.chunk):
            point = JointTrajectoryPoint()
            view = float_field_view(point, "positions", meta.action_dim)
            nanoseconds = round(k * meta.dt * 1e9)
            point.time_from_start.sec, point.time_from_start.nanosec = divmod(nanoseconds, 1_000_000_000)
            self._chunk_msg.points.append(point)
            self._chunk_views.append(view)
        self._chunk_buf = np.zeros((meta.chunk, meta.action_dim))
        self._command_msg = Float64MultiArray()
        self._command_view = float_field_view(self._command_msg, "data", meta.action_dim)

    # --- input callbacks ---------------------------------------------------------------------------
    def joint_states_callback(self, msg: JointState, info: dict) -> None:
        """``info``: rclpy's MessageInfo (two parameters make rclpy pass it); its reception time starts
        the node-latency clock."""
        entered_ns = time.time_ns()
        received_ns = (
            info.get("received_timestamp") or entered_ns
        )  # rmw reception (system clock), 0 if unknown
        with self._lock:
            self._dispatch_latency.add(max(entered_ns - received_ns, 0) * 1e-9)
            self._on_joint_states(msg, received_ns)

    def _on_joint_states(self, msg: JointState, received_ns: int) -> None:
        try:
            self._joints.read(msg)
        except MalformedMessageError as exc:
            self._drop("joint_states", exc)
            return
        now = time.monotonic()
        stamp = msg.header.stamp
        repeated = stamp == self._in.stamp and (stamp.sec or stamp.nanosec)  # the same state sent again
        self._in.t_joint = now
        self._in.stamp = stamp
        self._in.received_ns = received_ns
        if not self._commanding or not self._fresh(now):
            return
        if self.params.tick_source == "state":
            if not repeated:  # one control step per state, not per message
                self._control_step(now)
        elif self._holding or self._scheduler.needs_plan(self._step):
            self._resume()
            self._plan()

    def imu_callback(self, msg: Imu) -> None:
        with self._lock:
            try:
                read_quaternion_wxyz(msg.orientation, self._in.quat_wxyz)
                read_vector3(msg.angular_velocity, self._in.ang_vel)  # body frame (REP 145)
            except MalformedMessageError as exc:
                self._drop("imu", exc)
                return
            self._in.t_imu = time.monotonic()

    def odom_callback(self, msg: Odometry) -> None:
        with self._lock:
            try:
                read_vector3(msg.twist.twist.linear, self._in.lin_vel)  # body frame (REP 105: child_frame_id)
            except MalformedMessageError as exc:
                self._drop("odom", exc)
                return
            self._in.t_odom = time.monotonic()

    def cmd_vel_callback(self, msg: Twist) -> None:
        values = (msg.linear.x, msg.linear.y, msg.angular.z)
        with self._lock:
            if not all(math.isfinite(v) for v in values):
                self._drop("cmd_vel", MalformedMessageError("nonfinite", f"cmd_vel is not finite: {values}"))
                return
            self._in.command[:] = values
            self._in.t_cmd = time.monotonic()

    def image_callback(self, msg: Image) -> None:
        try:
            image = image_to_array(msg, self.metadata.image.shape, self.params.depth_range_m)
        except MalformedMessageError as exc:
            with self._lock:
                self._drop("image", exc)
            return
        with self._lock:
            self._in.image = image
            self._in.t_image = time.monotonic()

    def _drop(self, source: str, exc: MalformedMessageError) -> None:
        key = f"{source}/{exc.reason}"
        self._dropped[key] = self._dropped.get(key, 0) + 1
        self.get_logger().warning(
            f"dropped a {source} message ({exc}); {self._dropped[key]} so far",
            throttle_duration_sec=WARN_THROTTLE_S,
        )

    # --- control loop ------------------------------------------------------------------------------
    def _required_inputs(self) -> dict[str, float]:
        """Topic -> steady-clock time of its last accepted message, for every input the model needs."""
        inputs = {"joint_states": self._in.t_joint, "imu": self._in.t_imu}
        if self._needs_odom:
            inputs["odom"] = self._in.t_odom
        if self.image_topic is not None:
            inputs[self.image_topic] = self._in.t_image
        return inputs

    def _input_hint(self, topic: str) -> str:
        if topic == self.image_topic:
            c, h, w = self.metadata.image.shape
            kind = "depth image" if c == 1 else "camera image"
            return f"the model observes a {h}x{w} {kind} (sensor_msgs/Image)"
        return INPUT_HINTS[topic]

    @property
    def missing_inputs(self) -> list[str]:
        """Inputs the model needs that have never arrived (joint_states, imu, odom, image order)."""
        return [name for name, t in self._required_inputs().items() if not np.isfinite(t)]

    def _missing_message(self, missing: list[str]) -> str:
        return "; ".join(f"waiting for {name}: {self._input_hint(name)}" for name in missing)

    def _fresh(self, now: float) -> bool:
        """Every input the model needs arrived within ``watchdog_timeout_s`` (steady clock)."""
        oldest = min(self._required_inputs().values())
        return now - oldest <= self.params.watchdog_timeout_s

    def control_timer_callback(self) -> None:
        with self._lock:
            self._on_control_timer()

    def _on_control_timer(self) -> None:
        if not self._commanding:
            return  # inactive (lifecycle): the controller keeps the hold command it was sent
        now = time.monotonic()
        timeout = self.params.cmd_vel_timeout_s
        if timeout > 0 and now - self._in.t_cmd > timeout and np.isfinite(self._in.t_cmd):
            self._in.command[:] = self._default_command()
            self._in.t_cmd = -np.inf
        if not self._fresh(now):
            self._hold(now)
        elif self.params.tick_source == "timer":
            self._control_step(now)

    def _control_step(self, now: float) -> None:
        """One control step from fresh state: plan if due, then publish this step's command."""
        self._resume()
        if self._scheduler.needs_plan(self._step) and not self._plan():
            self._hold(now)
            return
        if self.history_frames > 1:
            self._observation()  # every control step's frame enters the history, as in training
        action = self._scheduler.action(self._step)
        if action is None:  # no chunk covers this step (cannot happen after a successful plan)
            self._hold(now)
            return
        self._last_action[:] = self.metadata.policy_action(action)
        self._publish_command(action)
        self._step += 1
        self._counts["ticks"] += 1

    def _resume(self) -> None:
        if self._holding:
            self._holding = False
            self.restart_plans()
            self.get_logger().info("state is fresh again: resuming the policy")

    def restart_plans(self) -> None:
        """Forget the plans and the observation history from before a hold or an inactive spell."""
        self._scheduler.reset()
        self._history.clear()
        self._frame_step = -1

    def _plan(self) -> bool:
        """Run the model on the current observation, schedule the chunk from this step and publish it."""
        obs = self._observation()
        t0 = time.perf_counter()
        try:
            chunk = self.policy.infer(
                obs, noise=self._noise, image=self._in.image, **self._scheduler.conditioning(self._step)
            )
        except (InferenceError, ValueError) as exc:
            self._drop("model", MalformedMessageError("nonfinite", f"inference failed: {exc}"))
            return False
        self._model_latency.add(time.perf_counter() - t0)
        self._scheduler.add(chunk, self._step)
        self._publish_chunk(chunk)
        self._counts["plans"] += 1
        return True

    def _observation(self) -> np.ndarray:
        """The model input at this control step. With a history, this step's frame is stored once (the
        first call of the step), so the plan and the step share it."""
        if self.history_frames > 1 and self._frame_step == self._step:
            return self._history.current()  # stored already: nothing to build
        self._fields["projected_gravity"] = projected_gravity(self._in.quat_wxyz)
        if self.history_frames == 1:
            return build_observation(self._fields, self.layout)
        self._frame_step = self._step
        return self._history.push(build_observation(self._fields, self.layout))

    def _publish_chunk(self, chunk: np.ndarray) -> None:
        np.minimum(np.maximum(chunk, self._low, out=self._chunk_buf), self._high, out=self._chunk_buf)
        for view, row in zip(self._chunk_views, self._chunk_buf, strict=True):
            view[:] = row
        self._chunk_msg.header.stamp = self._in.stamp
        self._chunk_pub.publish(self._chunk_msg)
        self._node_latency.add(max(time.time_ns() - self._in.received_ns, 0) * 1e-9)

    def _publish_command(self, target: np.ndarray) -> None:
        """Clamp to the joint limits, rate-limit against the previous command, never publish non-finite."""
        if not np.isfinite(target).all():
            target = self._command if self._command is not None else self.default_pose
        previous = self._command if self._command is not None else self._in.joint_pos
        step = self.params.max_joint_step
        target = np.clip(target, self._low, self._high)
        command = np.clip(np.clip(target, previous - step, previous + step), self._low, self._high)
        if not np.array_equal(command, target):
            self._counts["rate_limited_steps"] += 1
        self._command = command
        self._command_view[:] = command[self._to_robot]
        self._command_pub.publish(self._command_msg)

    def _hold(self, now: float) -> None:
        """Stale state: keep publishing the last safe command (the default pose if none yet)."""
        missing = self.missing_inputs
        if missing:
            self.get_logger().warning(self._missing_message(missing), throttle_duration_sec=WARN_THROTTLE_S)
        if not np.isfinite(self._in.t_joint):
            return  # no state ever: nothing to hold against, publish nothing
        if not self._holding:
            self._holding = True
            if not missing:
                name, seen = min(self._required_inputs().items(), key=lambda item: item[1])
                self.get_logger().warning(
                    f"state is stale ({name} last arrived {now - seen:.3f} s ago, limit "
                    f"{self.params.watchdog_timeout_s:.3f} s): holding the last command"
                )
        self._publish_command(self._command if self._command is not None else self.default_pose)
        self._counts["hold_ticks"] += 1

    # --- diagnostics and stats ---------------------------------------------------------------------
    @property
    def watchdog_state(self) -> str:
        """ "waiting" (no state yet), "ok" or "stale" (holding)."""
        if not np.isfinite(self._in.t_joint):
            return "waiting"
        return "stale" if self._holding or not self._fresh(time.monotonic()) else "ok"

    @property
    def stats(self) -> PolicyStats:
        """Latencies, provider, watchdog state and counters: what ``diagnostics`` publishes."""
        with self._lock:
            return self._stats()

    def _stats(self) -> PolicyStats:
        return PolicyStats(
            provider=self.policy.provider,
            watchdog=self.watchdog_state,
            ticks=self._counts["ticks"],
            plans=self._counts["plans"],
            hold_ticks=self._counts["hold_ticks"],
            rate_limited_steps=self._counts["rate_limited_steps"],
            model_latency=self._model_latency.summary(),
            node_latency=self._node_latency.summary(),
            dispatch_latency=self._dispatch_latency.summary(),
            dropped=dict(self._dropped),
        )

    @property
    def last_command(self) -> np.ndarray | None:
        """The last published joint command in ``robot_joint_names`` order (None before the first)."""
        return None if self._command is None else self._command[self._to_robot].copy()

    def diagnostics_timer_callback(self) -> None:
        self._diag_pub.publish(self.diagnostics_message())

    def diagnostics_message(self) -> DiagnosticArray:
        s = self.stats
        level = {"ok": DiagnosticStatus.OK, "waiting": DiagnosticStatus.WARN, "stale": DiagnosticStatus.ERROR}
        message = {"ok": "running", "waiting": "waiting for state", "stale": "stale state: holding"}
        missing = self.missing_inputs
        values = {
            "provider": s.provider,
            "watchdog": s.watchdog,
            "model_latency_p50_ms": f"{s.model_latency.p50_ms:.3f}",
            "model_latency_p99_ms": f"{s.model_latency.p99_ms:.3f}",
            "node_latency_p50_ms": f"{s.node_latency.p50_ms:.3f}",
            "node_latency_p99_ms": f"{s.node_latency.p99_ms:.3f}",
            "dispatch_latency_p50_ms": f"{s.dispatch_latency.p50_ms:.3f}",
            "dispatch_latency_p99_ms": f"{s.dispatch_latency.p99_ms:.3f}",
            "ticks": str(s.ticks),
            "plans": str(s.plans),
            "hold_ticks": str(s.hold_ticks),
            "rate_limited_steps": str(s.rate_limited_steps),
            "dropped_total": str(s.dropped_total),
            "missing_inputs": ",".join(missing),
            **{f"dropped/{k}": str(v) for k, v in sorted(s.dropped.items())},
        }
        status = DiagnosticStatus(
            level=level[s.watchdog],
            name=f"{self.get_fully_qualified_name()}: control",
            message=self._missing_message(missing) if missing else message[s.watchdog],
            hardware_id=str(self.model_path),
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        return array

    # --- shutdown ----------------------------------------------------------------------------------
    def publish_hold(self) -> None:
        """Publish the hold command once (the last safe command; nothing if none was ever sent)."""
        with self._lock:
            if self._ready and self._command is not None and self.context.ok():
                self._command_view[:] = self._command[self._to_robot]
                self._command_pub.publish(self._command_msg)

    def destroy_node(self) -> None:
        """Clean hold on shutdown: inputs stop, then the last safe command goes out, then the node goes."""
        try:
            if getattr(self, "_input_thread", None) is not None:
                self._input_thread.stop()
            self.publish_hold()
        finally:
            super().destroy_node()


class PolicyNode(PolicyCore, Node):
    """Runs an exported flow policy in closed loop from construction; see the module docstring.

    ``rfo_ros.nodes.policy_lifecycle_node.PolicyLifecycleNode`` is the managed version."""

    def __init__(self, node_name: str = "policy_node", **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._init_core()
            self._setup()
        except Exception:
            Node.destroy_node(self)
            raise


def main(args=None) -> int:
    """``ros2 run rfo_ros policy_node``: spin until SIGINT/SIGTERM; exit 1 if the node cannot start."""
    return run_node(PolicyNode, "policy_node", (PolicyNodeError,), args)


__all__ = ["PARAMS", "PolicyCore", "PolicyNode", "PolicyNodeError", "layout_from_metadata", "main"]

if __name__ == "__main__":
    sys.exit(main())
