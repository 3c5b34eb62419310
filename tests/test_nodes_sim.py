"""The sim node over real rclpy topics, alone and closing the loop with the policy node.

Most tests run the sim in lock-step with nobody commanding it, so it does not move on its own, and step it
by hand with ``SimNode.step_period``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from go1 import JOINT_NAMES, TERMINATION  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.envs import make_task  # noqa: E402
from rfo_ros.envs.legged_obs import quat_rotate_inverse  # noqa: E402
from rfo_ros.nodes.policy_node import PolicyNode  # noqa: E402
from rfo_ros.nodes.ros_conversions import (  # noqa: E402
    depth_pixels,
    intrinsics_from_camera_info,
    seconds_from_stamp,
    stamp_from_seconds,
)
from rfo_ros.nodes.sim_node import SimNode  # noqa: E402
from rfo_ros.nodes.testing import NodeHarness  # noqa: E402
from rfo_ros.runtime import ChunkScheduler, make_policy  # noqa: E402
from rfo_ros.runtime.camera import DepthResampler, Intrinsics  # noqa: E402
from rfo_ros.runtime.prepare import model_camera  # noqa: E402
from rfo_ros.sim.autograd import SimState  # noqa: E402

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return export_untrained_policy(
        tmp_path_factory.mktemp("policy") / "untrained.onnx", flow_steps=2, chunk=4
    )


@pytest.fixture
def harness():
    with NodeHarness() as h:
        yield h


def make_sim(h: NodeHarness, **params) -> SimNode:
    params = {"real_time_factor": 0.0, "lockstep": True, "lockstep_timeout_s": 60.0, **params}
    return h.add(
        SimNode(**h.node_kwargs(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]))
    )


def sim_state(sim: SimNode) -> SimState:
    d = sim.data
    return SimState(
        torch.from_numpy(d.qpos.copy())[None],
        torch.from_numpy(d.qvel.copy())[None],
        torch.zeros(1, 0, dtype=torch.float64),
    )


def test_state_messages_match_the_simulator(harness):
    sim = make_sim(harness)
    topics = {"joint_states": JointState, "imu": Imu, "odom": Odometry, "/clock": Clock}
    received = {topic: harness.record(msg_type, topic) for topic, msg_type in topics.items()}
    publishers = (sim._joint_pub, sim._imu_pub, sim._odom_pub, sim._clock_pub)
    assert harness.spin_until(lambda: all(p.get_subscription_count() > 0 for p in publishers), TIMEOUT)
    sim.data.qvel[:6] = [0.3, -0.2, 0.1, 0.5, -0.4, 0.3]  # move the trunk so that frames matter
    for _ in range(5):
        sim.step_period()
    sim.step_period()
    d, now = sim.data, stamp_from_seconds(sim.sim_time)

    def latest(topic):
        msgs = [m for m in received[topic] if (m.clock if topic == "/clock" else m.header.stamp) == now]
        return msgs[-1] if msgs else None

    assert harness.spin_until(lambda: all(latest(t) is not None for t in topics), TIMEOUT)
    joints, imu, odom, clock = (latest(t) for t in topics)
    assert list(joints.name) == list(JOINT_NAMES) == sim.joint_names
    np.testing.assert_allclose(joints.position, d.qpos[7:])
    np.testing.assert_allclose(joints.velocity, d.qvel[6:])
    q = imu.orientation
    np.testing.assert_allclose([q.w, q.x, q.y, q.z], d.qpos[3:7])  # ROS x,y,z,w <- MuJoCo w,x,y,z
    w = imu.angular_velocity
    np.testing.assert_allclose([w.x, w.y, w.z], d.qvel[3:6])  # body frame, as MuJoCo's free joint
    v = odom.twist.twist.linear
    np.testing.assert_allclose([v.x, v.y, v.z], quat_rotate_inverse(d.qpos[3:7], d.qvel[0:3]))
    assert odom.child_frame_id == "base" and odom.header.frame_id == "odom"
    stamp = joints.header.stamp
    assert stamp == imu.header.stamp == odom.header.stamp == clock.clock
    assert stamp.sec + stamp.nanosec * 1e-9 == pytest.approx(d.time)


def test_policy_node_sees_the_tasks_observation_of_the_simulated_state(harness, model_path):
    """sim node -> ROS messages -> policy node gives QuadrupedWalk.observe of the sim's state."""
    sim = make_sim(harness)
    policy = harness.add(
        PolicyNode(
            **harness.node_kwargs(
                parameter_overrides=[
                    Parameter("model_path", value=str(model_path)),
                    Parameter("provider", value="cpu"),
                    Parameter("tick_source", value="state"),
                    Parameter("publish_diagnostics_hz", value=0.0),
                ]
            )
        )
    )
    # Lock-step loop: each state -> one command -> one step. The sim only steps when this thread spins,
    # so once spinning stops, wait (without spinning) until the policy has read the sim's latest state.
    assert harness.spin_until(lambda: policy.ports.stats.ticks >= 25, TIMEOUT)
    latest = seconds_from_stamp(stamp_from_seconds(sim.sim_time))  # the controller keeps seconds
    deadline, controller = time.monotonic() + TIMEOUT, policy.ports.controller
    while controller.inputs.stamp != latest and time.monotonic() < deadline:
        time.sleep(0.001)
    task = make_task("quadruped")
    with policy.ports.lock:
        assert controller.inputs.stamp == latest
        task.fixed_command = tuple(controller.inputs.command)
        expected = task.observe(sim_state(sim), torch.from_numpy(controller.last_action)[None])[0].numpy()
        np.testing.assert_allclose(controller.observation(), expected, atol=1e-9)
    assert sim.commands_received >= 24 and sim.lockstep_timeouts == 0


def test_lockstep_waits_for_one_command_per_step(harness):
    sim = make_sim(harness, lockstep_timeout_s=60.0)
    harness.spin_for(0.2)
    assert sim.sim_time == 0.0  # nobody commands it: it offers the first state again and waits
    command = Float64MultiArray(data=list(sim.data.ctrl))
    for i in range(1, 4):
        harness.publish("joint_commands", command)
        assert harness.spin_until(lambda i=i: sim.steps == i * sim.substeps, TIMEOUT)
    harness.spin_for(0.1)
    assert sim.steps == 3 * sim.substeps and sim.sim_time == pytest.approx(3 * sim.state_period)


def test_real_time_factor_paces_the_simulation(harness):
    sim = make_sim(harness, real_time_factor=1.0, lockstep=False)
    start = time.monotonic()
    harness.spin_for(0.5)
    wall = time.monotonic() - start
    assert sim.sim_time <= wall + 2 * sim.state_period  # never ahead of the wall clock
    # Nor far behind it: at least half real time on a loaded 2-core machine (the pacing starts at the
    # timer's first tick, a period after the node is made).
    assert sim.sim_time >= 0.5 * wall - 2 * sim.state_period > 0


def test_joint_commands_set_ctrl_and_bad_ones_are_dropped(harness):
    sim = make_sim(harness)
    target = np.array(sim.data.ctrl) + 0.1
    harness.publish("joint_commands", Float64MultiArray(data=list(target)))
    assert harness.spin_until(lambda: sim.commands_received == 1, TIMEOUT)
    np.testing.assert_allclose(sim.data.ctrl, target)
    harness.publish("joint_commands", Float64MultiArray(data=[0.0] * 11))
    harness.publish("joint_commands", Float64MultiArray(data=[float("nan")] * 12))
    assert harness.spin_until(lambda: sim.dropped == 2, TIMEOUT)
    np.testing.assert_allclose(sim.data.ctrl, target)


def test_action_chunk_points_execute_at_their_times(harness):
    sim = make_sim(harness, command_source="action_chunk")
    chunk = JointTrajectory(joint_names=list(reversed(sim.actuator_joint_names)))  # any order: mapped by name
    rows = [np.array(sim.data.ctrl)[::-1] + 0.05 * k for k in range(4)]
    for k, row in enumerate(rows):
        point = JointTrajectoryPoint(positions=list(row))
        point.time_from_start.nanosec = int(round(k * sim.state_period * 1e9))
        chunk.points.append(point)
    chunk.header.stamp = stamp_from_seconds(sim.sim_time)
    harness.publish("action_chunk", chunk)
    assert harness.spin_until(lambda: sim._chunk is not None, TIMEOUT)
    for k in range(6):
        sim.step_period()
        np.testing.assert_allclose(sim.data.ctrl, rows[min(k, 3)][::-1])  # past the end: the last point


def test_fall_detector_counts_falls_and_distance(harness):
    sim = make_sim(harness)
    sim.data.qpos[0] += 0.4
    sim.step_period()
    assert sim.falls == 0 and sim.forward_distance_m == pytest.approx(0.4, abs=0.05)
    sim.data.qpos[2] = 0.05  # trunk on the ground
    sim.step_period()
    sim.step_period()
    assert sim.falls == 1 and sim.fallen  # counted once per fall
    report = sim.report()
    assert report.falls == 1 and report.sim_time == pytest.approx(3 * sim.state_period)
    assert report.mean_forward_speed == pytest.approx(report.forward_distance_m / report.sim_time)
    assert TERMINATION.min_height == sim.fall_min_height  # the task's termination thresholds
    assert TERMINATION.max_tilt_deg == sim.fall_max_tilt_deg


def test_reset_on_fall_restarts_and_keeps_the_distance(harness):
    sim = make_sim(harness, reset_on_fall=True)
    sim.data.qpos[0] += 0.5
    sim.data.qpos[2] = 0.05
    sim.step_period()
    assert sim.falls == 1 and not sim.fallen and sim.data.qpos[2] > 0.25
    assert sim.forward_distance_m == pytest.approx(0.5, abs=0.05) and sim.sim_time > 0


DEPTH_CAMERAS = {  # renderer, encoding, (width, height): the GL one at the sim node's defaults
    "raycast 32FC1": ("raycast", "32FC1", (64, 48)),
    "raycast 16UC1": ("raycast", "16UC1", (64, 48)),
    "gl 32FC1 (defaults)": ("gl", "32FC1", (320, 240)),
}


@pytest.mark.parametrize("case", list(DEPTH_CAMERAS))
def test_depth_camera_publishes_like_a_real_one_and_resamples_to_the_tasks_image(harness, case):
    """camera/depth (z-depth) and camera/camera_info at the camera's own size; resampled to the depth task's
    16x16 camera they give what the task observes (floor only: 1 cm at most, tests/test_camera.py)."""
    renderer, encoding, (width, height) = DEPTH_CAMERAS[case]
    if renderer == "gl" and not _headless_gl_backend():
        pytest.skip("run with MUJOCO_GL=egl for offscreen rendering")
    params = {"depth_renderer": renderer, "depth_encoding": encoding, "camera_rate_hz": 0.0}
    if renderer == "raycast":
        params |= {"depth_width": width, "depth_height": height}
    sim = make_sim(harness, publish_depth=True, **params)
    images, infos = harness.record(Image, "camera/depth"), harness.record(CameraInfo, "camera/camera_info")
    assert harness.spin_until(lambda: sim._depth_pub.get_subscription_count() > 0, TIMEOUT)
    sim.data.qpos[3:7] = [0.966, 0.0, 0.259, 0.0]  # pitched 30° down: the floor fills part of the view
    sim.step_period()
    assert harness.spin_until(lambda: images and infos, TIMEOUT)
    msg, info = images[-1], infos[-1]
    assert (msg.encoding, msg.width, msg.height, msg.header.stamp) == (
        encoding,
        width,
        height,
        info.header.stamp,
    )
    camera = intrinsics_from_camera_info(info)
    assert camera == Intrinsics.from_fovy(width, height, 70.0)  # the MJCF camera's fovy
    task = make_task("quadruped_depth")
    expected = task.depth_image(torch.from_numpy(sim.data.qpos.copy())[None])[0].numpy()
    got = DepthResampler(model_camera(task), camera)(*depth_pixels(msg))
    np.testing.assert_allclose(got, expected, atol=0.0025)
    assert 0.0 < expected.min() < 1.0  # something is in view


def _headless_gl_backend() -> bool:
    """MuJoCo fixed its GL backend when first imported; only EGL/OSMesa render without a display."""
    from mujoco.rendering.classic import gl_context

    return getattr(gl_context, "_MUJOCO_GL", "") in ("egl", "osmesa") or bool(os.environ.get("DISPLAY"))


@pytest.mark.skipif(not _headless_gl_backend(), reason="run with MUJOCO_GL=egl for offscreen rendering")
def test_rgb_camera_renders_offscreen(harness):
    sim = make_sim(harness, publish_camera=True, camera_width=32, camera_height=24)
    images = harness.record(Image, "camera/image_raw")
    assert harness.spin_until(lambda: sim._image_pub.get_subscription_count() > 0, TIMEOUT)
    sim.step_period()
    assert harness.spin_until(lambda: images, TIMEOUT)
    msg = images[-1]
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 24, 32, 96)
    pixels = np.frombuffer(bytes(msg.data), np.uint8)
    assert pixels.std() > 0


def test_a_robot_file_sets_the_world_pose_termination_and_command_order(harness, tmp_path):
    """With ``robot``: the robot file's MJCF, its standing pose (per-joint values, at its start height),
    its termination, and joint_commands in its joint order, mapped onto the actuators by joint."""
    tree = yaml.safe_load((REPO / "config/robots/go1.yaml").read_text())
    tree["mjcf"] = str(REPO / "sim/quadruped.xml")
    tree["joints"] = list(reversed(tree["joints"]))
    tree["standing_pose"] = {"values": dict(zip(tree["joints"], [-1.7, 0.8, 0.1] * 4, strict=True))}
    tree["termination"] = {"min_height": 0.2, "max_tilt_deg": 45.0}
    path = tmp_path / "go1_reversed.yaml"
    path.write_text(yaml.safe_dump(tree))
    sim = make_sim(harness, robot=str(path), world="no_such_world", fall_min_height=0.01)  # robot wins
    assert sim.world.endswith("quadruped.xml") and sim.robot.name == "go1"
    assert (sim.fall_min_height, sim.fall_max_tilt_deg) == (0.2, 45.0)
    pose = dict(zip(tree["joints"], [-1.7, 0.8, 0.1] * 4, strict=True))
    np.testing.assert_allclose(sim.data.qpos[2], tree["start_height"])
    for name, value in pose.items():
        assert sim.data.qpos[sim.model.joint(name).qposadr[0]] == value
    command = np.arange(12) * 0.01 - 0.5  # in the file's (reversed) joint order
    harness.publish("joint_commands", Float64MultiArray(data=list(command)))
    assert harness.spin_until(lambda: sim.commands_received == 1, TIMEOUT)
    for i, name in enumerate(tree["joints"]):
        assert sim.data.ctrl[sim.actuator_joint_names.index(name)] == command[i]


def test_unknown_world_or_keyframe_is_refused(harness):
    with pytest.raises(FileNotFoundError, match="MJCF world not found"):
        make_sim(harness, world="no_such_world")
    with pytest.raises(ValueError, match="no keyframe 'crouch'"):
        make_sim(harness, initial_keyframe="crouch")


def test_depth_policy_closes_the_loop_on_the_depth_tasks_image(harness, tmp_path):
    """A model with an image input subscribes to camera/depth and camera/camera_info and, from the sim's
    camera at the model's own size and field of view (the resampling is then the identity), sees what
    QuadrupedWalkDepth renders."""
    model = export_untrained_policy(tmp_path / "depth.onnx", task="quadruped_depth", flow_steps=2, chunk=4)
    sim = make_sim(
        harness,
        publish_depth=True,
        depth_renderer="raycast",
        depth_width=16,
        depth_height=16,
        camera_rate_hz=0.0,
    )
    params = {
        "model_path": str(model),
        "provider": "cpu",
        "tick_source": "state",
        "publish_diagnostics_hz": 0.0,
    }
    policy = harness.add(
        PolicyNode(
            **harness.node_kwargs(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        )
    )
    assert policy.ports.controller.image_input == "camera/depth"
    assert harness.spin_until(lambda: policy.ports.stats.ticks >= 10, TIMEOUT)
    latest = seconds_from_stamp(stamp_from_seconds(sim.sim_time))  # the controller keeps seconds
    deadline = time.monotonic() + TIMEOUT
    while policy.ports.controller.inputs.stamp != latest and time.monotonic() < deadline:
        time.sleep(0.001)
    with policy.ports.lock:
        expected = make_task("quadruped_depth").depth_image(torch.from_numpy(sim.data.qpos.copy())[None])[0]
        np.testing.assert_allclose(policy.ports.controller.inputs.image, expected.numpy(), atol=1e-6)
    assert sim.lockstep_timeouts == 0 and policy.ports.stats.hold_ticks == 0
    assert policy.ports.stats.images >= 10 and policy.ports.stats.dropped_total == 0


def test_lockstep_ros_loop_reproduces_the_tasks_own_rollout(harness, model_path):
    """sim node + policy node over ROS topics (lock-step) = the training task's loop on MuJoCo directly.

    The reference observes with ``QuadrupedWalk.observe`` (torch, from qpos/qvel) and steps an MjData with
    the same commands; every link between (messages, frames, joint order, last action, chunk schedule,
    actuator order, stepping) must be right for the two trajectories to agree.
    """
    steps, command = 100, (1.0, 0.0, 0.0)
    sim = make_sim(harness, record_every_s=0.01)
    params = {"model_path": str(model_path), "provider": "cpu", "tick_source": "state"}
    params |= {"publish_diagnostics_hz": 0.0, "max_joint_step": 100.0, "default_cmd_vx": command[0]}
    harness.add(
        PolicyNode(
            **harness.node_kwargs(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        )
    )
    assert harness.spin_until(lambda: sim.steps >= steps, TIMEOUT)
    ros = np.array([qpos for _, qpos in sim.trajectory[:steps]])

    task = make_task("quadruped")
    task.fixed_command = command
    policy = make_policy(model_path, provider="cpu")
    meta = policy.metadata
    scheduler = ChunkScheduler(meta.chunk, meta.action_dim)
    model, data = task.model, mujoco.MjData(task.model)
    mujoco.mj_resetDataKeyframe(model, data, 0)
    last_action, reference = np.zeros(meta.action_dim), []
    for k in range(steps):
        if scheduler.needs_plan(k):
            state = SimState(
                torch.from_numpy(data.qpos.copy())[None],
                torch.from_numpy(data.qvel.copy())[None],
                torch.zeros(1, 0, dtype=torch.float64),
            )
            obs = task.observe(state, torch.from_numpy(last_action)[None])[0].numpy()
            scheduler.add(policy.infer(obs), k)
        ctrl = scheduler.action(k)
        last_action = np.clip((ctrl - meta.action_offset) / meta.action_scale, -1, 1)
        data.ctrl[:] = ctrl
        mujoco.mj_step(model, data)
        reference.append(data.qpos.copy())
    print("MAXDIFF", np.abs(ros - np.array(reference)).max())
    np.testing.assert_allclose(ros, np.array(reference), rtol=0, atol=1e-9)  # bit-exact here
