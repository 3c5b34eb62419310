"""The policy node over real rclpy topics (loopback, own Context per test, unique namespaces, timeouts).

The model is an untrained quadruped flow policy exported once for this module (K=2, C=4): the node's
contract does not depend on the weights.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Twist  # noqa: E402
from go1 import DEFAULT_JOINT_POS, JOINT_NAMES  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.bringup import subscribed_topics  # noqa: E402
from rfo_ros.envs import make_task  # noqa: E402
from rfo_ros.nodes import policy_node  # noqa: E402
from rfo_ros.nodes.policy_lifecycle_node import PolicyLifecycleNode  # noqa: E402
from rfo_ros.nodes.policy_node import PolicyNode, PolicyNodeError  # noqa: E402
from rfo_ros.nodes.ros_conversions import stamp_from_seconds  # noqa: E402
from rfo_ros.nodes.testing import NodeHarness, state_messages  # noqa: E402
from rfo_ros.runtime import load_metadata, make_policy  # noqa: E402
from rfo_ros.sim.autograd import SimState  # noqa: E402

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[1]
K, C = 2, 4
TIMEOUT = 10.0  # seconds any single wait may take on a loaded 2-core machine


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return export_untrained_policy(
        tmp_path_factory.mktemp("policy") / "untrained.onnx", flow_steps=K, chunk=C
    )


@pytest.fixture
def harness():
    with NodeHarness() as h:
        yield h


def make_node(h: NodeHarness, model_path, node_class=PolicyNode, **params) -> PolicyNode:
    params = {"model_path": str(model_path), "provider": "cpu", "publish_diagnostics_hz": 0.0, **params}
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    return h.add(node_class(**h.node_kwargs(parameter_overrides=overrides)))


def standing_state(seed: int = 0):
    """A generic free-base state: tilted, moving, joints off the default pose (qpos 19, qvel 18)."""
    rng = np.random.default_rng(seed)
    quat = np.array([0.97, 0.1, -0.15, 0.12])
    qpos = np.concatenate(
        [
            [0.3, -0.2, 0.28],
            quat / np.linalg.norm(quat),
            np.array(DEFAULT_JOINT_POS) + rng.uniform(-0.2, 0.2, 12),
        ]
    )
    qvel = rng.uniform(-0.5, 0.5, 18)
    return qpos, qvel


def send_state(h: NodeHarness, qpos, qvel, stamp_s: float = 0.0, names=JOINT_NAMES):
    """imu, odom, then joint_states (the trigger) for one state, with every publisher matched first."""
    imu, odom, joints = state_messages(qpos, qvel, names, stamp_s)
    h.connect((Imu, "imu"), (Odometry, "odom"), (JointState, "joint_states"))
    h.publish("imu", imu)
    h.publish("odom", odom)
    h.publish("joint_states", joints)


# --- observation and action chunk contract ----------------------------------------------------------------
def test_observation_is_the_tasks_observation(harness, model_path):
    """ROS messages built from (qpos, qvel) give the node exactly the vector QuadrupedWalk.observe gives."""
    node = make_node(harness, model_path, tick_source="state", default_cmd_vx=0.7, default_cmd_yaw_rate=0.2)
    qpos, qvel = standing_state()
    send_state(harness, qpos, qvel)
    assert harness.spin_until(lambda: node.ports.stats.plans == 1, TIMEOUT)
    task = make_task("quadruped")
    task.fixed_command = (0.7, 0.0, 0.2)
    state = SimState(
        torch.from_numpy(qpos)[None], torch.from_numpy(qvel)[None], torch.zeros(1, 0, dtype=torch.float64)
    )
    # The plan used last_action = 0; the node has since executed one step, so compare with zero last action.
    node.ports.controller.last_action[:] = 0.0
    expected = task.observe(state, torch.zeros(1, 12, dtype=torch.float64))[0].numpy()
    np.testing.assert_allclose(node.ports.controller.observation(), expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("input_thread", [True, False], ids=["input_thread", "executor"])
def test_action_chunk_has_c_points_the_observation_stamp_and_the_models_values(
    harness, model_path, input_thread
):
    node = make_node(harness, model_path, tick_source="state", input_thread=input_thread)
    assert (node.ports.input_thread is not None) == input_thread
    chunks = harness.record(JointTrajectory, "action_chunk")
    meta = load_metadata(model_path)
    qpos, qvel = standing_state(1)
    send_state(harness, qpos, qvel, stamp_s=42.25)
    assert harness.spin_until(lambda: chunks, TIMEOUT)
    chunk = chunks[0]
    assert (chunk.header.stamp.sec, chunk.header.stamp.nanosec) == (42, 250_000_000)
    assert list(chunk.joint_names) == list(meta.joint_names) == list(JOINT_NAMES)
    assert len(chunk.points) == C == meta.chunk
    for k, point in enumerate(chunk.points):
        t = point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
        assert t == pytest.approx(k * meta.dt, abs=1e-9)
        assert len(point.positions) == meta.action_dim
    positions = np.array([p.positions for p in chunk.points])
    assert (positions >= meta.action_low - 1e-12).all() and (positions <= meta.action_high + 1e-12).all()
    # The executed step feeds back as the "last_action" field in policy units, as in training.
    assert harness.spin_until(lambda: node.ports.stats.ticks == 1, TIMEOUT)
    np.testing.assert_allclose(
        node.ports.controller.last_action, (positions[0] - meta.action_offset) / meta.action_scale
    )
    node.ports.controller.last_action[:] = 0.0  # the plan was made before the first step was executed
    expected = make_policy(model_path, provider="cpu").infer(node.ports.controller.observation())
    np.testing.assert_allclose(positions, expected, atol=1e-6)


# --- input validation --------------------------------------------------------------------------------------
def test_malformed_joint_states_are_dropped_and_counted(harness, model_path):
    node = make_node(harness, model_path, tick_source="state")
    chunks = harness.record(JointTrajectory, "action_chunk")
    qpos, qvel = standing_state()
    imu, odom, good = state_messages(qpos, qvel, JOINT_NAMES)
    harness.connect((Imu, "imu"), (Odometry, "odom"), (JointState, "joint_states"))
    harness.publish("imu", imu)
    harness.publish("odom", odom)
    wrong_names = JointState(
        name=[f"joint_{i}" for i in range(12)], position=list(good.position), velocity=list(good.velocity)
    )
    short = JointState(
        name=list(JOINT_NAMES), position=list(good.position)[:11], velocity=list(good.velocity)
    )
    no_velocity = JointState(name=list(JOINT_NAMES), position=list(good.position))
    for msg in (wrong_names, short, no_velocity):
        harness.publish("joint_states", msg)
    assert harness.spin_until(lambda: node.ports.stats.dropped.get("joint_states/malformed", 0) == 3, TIMEOUT)
    harness.spin_for(0.1)
    assert not chunks and node.ports.stats.plans == 0
    # A well-formed message (extra joints and another order are fine) is still used afterwards.
    order = list(reversed(range(12)))
    shuffled = JointState(
        name=["gripper"] + [JOINT_NAMES[i] for i in order],
        position=[0.0] + [good.position[i] for i in order],
        velocity=[0.0] + [good.velocity[i] for i in order],
    )
    harness.publish("imu", imu)  # fresh again: the watchdog has seen no usable state for a while
    harness.publish("odom", odom)
    harness.publish("joint_states", shuffled)
    assert harness.spin_until(lambda: chunks, TIMEOUT)
    np.testing.assert_allclose(node.ports.controller.inputs.joint_pos, qpos[7:])


def test_nonfinite_inputs_are_dropped_and_counted(harness, model_path):
    node = make_node(harness, model_path, tick_source="state")
    qpos, qvel = standing_state()
    imu, odom, joints = state_messages(qpos, qvel, JOINT_NAMES)
    nan_joints = JointState(
        name=list(JOINT_NAMES),
        position=[float("nan")] + list(joints.position[1:]),
        velocity=list(joints.velocity),
    )
    inf_joints = JointState(
        name=list(JOINT_NAMES), position=list(joints.position), velocity=[float("inf")] * 12
    )
    nan_imu = Imu()
    nan_imu.orientation.w = float("nan")
    zero_imu = Imu()  # all-zero quaternion: finite, but not a rotation
    zero_imu.orientation.w = 0.0
    bad_cmd = Twist()
    bad_cmd.linear.x = float("inf")
    harness.publish("joint_states", nan_joints)
    harness.publish("joint_states", inf_joints)
    harness.publish("imu", nan_imu)
    harness.publish("imu", zero_imu)
    harness.publish("cmd_vel", bad_cmd)
    expected = {"joint_states/nonfinite": 2, "imu/nonfinite": 1, "imu/malformed": 1, "cmd_vel/nonfinite": 1}
    assert harness.spin_until(lambda: node.ports.stats.dropped == expected, TIMEOUT), node.ports.stats.dropped
    assert node.ports.stats.plans == 0
    assert (
        np.isfinite(node.ports.controller.inputs.joint_pos).all()
        and node.ports.controller.inputs.command[0] == node.params.default_cmd_vx
    )


def test_cmd_vel_sets_the_command_until_its_timeout(harness, model_path):
    node = make_node(harness, model_path, cmd_vel_timeout_s=0.3, default_cmd_vx=0.8)
    twist = Twist()
    twist.linear.x, twist.linear.y, twist.angular.z = 0.4, -0.1, 0.3
    harness.publish("cmd_vel", twist)
    assert harness.spin_until(lambda: list(node.ports.controller.inputs.command) == [0.4, -0.1, 0.3], TIMEOUT)
    assert node.ports.controller.observation()[
        node.ports.controller.layout.slice("command")
    ] == pytest.approx([0.8, -0.2, 0.075])  # scaled
    assert harness.spin_until(
        lambda: list(node.ports.controller.inputs.command) == [0.8, 0.0, 0.0], TIMEOUT
    )  # back to default


# --- safety on the output ---------------------------------------------------------------------------------
def test_joint_commands_are_clamped_rate_limited_and_in_robot_order(harness, model_path):
    robot_order = list(reversed(JOINT_NAMES))
    node = make_node(
        harness, model_path, tick_source="state", max_joint_step=0.02, robot_joint_names=robot_order
    )
    commands = harness.record(Float64MultiArray, "joint_commands")
    meta = load_metadata(model_path)
    qpos, qvel = standing_state()
    qpos[7 + 3] = 3.0  # FL_hip_joint measured far outside its range (±0.863): commands must stay inside
    for i in range(12):
        send_state(harness, qpos, qvel, stamp_s=0.01 * i)
        assert harness.spin_until(lambda i=i: len(commands) == i + 1, TIMEOUT)
    low, high = meta.action_low[::-1], meta.action_high[::-1]  # robot order = reversed model order
    values = np.array([c.data for c in commands])
    assert (values >= low - 1e-12).all() and (values <= high + 1e-12).all()
    measured = np.clip(qpos[7:][::-1], low, high)
    steps = np.abs(np.diff(np.vstack([measured, values]), axis=0))
    assert steps.max() <= 0.02 + 1e-9
    assert node.ports.stats.rate_limited_steps > 0
    np.testing.assert_allclose(node.ports.last_command, values[-1])


def test_stale_state_holds_the_last_command_within_the_watchdog_timeout(harness, model_path):
    timeout = 0.15
    node = make_node(harness, model_path, watchdog_timeout_s=timeout, control_rate_hz=100.0)
    commands = harness.record(Float64MultiArray, "joint_commands")
    qpos, qvel = standing_state()
    for i in range(20):  # ~0.2 s of fresh state at ~100 Hz, then the publisher stops
        send_state(harness, qpos, qvel, stamp_s=0.01 * i)
        harness.spin_for(0.01)
    last_state = time.monotonic()
    assert node.ports.stats.ticks > 0 and node.ports.stats.hold_ticks == 0, node.ports.stats
    assert harness.spin_until(lambda: node.ports.stats.hold_ticks > 0, TIMEOUT)
    assert time.monotonic() - last_state <= timeout + 0.25  # one watchdog timeout plus scheduling slack
    assert node.ports.stats.watchdog == "stale"
    n = len(commands)
    assert harness.spin_until(lambda: len(commands) >= n + 5, TIMEOUT)
    held = np.array([c.data for c in commands[n - 1 :]])
    assert (held == held[0]).all()  # the last command before the hold, repeated
    np.testing.assert_array_equal(held[0], node.ports.last_command)
    diag = node.ports.diagnostics_message().status[0]
    assert {kv.key: kv.value for kv in diag.values}["watchdog"] == "stale"
    plans = node.ports.stats.plans  # fresh state again: the node plans again
    send_state(harness, qpos, qvel, stamp_s=1.0)
    assert harness.spin_until(lambda: node.ports.stats.plans > plans, TIMEOUT)


def test_hold_without_any_command_is_the_default_pose(harness, model_path):
    node = make_node(harness, model_path, watchdog_timeout_s=0.1)
    commands = harness.record(Float64MultiArray, "joint_commands")
    joints = JointState(name=list(JOINT_NAMES), position=list(DEFAULT_JOINT_POS), velocity=[0.0] * 12)
    harness.publish("joint_states", joints)  # no imu: never fresh, so never planned
    assert harness.spin_until(lambda: len(commands) >= 3, TIMEOUT)
    assert node.ports.stats.plans == 0 and node.ports.stats.watchdog == "stale"
    np.testing.assert_allclose(commands[-1].data, DEFAULT_JOINT_POS)


def _diagnostic(node: PolicyNode) -> tuple[str, dict[str, str]]:
    status = node.ports.diagnostics_message().status[0]
    return status.message, {kv.key: kv.value for kv in status.values}


def test_a_required_input_that_never_arrived_is_named(harness, model_path):
    """The robot publishes joint_states and imu but no odom: the model observes base_lin_vel, so the
    node holds and says that odom is what it waits for (not a misleading input age)."""
    node = make_node(harness, model_path, control_rate_hz=100.0)
    commands = harness.record(Float64MultiArray, "joint_commands")
    imu, _, joints = state_messages(*standing_state(), JOINT_NAMES, 0.0)
    harness.connect((Imu, "imu"), (JointState, "joint_states"))
    for _ in range(5):
        harness.publish("imu", imu)
        harness.publish("joint_states", joints)
        harness.spin_for(0.02)
    assert harness.spin_until(lambda: len(commands) >= 3, TIMEOUT)  # holding the default pose
    assert node.ports.stats.plans == 0 and node.ports.missing_inputs == ["odom"]
    message, values = _diagnostic(node)
    assert (
        message
        == "waiting for odom: the model observes base_lin_vel (nav_msgs/Odometry from your state estimator)"
    )
    assert values["missing_inputs"] == "odom"
    harness.connect((Odometry, "odom"))
    send_state(harness, *standing_state(), stamp_s=0.1)  # odom arrives: the node plans
    assert harness.spin_until(lambda: node.ports.stats.plans > 0, TIMEOUT)
    assert node.ports.missing_inputs == [] and _diagnostic(node)[1]["missing_inputs"] == ""


def test_a_model_without_base_velocity_plans_from_joint_states_and_imu_alone(harness, tmp_path):
    """A model trained with ``env.base_lin_vel: false`` needs no odometry: joint_states + imu suffice,
    and the node does not even subscribe to odom."""
    model = export_untrained_policy(tmp_path / "imu.onnx", base_lin_vel=False, flow_steps=1, chunk=1)
    node = make_node(harness, model, tick_source="state")
    assert "base_lin_vel" not in node.ports.controller.layout.names
    assert subscribed_topics(node) == ["cmd_vel", "imu", "joint_states"]  # no odom
    imu, _, joints = state_messages(*standing_state(), JOINT_NAMES, 0.0)
    harness.connect((Imu, "imu"), (JointState, "joint_states"))
    harness.publish("imu", imu)
    harness.publish("joint_states", joints)
    assert harness.spin_until(lambda: node.ports.stats.plans > 0, TIMEOUT)
    assert node.ports.missing_inputs == []


def test_a_history_model_gets_one_frame_per_control_step_and_a_fresh_history_after_a_hold(harness, tmp_path):
    """K = 3 frames at C = 2: the node stores a frame at every control step, planned or not, each the
    task's observation of that step's state with the action before it, as the training env stacks them;
    after a hold the first fresh frame fills the history again."""
    frames = 3
    model = export_untrained_policy(
        tmp_path / "history.onnx", base_lin_vel=False, obs_history=frames, flow_steps=1, chunk=2
    )
    node = make_node(harness, model, tick_source="state", watchdog_timeout_s=0.2)
    assert node.ports.controller.history_frames == frames and node.ports.metadata.obs_dim == frames * 45
    task = make_task("quadruped", base_lin_vel=False)
    task.fixed_command = (1.0, 0.0, 0.0)  # the node's default command
    harness.connect((Imu, "imu"), (JointState, "joint_states"))

    def step(k: int, last_action: np.ndarray) -> np.ndarray:
        """Send state k; return the frame the task observes for it with ``last_action``."""
        qpos, qvel = standing_state(seed=k)
        imu, _, joints = state_messages(qpos, qvel, JOINT_NAMES, 0.01 * (k + 1))
        harness.publish("imu", imu)
        harness.publish("joint_states", joints)
        assert harness.spin_until(lambda: node.ports.stats.ticks == k + 1, TIMEOUT)
        state = SimState(torch.from_numpy(qpos)[None], torch.from_numpy(qvel)[None], torch.zeros(1, 0))
        return task.observe(state, torch.from_numpy(last_action)[None])[0].numpy()

    expected, last_action = [], np.zeros(12)
    for k in range(4):
        expected.append(step(k, last_action))
        last_action = node.ports.controller.last_action.copy()  # what step k executed: step k+1 observes it
    assert node.ports.stats.plans == 2  # steps 0 and 2; steps 1 and 3 stored their frames without a plan
    np.testing.assert_allclose(
        np.stack(node.ports.controller.history.stored), np.stack(expected[1:]), rtol=0, atol=1e-6
    )
    assert harness.spin_until(lambda: node.ports.stats.hold_ticks > 0, TIMEOUT)  # no state for 0.2 s: hold
    resumed = step(4, last_action)
    np.testing.assert_allclose(
        np.stack(node.ports.controller.history.stored), np.stack([resumed] * frames), rtol=0, atol=1e-6
    )
    assert node.ports.missing_inputs == []


@pytest.mark.parametrize(
    ("history", "match"),
    [(2, "45 entries per frame and 2 frames, obs_dim is 135"), ("3", "history must be a positive integer")],
)
def test_a_model_whose_history_contradicts_its_input_is_refused(harness, tmp_path, history, match):
    import json

    import onnx

    model = export_untrained_policy(
        tmp_path / "h.onnx", base_lin_vel=False, obs_history=3, flow_steps=1, chunk=1
    )
    proto = onnx.load(str(model))
    props = {p.key: p.value for p in proto.metadata_props}
    layout = json.loads(props["obs_layout"])
    layout["history"] = history
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**props, "obs_layout": json.dumps(layout)})
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    with pytest.raises(PolicyNodeError, match=match):
        make_node(harness, tmp_path / "bad.onnx")


def test_a_missing_image_is_named(harness, tmp_path):
    model = export_untrained_policy(tmp_path / "depth.onnx", task="quadruped_depth", flow_steps=1, chunk=1)
    node = make_node(harness, model, tick_source="state")
    send_state(harness, *standing_state())
    assert harness.spin_until(
        lambda: node.ports.stats.hold_ticks > 0 or node.ports.missing_inputs == ["camera/depth"], TIMEOUT
    )
    assert node.ports.stats.plans == 0 and node.ports.missing_inputs == ["camera/depth"]
    message, values = _diagnostic(node)
    assert message == "waiting for camera/depth: the model observes a 16x16 depth image (sensor_msgs/Image)"
    assert values["missing_inputs"] == "camera/depth"


def test_shutdown_publishes_the_hold_command(harness, model_path):
    node = make_node(harness, model_path, tick_source="state")
    commands = harness.record(Float64MultiArray, "joint_commands")
    qpos, qvel = standing_state()
    send_state(harness, qpos, qvel)
    assert harness.spin_until(lambda: len(commands) == 1, TIMEOUT)
    last = node.ports.last_command
    harness.remove(node)
    node.destroy_node()
    assert harness.spin_until(lambda: len(commands) == 2, TIMEOUT)
    np.testing.assert_array_equal(commands[1].data, last)


def test_diagnostics_report_latency_provider_watchdog_and_drops(harness, model_path):
    node = make_node(harness, model_path, tick_source="state", publish_diagnostics_hz=20.0)
    diagnostics = harness.record(DiagnosticArray, "diagnostics")
    qpos, qvel = standing_state()
    harness.publish("joint_states", JointState(name=["nope"], position=[0.0], velocity=[0.0]))
    send_state(harness, qpos, qvel)
    assert harness.spin_until(
        lambda: node.ports.stats.plans == 1 and node.ports.stats.dropped_total == 1, TIMEOUT
    )
    n = len(diagnostics)
    assert harness.spin_until(lambda: len(diagnostics) > n, TIMEOUT)
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert values["provider"] == "CPUExecutionProvider" == node.ports.stats.provider
    assert values["watchdog"] in ("ok", "stale")
    assert values["dropped/joint_states/malformed"] == "1"
    for key in ("model_latency_p50_ms", "model_latency_p99_ms", "node_latency_p50_ms", "node_latency_p99_ms"):
        assert float(values[key]) > 0
    stats = node.ports.stats
    assert stats.model_latency.count == stats.node_latency.count == 1
    assert stats.node_latency.p50_ms >= stats.model_latency.p50_ms


# --- refusing to start -------------------------------------------------------------------------------------
def test_missing_model_is_refused_with_a_clear_error(harness, tmp_path):
    with pytest.raises(PolicyNodeError, match="policy model not found: .*missing.onnx"):
        make_node(harness, tmp_path / "missing.onnx")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_model_is_refused_with_a_clear_error(harness, model_path, tmp_path, damage):
    bad = tmp_path / f"{damage}.onnx"
    good = model_path.read_bytes()
    bad.write_bytes(b"this is not an onnx model" if damage == "garbage" else good[: len(good) // 2])
    with pytest.raises(
        PolicyNodeError, match=f"cannot load policy model .*{damage}.onnx.*(corrupt|truncated)"
    ):
        make_node(harness, bad)


def test_model_for_other_joints_is_refused_with_a_clear_error(harness, model_path):
    renamed = ["FR_hip"] + list(JOINT_NAMES[1:])
    with pytest.raises(PolicyNodeError, match="missing on the robot: \\['FR_hip_joint'\\]"):
        make_node(harness, model_path, robot_joint_names=renamed)
    with pytest.raises(PolicyNodeError, match="\\['tail_joint'\\] are not commanded"):
        make_node(harness, model_path, robot_joint_names=list(JOINT_NAMES) + ["tail_joint"])


def test_bad_parameters_are_refused(harness, model_path):
    with pytest.raises(PolicyNodeError, match="tick_source='clock'"):
        make_node(harness, model_path, tick_source="clock")
    with pytest.raises(PolicyNodeError, match="replan_every=9 exceeds"):
        make_node(harness, model_path, replan_every=9)


def test_main_exits_nonzero_when_the_model_is_missing(tmp_path):
    args = ["--ros-args", "-p", f"model_path:={tmp_path / 'missing.onnx'}", "-r", "__ns:=/test_main_missing"]
    assert policy_node.main(args) == 1


def test_stamp_conversion_round_trips():
    stamp = stamp_from_seconds(12.000000001)
    assert (stamp.sec, stamp.nanosec) == (12, 1)


# --- the managed (lifecycle) node --------------------------------------------------------------------------
def test_lifecycle_commands_only_while_active_and_holds_on_deactivate(harness, model_path):
    node = make_node(harness, model_path, PolicyLifecycleNode, tick_source="state")
    commands = harness.record(Float64MultiArray, "joint_commands")
    qpos, qvel = standing_state()
    assert node.lifecycle_state == "unconfigured" and node.count_publishers("joint_commands") == 0
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.lifecycle_state == "inactive"
    send_state(harness, qpos, qvel, stamp_s=0.0)  # inactive: inputs are read, nothing is commanded
    harness.spin_for(0.3)
    assert node.ports.stats.plans == 0 and commands == []
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    # The watchdog may hold once first (the inputs read while inactive are 0.3 s old), so count plans.
    send_state(harness, qpos, qvel, stamp_s=0.01)
    assert harness.spin_until(lambda: node.ports.stats.plans == 1, TIMEOUT)
    last = node.ports.last_command
    assert harness.spin_until(lambda: any(np.array_equal(c.data, last) for c in commands), TIMEOUT)
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    harness.spin_for(0.2)  # the deactivation's hold reaches the recorder
    published = len(commands)
    np.testing.assert_array_equal(commands[-1].data, last)  # the hold: the last safe command once more
    send_state(harness, qpos, qvel, stamp_s=0.02)
    harness.spin_for(0.3)
    assert node.ports.stats.plans == 1 and len(commands) == published  # deactivated: holds, plans nothing
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    send_state(harness, qpos, qvel, stamp_s=0.03)
    assert harness.spin_until(lambda: node.ports.stats.plans == 2, TIMEOUT)
    node.trigger_deactivate()
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.lifecycle_state == "unconfigured" and node.ports.policy is None
    assert harness.spin_until(lambda: node.count_publishers("joint_commands") == 0, TIMEOUT)


def test_lifecycle_configure_fails_cleanly_on_a_corrupt_model_and_succeeds_once_fixed(
    harness, model_path, tmp_path
):
    model = tmp_path / "policy.onnx"
    model.write_bytes(model_path.read_bytes()[:2000])  # a truncated download
    node = make_node(harness, model, PolicyLifecycleNode)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node.lifecycle_state == "unconfigured" and node.ports.policy is None and node.ports.entities == []
    assert node.count_publishers("joint_commands") == 0 and node.count_subscribers("joint_states") == 0
    model.write_bytes(model_path.read_bytes())
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.lifecycle_state == "inactive"


def test_a_model_that_cannot_infer_takes_the_error_transition(harness, model_path, tmp_path):
    """A model that loads but yields a non-finite chunk is not left configured: on_error releases it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path))
    weights = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))  # a weight matrix
    weights.CopyFrom(
        numpy_helper.from_array(np.full_like(numpy_helper.to_array(weights), np.nan), weights.name)
    )
    broken = tmp_path / "nan.onnx"
    onnx.save(graph, str(broken))
    node = make_node(harness, broken, PolicyLifecycleNode)
    assert node.trigger_configure() == TransitionCallbackReturn.ERROR
    assert node.lifecycle_state == "unconfigured" and node.ports.policy is None and node.ports.entities == []


# --- ros2_control wiring ---------------------------------------------------------------------------------
def test_remapped_outputs_reach_the_ros2_control_controller_topics(harness, model_path):
    """The launch file's command_topic/trajectory_topic remaps: commands arrive on the controllers' topics
    in the joint order the example controller YAML gives them."""
    import yaml

    controllers = yaml.safe_load(
        (REPO / "config" / "ros2_control" / "quadruped_controllers.yaml").read_text()
    )
    forward = controllers["forward_position_controller"]["ros__parameters"]
    trajectory = controllers["joint_trajectory_controller"]["ros__parameters"]
    robot = yaml.safe_load((REPO / "config" / "quadruped.yaml").read_text())
    robot_joints = robot["/**/policy_node"]["ros__parameters"]["robot_joint_names"]
    assert (
        forward["joints"] == trajectory["joints"] == robot_joints and forward["interface_name"] == "position"
    )

    remaps = [
        "-r", "joint_commands:=/forward_position_controller/commands",
        "-r", "action_chunk:=/joint_trajectory_controller/joint_trajectory",
    ]  # fmt: skip
    overrides = [Parameter(k, value=v) for k, v in (("model_path", str(model_path)), ("provider", "cpu"))]
    overrides.append(Parameter("tick_source", value="state"))
    node = harness.add(
        PolicyNode(**harness.node_kwargs(parameter_overrides=overrides, cli_args=["--ros-args", *remaps]))
    )
    commands = harness.record(Float64MultiArray, "/forward_position_controller/commands")
    chunks = harness.record(JointTrajectory, "/joint_trajectory_controller/joint_trajectory")
    send_state(harness, *standing_state())
    assert harness.spin_until(lambda: commands and chunks, TIMEOUT)
    assert list(chunks[0].joint_names) == list(node.ports.metadata.joint_names)
    assert len(chunks[0].points) == C
    np.testing.assert_array_equal(commands[0].data, node.ports.last_command)  # robot_joint_names order
    assert len(commands[0].data) == len(forward["joints"])


# --- real-time chunk execution ---------------------------------------------------------------------------
def test_realtime_execution_keeps_the_committed_step_at_every_replan(harness, tmp_path):
    """C=8, a plan every 4 steps, blend=realtime: each new chunk starts on the command the running one had
    for that step (inpainted in the flow), so replanning never jumps; its other steps are the model's."""
    model = export_untrained_policy(tmp_path / "rt.onnx", flow_steps=2, chunk=8, inpainting=True)
    # A generous watchdog: on a loaded host a gap between two states past the default 0.1 s is a hold,
    # which rightly forgets the plans (and then the next chunk has nothing to keep).
    node = make_node(
        harness, model, tick_source="state", blend="realtime", replan_every=4, max_joint_step=10.0,
        watchdog_timeout_s=10.0,
    )  # fmt: skip
    chunks = harness.record(JointTrajectory, "action_chunk")
    qpos, qvel = standing_state()
    for i in range(13):  # plans at steps 0, 4, 8, 12
        send_state(harness, qpos, qvel, stamp_s=0.01 * (i + 1))
        assert harness.spin_until(lambda i=i: node.ports.stats.ticks == i + 1, TIMEOUT)
    # The node has planned; its last chunk may still be on its way to the recorder (a loaded host).
    assert harness.spin_until(lambda: len(chunks) == 4, TIMEOUT), f"{len(chunks)} chunks of 4 arrived"
    points = [np.array([p.positions for p in c.points]) for c in chunks]
    for old, new in zip(points, points[1:], strict=False):
        np.testing.assert_allclose(new[0], old[4], atol=1e-4)  # the committed step, kept
        assert np.abs(new[1:4] - old[5:8]).max() > 1e-3  # the rest is planned anew


def test_realtime_blend_needs_an_inpainting_model(harness, model_path):
    with pytest.raises(PolicyNodeError, match="blend=realtime needs a model exported with --inpainting"):
        make_node(harness, model_path, blend="realtime")


def test_a_serialized_message_rewritten_in_place_reads_back_as_the_message():
    from rclpy.serialization import deserialize_message
    from trajectory_msgs.msg import JointTrajectoryPoint

    from rfo_ros.nodes.ros_conversions import float_field_view
    from rfo_ros.nodes.serialized import SerializedMessage

    msg, views = JointTrajectory(joint_names=["a", "b", "c"]), []
    for k in range(4):
        point = JointTrajectoryPoint()
        views.append(float_field_view(point, "positions", 3))
        point.time_from_start.nanosec = 10_000_000 * k
        msg.points.append(point)
    out = SerializedMessage(msg, views, msg.header)
    rows = np.arange(12.0).reshape(4, 3) - 5.5
    out.rows[:] = rows
    out.set_stamp(stamp_from_seconds(12.25))
    back = deserialize_message(out.payload(), JointTrajectory)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (12, 250_000_000)
    assert list(back.joint_names) == ["a", "b", "c"]
    np.testing.assert_array_equal(np.stack([p.positions for p in back.points]), rows)
    assert [p.time_from_start.nanosec for p in back.points] == [0, 10_000_000, 20_000_000, 30_000_000]
