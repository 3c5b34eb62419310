"""The sim node: a headless MuJoCo world from ``sim/`` that stands in for the robot.

Publishes, at ``state_rate_hz`` of sim time (default: the world's task control rate), ``imu``, ``odom``,
the camera images, ``joint_states`` (in that order: the policy node treats ``joint_states`` as the trigger
of a control step) and ``/clock``. Images, at ``camera_rate_hz`` of sim time, from the MJCF camera
``camera_name``: with ``publish_camera`` ``camera/image_raw`` (rgb8, rendered offscreen, ``MUJOCO_GL=egl``);
with ``publish_depth`` ``camera/depth`` and ``camera/camera_info`` as a real depth camera publishes them
(REP 118 z-depth, ``32FC1`` metres or ``16UC1`` millimetres, no return beyond ``depth_range_m``) at its own
resolution and field of view (``depth_width`` x ``depth_height`` at ``depth_fovy_deg``; rendered by
``sim_camera``), so a policy node resamples them to its model's camera as on a robot. Applies
the latest ``joint_commands`` as actuator controls (position targets, actuator order) or, with
``command_source: action_chunk``, executes the points of the latest ``action_chunk`` at
``header.stamp + time_from_start`` (sim time).

Timing: ``real_time_factor`` sim seconds per wall second (0 = as fast as possible). With ``lockstep`` the
sim waits, after each state publication, for one ``joint_commands`` message (at most
``lockstep_timeout_s``) before it steps on: with a ``tick_source: state`` policy node this gives an exact,
deterministic closed loop at any speed.

With a ``robot`` file (``rfo_ros.robot``) the world is that robot's MJCF, it starts in the standing
pose, publishes at its control period, reads ``joint_commands`` in the robot file's joint order and
detects falls with its termination; without one, ``world`` is loaded as is (commands in actuator order).

A world with an obstacle course (``sim/quadruped_terrain.xml``, ``rfo_ros.envs.course``) gets one course
per run, drawn from ``course_seed`` (-1: the course as the MJCF places it) before any camera is made; the
trunk's height is then measured above the ground under the standing feet, as the training task does, and
the report counts crossings: attempts (the run, or the time between two ``reset_on_fall`` restarts) in
which the trunk passed the course's finish line and the robot never fell.

For reports: a fall detector (trunk below ``fall_min_height`` or tilted past ``fall_max_tilt_deg``, the
task's failure termination), the distance walked and a (time, qpos) trajectory sampled every
``record_every_s`` — see ``SimNode.report()``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless offscreen rendering

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.clock import Clock, ClockType  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rosgraph_msgs.msg import Clock as ClockMsg  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from rfo_ros.envs.course import Course, CourseSpec, support_points  # noqa: E402
from rfo_ros.envs.legged_obs import projected_gravity, quat_rotate_inverse  # noqa: E402
from rfo_ros.nodes.params import Param, declare_params  # noqa: E402
from rfo_ros.nodes.ros_conversions import (  # noqa: E402
    depth_image_data,
    fill_camera_info,
    fill_imu,
    fill_odometry,
    float_field_view,
    image_message,
    seconds_from_stamp,
    stamp_from_seconds,
)
from rfo_ros.nodes.sim_camera import DEPTH_RENDERERS  # noqa: E402
from rfo_ros.nodes.spin import run_node  # noqa: E402
from rfo_ros.robot import Robot  # noqa: E402
from rfo_ros.runtime.camera import Intrinsics  # noqa: E402
from rfo_ros.sim.worlds import load_model  # noqa: E402

PARAMS = (
    Param(
        "robot",
        "",
        "robot file (config/robots/<name>.yaml or a path): its MJCF, standing pose, termination, control "
        "period and joint order; when set, world, initial_keyframe and fall_* are taken from it",
    ),
    Param("world", "quadruped", "MJCF world without a robot file: a name in sim/ or a path to an .xml file"),
    Param("real_time_factor", 1.0, "sim seconds per wall second; 0 = as fast as possible", 0.0, 1000.0),
    Param(
        "lockstep", False, "after each state publication wait for one joint_commands message before stepping"
    ),
    Param("lockstep_timeout_s", 0.5, "longest wait (wall clock) for a command in lockstep mode", 0.0, 60.0),
    Param(
        "state_rate_hz",
        0.0,
        "state publication rate (sim time); 0 = the world's task control rate",
        0.0,
        10000.0,
    ),
    Param(
        "command_source",
        "joint_commands",
        "joint_commands: apply the latest per-step command; "
        "action_chunk: execute the latest chunk's points at their times",
    ),
    Param(
        "initial_keyframe", "", "keyframe to start from; empty = the world's first keyframe (qpos0 if none)"
    ),
    Param("publish_camera", False, "render camera/image_raw (rgb8) offscreen (needs EGL)"),
    Param(
        "publish_depth",
        False,
        "camera/depth (z-depth, REP 118) and camera/camera_info, as a real depth camera",
    ),
    Param("camera_name", "front", "MJCF camera of both images"),
    Param("camera_width", 64, "rgb image width (px)", 1, 4096),
    Param("camera_height", 64, "rgb image height (px)", 1, 4096),
    Param("depth_width", 320, "depth image width (px)", 1, 4096),
    Param("depth_height", 240, "depth image height (px)", 1, 4096),
    Param(
        "depth_fovy_deg",
        0.0,
        "depth camera's vertical field of view (deg); 0 = the MJCF camera's",
        0.0,
        179.0,
    ),
    Param(
        "depth_encoding", "32FC1", "32FC1 (metres, +inf = no return) or 16UC1 (millimetres, 0 = no return)"
    ),
    Param(
        "depth_renderer",
        "gl",
        "gl: MuJoCo's OpenGL renderer (MUJOCO_GL=egl), ~5 ms per 320x240 frame on a CPU; "
        "raycast: mj_multiRay, no GL, ~33 ms per 320x240 frame",
    ),
    Param("depth_range_m", 4.0, "depth camera range: farther reads as no return (m)", 0.001, 1000.0),
    Param("camera_rate_hz", 30.0, "image rate (sim time); 0 = the state rate", 0.0, 10000.0),
    Param(
        "fall_min_height",
        0.15,
        "a trunk lower than this (m) is a fall (the task's termination)",
        -100.0,
        100.0,
    ),
    Param(
        "fall_max_tilt_deg",
        60.0,
        "a trunk tilted more than this is a fall (the task's termination)",
        0.0,
        180.0,
    ),
    Param("reset_on_fall", False, "restart from the initial keyframe after a fall"),
    Param(
        "course_seed",
        0,
        "worlds with an obstacle course: the seed of this run's course; -1 = the course the MJCF places",
        -1,
        2**31 - 1,
    ),
    Param(
        "record_every_s", 0.1, "sample (time, qpos) this often (sim time) for reports; 0 = off", 0.0, 3600.0
    ),
    Param("base_frame", "base", "child_frame_id of odom and frame_id of imu"),
    Param("odom_frame", "odom", "frame_id of odom"),
)

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
#: Wall seconds of stepping per timer callback when running as fast as possible (then other callbacks run).
BURST_S = 0.005
#: In lockstep, how often the state is published again while no controller has answered yet (wall s).
STARTUP_REPUBLISH_S = 0.05


@dataclass(frozen=True)
class SimReport:
    """What the demo report needs from a run (sim time in seconds, distances in metres)."""

    sim_time: float
    steps: int
    falls: int
    forward_distance_m: float
    distance_m: float
    mean_forward_speed: float
    commands_received: int
    lockstep_timeouts: int
    #: Worlds with an obstacle course: attempts that crossed without a fall, attempts, the finish line (m).
    crossings: int | None = None
    attempts: int = 1
    course_finish_x: float | None = None
    #: Depth frames published (``publish_depth``).
    depth_frames: int = 0


class SimNode(Node):
    """A MuJoCo world as a ROS robot: state out, position targets in (see the module docstring)."""

    def __init__(self, node_name: str = "sim_node", **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self.params = declare_params(self, PARAMS)
            self._load_world()
            self._init_state()
            self._create_interfaces()
        except Exception:
            self.destroy_node()
            raise
        self.get_logger().info(
            f"world {self.world}: dt {self.model.opt.timestep:g} s, "
            f"state at {1 / self.state_period:g} Hz, "
            f"real-time factor {self.params.real_time_factor:g}{', lockstep' if self.params.lockstep else ''}"
        )

    # --- setup -------------------------------------------------------------------------------------
    def _load_world(self) -> None:
        p = self.params
        if p.command_source not in ("joint_commands", "action_chunk"):
            raise ValueError(
                f"parameter command_source={p.command_source!r}: choose joint_commands or action_chunk"
            )
        if p.robot:
            self.robot = robot = Robot.load(p.robot)
            self.model = m = robot.model
            #: The MJCF this node simulates (a name in sim/ or a path), e.g. for rendering the run.
            self.world = str(robot.mjcf_path)
            task_dt = robot.dt
            term = robot.description.termination
            self.fall_min_height, self.fall_max_tilt_deg = term.min_height, term.max_tilt_deg
        else:
            self.robot = None
            self.model = m = load_model(p.world)
            self.world = p.world
            task_dt = _task_dt(p.world, float(m.opt.timestep))
            self.fall_min_height, self.fall_max_tilt_deg = p.fall_min_height, p.fall_max_tilt_deg
        self.data = mujoco.MjData(m)
        timestep = float(m.opt.timestep)
        rate = p.state_rate_hz or 1.0 / task_dt
        self.substeps = max(1, round(1.0 / (rate * timestep)))
        self.state_period = self.substeps * timestep
        # Joints published on joint_states: every hinge/slide joint (the free base goes to odom/imu).
        scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        joints = [j for j in range(m.njnt) if int(m.jnt_type[j]) in scalar]
        self.joint_names = [m.joint(j).name for j in joints]
        self._qadr = m.jnt_qposadr[joints]
        self._vadr = m.jnt_dofadr[joints]
        self.actuator_joint_names = [m.joint(int(j)).name for j in m.actuator_trnid[:, 0]]
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
        self._free_qadr = int(m.jnt_qposadr[free[0]]) if free else None
        self._free_vadr = int(m.jnt_dofadr[free[0]]) if free else None
        self._accel = _sensor_adr(m, mujoco.mjtSensor.mjSENS_ACCELEROMETER)
        self._load_course()

    def _load_course(self) -> None:
        """Draw and place this run's obstacle course, when the world has one (before cameras copy it)."""
        m, seed = self.model, self.params.course_seed
        self.course = Course(m) if CourseSpec.from_model(m) is not None else None
        if self.course is None:
            return
        draw = self.course.draw(np.random.default_rng(seed), 1)[0] if seed >= 0 else self.course.nominal
        self.course_layout = draw
        self.course.apply(m, draw)
        self.course_finish_x = float(self.course.finish_x(draw[None])[0])
        # Where the ground that carries the robot is: its standing feet (without a robot file, the trunk).
        self._support = support_points(self.robot) if self.robot is not None else np.zeros((1, 2))
        blocks = ", ".join(f"x {a:.2f}-{b:.2f} m, {h * 100:.0f} cm high" for a, b, h in draw)
        self.get_logger().info(
            f"obstacle course (seed {seed}): {blocks}; finish at x = {self.course_finish_x:.2f} m"
        )

    def _init_state(self) -> None:
        m = self.model
        keyframe = self.params.initial_keyframe
        self._standing: tuple[np.ndarray, np.ndarray] | None = None  # (qpos, ctrl) of a robot's pose
        if self.robot is not None:
            keyframe = self.robot.description.standing_pose.keyframe
            if keyframe is None:
                robot = self.robot
                self._standing = (robot.standing_qpos(), robot.standing_pose[robot.ctrl_order])
        if keyframe:
            self._key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, keyframe)
            if self._key < 0:
                raise ValueError(f"world {self.world} has no keyframe {keyframe!r}")
        else:
            self._key = 0 if m.nkey > 0 else -1
        self.steps = 0
        self.falls = 0
        self.fallen = False
        self.commands_received = 0
        self.lockstep_timeouts = 0
        self.dropped = 0
        self.depth_frames = 0
        self._attempts: list[list[bool]] = []  # per attempt: [crossed, fell]
        self.trajectory: list[tuple[float, np.ndarray]] = []
        self._chunk: tuple[float, np.ndarray, np.ndarray] | None = None  # (start s, times (C,), ctrl (C, nu))
        self._forward_before_reset = 0.0
        self._distance_before_reset = 0.0
        self._reset()
        self._min_tilt_cos = math.cos(math.radians(self.fall_max_tilt_deg))

    def _reset(self) -> None:
        m, d = self.model, self.data
        if self._standing is not None:
            mujoco.mj_resetData(m, d)
            d.qpos[:], d.ctrl[:] = self._standing
        elif self._key >= 0:
            mujoco.mj_resetDataKeyframe(m, d, self._key)
        else:
            mujoco.mj_resetData(m, d)
        mujoco.mj_forward(m, d)
        self._start_xy = self._base_pos()[:2].copy()
        self._attempts.append([False, False])
        self._waiting_since: float | None = None  # lockstep: wall time of the last publication
        self._command_seen = True
        self._next_record = (
            0.0 if not self.trajectory else self.trajectory[-1][0] + self.params.record_every_s
        )

    def _create_interfaces(self) -> None:
        p = self.params
        self._imu_pub = self.create_publisher(Imu, "imu", RELIABLE)
        self._odom_pub = self.create_publisher(Odometry, "odom", RELIABLE)
        self._joint_pub = self.create_publisher(JointState, "joint_states", RELIABLE)
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", RELIABLE)
        self.create_subscription(Float64MultiArray, "joint_commands", self.joint_commands_callback, RELIABLE)
        if p.command_source == "action_chunk":
            self.create_subscription(JointTrajectory, "action_chunk", self.action_chunk_callback, RELIABLE)
        self._renderer = self._depth_camera = None  # rgb renderer, depth camera (sim_camera)
        if p.publish_camera or p.publish_depth:
            self._init_cameras()
        self._joint_msg = JointState(name=list(self.joint_names))
        n = len(self.joint_names)
        self._pos_view = float_field_view(self._joint_msg, "position", n)
        self._vel_view = float_field_view(self._joint_msg, "velocity", n)
        self._eff_view = float_field_view(self._joint_msg, "effort", n)
        rtf = p.real_time_factor
        if rtf > 0:
            period = self.state_period / rtf
        else:  # lockstep: commands drive the stepping, the timer only watches for timeouts
            period = 0.01 if p.lockstep else 0.001
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._wall_anchor: tuple[float, float] | None = None  # (wall, sim) when real-time pacing started
        self._timer = self.create_timer(period, self.step_timer_callback, clock=steady)
        self._publish_state()

    def _init_cameras(self) -> None:
        p, m = self.params, self.model
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, p.camera_name) < 0:
            raise ValueError(f"world {self.world} has no camera {p.camera_name!r}")
        if p.publish_camera:
            try:
                self._renderer = mujoco.Renderer(m, p.camera_height, p.camera_width)
            except Exception as exc:  # MuJoCo picks its GL backend when first imported
                raise ValueError(
                    f"publish_camera: offscreen rendering failed ({exc}); "
                    "start the process with MUJOCO_GL=egl (or osmesa)"
                ) from exc
            self._image_pub = self.create_publisher(Image, "camera/image_raw", RELIABLE)
        if p.publish_depth:
            self._init_depth_camera()
        self._image_period = 1.0 / p.camera_rate_hz if p.camera_rate_hz > 0 else self.state_period
        self._next_image = 0.0

    def _init_depth_camera(self) -> None:
        p, m = self.params, self.model
        if p.depth_encoding not in ("32FC1", "16UC1"):
            raise ValueError(f"parameter depth_encoding={p.depth_encoding!r}: choose 32FC1 or 16UC1")
        if p.depth_renderer not in DEPTH_RENDERERS:
            raise ValueError(
                f"parameter depth_renderer={p.depth_renderer!r}: choose {' or '.join(DEPTH_RENDERERS)}"
            )
        fovy = p.depth_fovy_deg or float(m.cam_fovy[m.camera(p.camera_name).id])
        intrinsics = Intrinsics.from_fovy(p.depth_width, p.depth_height, fovy)
        render = DEPTH_RENDERERS[p.depth_renderer]
        self._depth_camera = render(m, p.camera_name, intrinsics, p.depth_range_m)
        self._camera_info = CameraInfo()
        fill_camera_info(self._camera_info, stamp_from_seconds(0.0), p.camera_name, intrinsics)
        self._depth_pub = self.create_publisher(Image, "camera/depth", RELIABLE)
        self._camera_info_pub = self.create_publisher(CameraInfo, "camera/camera_info", RELIABLE)

    # --- commands ----------------------------------------------------------------------------------
    def joint_commands_callback(self, msg: Float64MultiArray) -> None:
        ctrl = np.asarray(msg.data, dtype=np.float64)
        if ctrl.shape != (self.model.nu,) or not np.isfinite(ctrl).all():
            self.dropped += 1
            self.get_logger().warning(
                f"dropped a joint_commands message ({ctrl.shape[0]} values for {self.model.nu} actuators, "
                "or NaN/inf)",
                throttle_duration_sec=2.0,
            )
            return
        self.commands_received += 1
        if self.params.command_source == "joint_commands":
            # A robot file's joint order -> actuator order (without one, commands are in actuator order).
            self.data.ctrl[:] = ctrl if self.robot is None else ctrl[self.robot.ctrl_order]
        self._command_seen = True
        if self.params.lockstep:
            self._advance(time.monotonic())

    def action_chunk_callback(self, msg: JointTrajectory) -> None:
        try:
            order = [msg.joint_names.index(name) for name in self.actuator_joint_names]
            times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
            ctrl = np.array([np.asarray(p.positions)[order] for p in msg.points])
        except (ValueError, IndexError) as exc:
            self.dropped += 1
            self.get_logger().warning(f"dropped an action_chunk ({exc})", throttle_duration_sec=2.0)
            return
        if len(times) == 0 or not np.isfinite(ctrl).all():
            self.dropped += 1
            return
        self._chunk = (seconds_from_stamp(msg.header.stamp), times, ctrl)

    def _apply_chunk(self) -> None:
        start, times, ctrl = self._chunk
        k = int(np.searchsorted(times, self.data.time - start + 1e-9, side="right")) - 1
        self.data.ctrl[:] = ctrl[max(k, 0)]

    # --- stepping ----------------------------------------------------------------------------------
    def step_timer_callback(self) -> None:
        now = time.monotonic()
        if self.params.real_time_factor > 0 or self.params.lockstep:
            self._advance(now)
            return
        deadline = now + BURST_S  # as fast as possible, in bursts
        while time.monotonic() < deadline:
            self._advance(time.monotonic())

    def _advance(self, now: float) -> None:
        """Step one state period if pacing and lockstep allow, then publish the new state."""
        p = self.params
        if p.lockstep and not self._command_seen:
            if self.commands_received == 0:  # no controller yet: offer the state again, do not run away
                if now - self._waiting_since >= STARTUP_REPUBLISH_S:
                    self._publish_state(again=True)
                return
            if now - self._waiting_since < p.lockstep_timeout_s:
                return
            self.lockstep_timeouts += 1
        if p.real_time_factor > 0:
            if self._wall_anchor is None:
                self._wall_anchor = (now, self.data.time)
            wall0, sim0 = self._wall_anchor
            if self.data.time + self.state_period > sim0 + (now - wall0) * p.real_time_factor + 1e-9:
                return
        self.step_period()

    def step_period(self) -> None:
        """Advance the world by one state period (``substeps`` mj_steps) and publish the state."""
        m, d = self.model, self.data
        for _ in range(self.substeps):
            if self._chunk is not None and self.params.command_source == "action_chunk":
                self._apply_chunk()
            mujoco.mj_step(m, d)
        self.steps += self.substeps
        mujoco.mj_forward(m, d)  # sensors consistent with the new state (mj_step leaves them one step behind)
        self._track()
        self._publish_state()

    def _track(self) -> None:
        p = self.params
        if self._free_qadr is None:
            return
        if p.record_every_s > 0 and self.data.time + 1e-9 >= self._next_record:
            self.trajectory.append((float(self.data.time), self.data.qpos.copy()))
            self._next_record += p.record_every_s
        pos, quat = self._base_pos(), self.data.qpos[self._free_qadr + 3 : self._free_qadr + 7]
        height = pos[2] - self._ground_height()
        unhealthy = height < self.fall_min_height or -projected_gravity(quat)[2] < self._min_tilt_cos
        attempt = self._attempts[-1]
        if unhealthy and not self.fallen:
            self.falls += 1
            attempt[1] = True
            self.get_logger().warning(f"fall at t={self.data.time:.2f} s (trunk height {height:.3f} m)")
        self.fallen = unhealthy
        if self.course is not None and not attempt[0] and pos[0] >= self.course_finish_x:
            attempt[0] = True
            self.get_logger().info(f"crossed the course at t={self.data.time:.2f} s")
        if unhealthy and p.reset_on_fall:
            self._forward_before_reset += float(pos[0] - self._start_xy[0])
            self._distance_before_reset += float(np.linalg.norm(pos[:2] - self._start_xy))
            sim_time = self.data.time
            self._reset()
            self.data.time = sim_time
            self.fallen = False

    def _ground_height(self) -> float:
        """Height of the ground under the robot's standing feet (m): 0 without a course."""
        if self.course is None:
            return 0.0
        qpos = self.data.qpos[self._free_qadr : self._free_qadr + 7][None]
        return float(self.course.support_height(self.course_layout[None], qpos, self._support)[0])

    def _base_pos(self) -> np.ndarray:
        if self._free_qadr is None:
            return np.zeros(3)
        return self.data.qpos[self._free_qadr : self._free_qadr + 3]

    # --- publishing --------------------------------------------------------------------------------
    def _publish_state(self, again: bool = False) -> None:
        """imu, odom, images, then joint_states (a policy's trigger: it finds the others already there),
        then /clock. ``again``: the same state once more (lock-step, no controller yet), images included."""
        d = self.data
        stamp = stamp_from_seconds(d.time)
        if self._free_qadr is not None:
            self._publish_base(stamp)
        if (self._renderer or self._depth_camera) is not None and (
            again or d.time + 1e-9 >= self._next_image
        ):
            self._publish_images(stamp)
            if not again:
                self._next_image += self._image_period
        self._pos_view[:] = d.qpos[self._qadr]
        self._vel_view[:] = d.qvel[self._vadr]
        self._eff_view[:] = d.qfrc_actuator[self._vadr]
        self._joint_msg.header.stamp = stamp
        self._joint_pub.publish(self._joint_msg)
        self._clock_pub.publish(ClockMsg(clock=stamp))
        if self.params.lockstep:
            self._command_seen = False
            self._waiting_since = time.monotonic()

    def _publish_base(self, stamp) -> None:
        """imu and odom of the trunk (the free joint's body), body-frame rates as the task computes them."""
        d, qa, va, p = self.data, self._free_qadr, self._free_vadr, self.params
        quat = d.qpos[qa + 3 : qa + 7]
        ang_vel = d.qvel[va + 3 : va + 6]  # a free joint's angular velocity is in the body frame
        lin_vel = quat_rotate_inverse(quat, d.qvel[va : va + 3])  # world -> body
        accel = None if self._accel is None else d.sensordata[self._accel : self._accel + 3]
        imu, odom = Imu(), Odometry()
        fill_imu(imu, stamp, p.base_frame, quat, ang_vel, accel)
        fill_odometry(odom, stamp, p.odom_frame, p.base_frame, d.qpos[qa : qa + 3], quat, lin_vel, ang_vel)
        self._imu_pub.publish(imu)
        self._odom_pub.publish(odom)

    def _publish_images(self, stamp) -> None:
        """Publish images of the current state (the mj_forward after each step made cameras current)."""
        p = self.params
        if self._renderer is not None:
            self._renderer.update_scene(self.data, p.camera_name)
            rgb = self._renderer.render()
            self._image_pub.publish(image_message(stamp, p.camera_name, "rgb8", rgb))
        if self._depth_camera is not None:  # CameraInfo first: a subscriber has it when the image comes
            self._camera_info.header.stamp = stamp
            self._camera_info_pub.publish(self._camera_info)
            depth = depth_image_data(self._depth_camera.render(self.data), p.depth_encoding)
            self._depth_pub.publish(image_message(stamp, p.camera_name, p.depth_encoding, depth))
            self.depth_frames += 1

    # --- results -----------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    @property
    def forward_distance_m(self) -> float:
        """Displacement along the world x axis (the robot's initial heading), summed over resets."""
        return self._forward_before_reset + float(self._base_pos()[0] - self._start_xy[0])

    @property
    def distance_m(self) -> float:
        """Planar straight-line displacement from the start, summed over resets."""
        return self._distance_before_reset + float(np.linalg.norm(self._base_pos()[:2] - self._start_xy))

    def report(self) -> SimReport:
        t = self.sim_time
        return SimReport(
            sim_time=t,
            steps=self.steps,
            falls=self.falls,
            forward_distance_m=self.forward_distance_m,
            distance_m=self.distance_m,
            mean_forward_speed=self.forward_distance_m / t if t > 0 else 0.0,
            commands_received=self.commands_received,
            lockstep_timeouts=self.lockstep_timeouts,
            crossings=None if self.course is None else sum(c and not f for c, f in self._attempts),
            attempts=len(self._attempts),
            course_finish_x=None if self.course is None else self.course_finish_x,
            depth_frames=self.depth_frames,
        )

    def destroy_node(self) -> None:
        for name in ("_renderer", "_depth_camera"):
            if getattr(self, name, None) is not None:
                getattr(self, name).close()
                setattr(self, name, None)
        super().destroy_node()


def _task_dt(world: str, timestep: float) -> float:
    """The control period of the task trained on ``world`` (its ``dt``), else the world's timestep."""
    from rfo_ros.envs import TASKS, make_task

    if world in TASKS:
        return make_task(world).dt
    return timestep


def _sensor_adr(model: mujoco.MjModel, kind) -> int | None:
    ids = np.flatnonzero(model.sensor_type == int(kind))
    return int(model.sensor_adr[ids[0]]) if len(ids) else None


def main(args=None) -> int:
    """``ros2 run rfo_ros sim_node``: run the world until SIGINT/SIGTERM; exit 1 if it cannot start."""
    return run_node(SimNode, "sim_node", (ValueError, FileNotFoundError), args)


if __name__ == "__main__":
    sys.exit(main())
