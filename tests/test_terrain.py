"""The obstacle course (sim/quadruped_terrain.xml, rfo_ros.envs.course, quadruped_terrain[_depth]): the
world loads and draws a new course per env and episode, each env steps and sees its own; heights are
measured above the blocks; crossing is counted, standing still never crosses; the depth camera sees the
blocks and a RealSense D435 covers it; the training configs load; the sim node draws a course and counts
crossings; the bringup's --terrain demo runs a depth model with the sim's camera and reports it."""

from __future__ import annotations

import math
import os
from pathlib import Path

from rfo_ros.nodes.spin import isolated_ros_env

os.environ.update(isolated_ros_env())  # before any rclpy.init in this process: stay on this machine

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from go1 import DEFAULT_JOINT_POS  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from rfo_ros.bench.latency import export_untrained_policy  # noqa: E402
from rfo_ros.bringup import run_bringup  # noqa: E402
from rfo_ros.config import load_config  # noqa: E402
from rfo_ros.envs import make_task, task_from_config  # noqa: E402
from rfo_ros.envs.course import Course, CourseSpec  # noqa: E402
from rfo_ros.envs.course_walk import QuadrupedTerrain  # noqa: E402
from rfo_ros.envs.vec_env import VecEnv  # noqa: E402
from rfo_ros.evaluate import evaluate  # noqa: E402
from rfo_ros.nodes.sim_node import SimNode  # noqa: E402
from rfo_ros.nodes.testing import NodeHarness  # noqa: E402
from rfo_ros.randomization import Randomization  # noqa: E402
from rfo_ros.robot import description_tree  # noqa: E402
from rfo_ros.runtime.camera import DepthResampler, Intrinsics  # noqa: E402
from rfo_ros.runtime.prepare import model_camera  # noqa: E402
from rfo_ros.sim.autograd import SimState  # noqa: E402

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]
STAND = np.array([0.0, 0.0, 0.30, 1.0, 0.0, 0.0, 0.0, *DEFAULT_JOINT_POS])


class StandStill:
    """A policy that holds the standing pose (action 0) whatever it observes."""

    chunk, action_dim = 1, 12

    def __call__(self, obs: torch.Tensor, noise: torch.Tensor | None = None):
        actions = torch.zeros(obs.shape[0], 1, self.action_dim)
        return actions, actions


def _ray_down(model: mujoco.MjModel, x: float) -> float:
    """Height of the first world geom under (x, 0), by a ray from 2 m up."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    geomid = np.zeros(1, np.int32)
    groups = np.zeros(mujoco.mjNGROUP, np.uint8)
    groups[0] = 1
    down = np.array([0.0, 0.0, -1.0])
    return 2.0 - mujoco.mj_ray(model, data, np.array([x, 0.0, 2.0]), down, groups, 1, -1, geomid)


def test_the_world_declares_its_course_and_both_tasks_share_it():
    blind, seeing = make_task("quadruped_terrain"), make_task("quadruped_terrain_depth")
    spec = blind.course.spec
    assert spec.block_height == (0.08, 0.15) and spec.camera == "chin" and blind.course.num_blocks == 3
    assert blind.world == seeing.world == "quadruped_terrain"
    assert blind.description == seeing.description  # same robot, world, commands and rewards
    assert blind.command_range[0] == spec.command_vx
    assert (blind.obs_dim, seeing.obs_dim) == (48, 48 + 16 * 16)
    assert blind.solved_rule == "falls == 0 and crossing_rate >= 0.9"
    # The checkpoint's options rebuild the same task.
    assert make_task("quadruped_terrain", **blind.options()).description == blind.description
    with pytest.raises(ValueError, match="go1"):
        make_task("quadruped_terrain", robot="hexapod")


def test_each_env_draws_its_own_course_at_every_reset_and_steps_in_it():
    task = make_task("quadruped_terrain")
    env = VecEnv(task, 3, seed=0, threads=1)
    first = task.course_layout.clone()
    assert len({tuple(row.flatten().tolist()) for row in first}) == 3  # three different courses
    spec = task.course.spec
    near, far, height = first[..., 0], first[..., 1], first[..., 2]
    assert ((height >= spec.block_height[0]) & (height <= spec.block_height[1])).all()
    assert (near[:, 0] >= spec.start_x[0]).all() and (near[:, 0] <= spec.start_x[1]).all()
    assert (near[:, 1:] >= far[:, :-1] - 1e-12).all()  # blocks in order, never overlapping
    for i, model in enumerate(env.sim.models):  # each env's own model holds its course
        block = first[i, 1].numpy()
        assert _ray_down(model, block[:2].mean()) == pytest.approx(block[2])
        assert _ray_down(model, block[0] - 1e-3) < block[2]
    env._reset_where(np.array([True, False, False]))  # env 0's episode ends: a new course for it only
    assert not torch.equal(task.course_layout[0], first[0])
    torch.testing.assert_close(task.course_layout[1:], first[1:])
    block = task.course_layout[0, 1].numpy()
    assert _ray_down(env.sim.models[0], block[:2].mean()) == pytest.approx(block[2])
    # The state of a run carries the courses: a resumed env steps the same ones.
    saved = env.state_dict()
    other = VecEnv(make_task("quadruped_terrain"), 3, seed=5, threads=1)
    other.load_state_dict(saved)
    for a, b in zip(env.sim.models, other.sim.models, strict=True):
        np.testing.assert_array_equal(a.body_pos, b.body_pos)
        np.testing.assert_array_equal(a.geom_size, b.geom_size)


def test_randomised_physics_writes_into_the_same_per_env_worlds():
    task = make_task("quadruped_terrain")
    env = VecEnv(task, 2, seed=1, threads=1, randomization=Randomization(friction=(0.5, 0.6)))
    for stepped, drawn, course in zip(env.sim.models, env.perturb.models, task.env_models(2), strict=True):
        assert stepped is drawn is course
    layout = task.course_layout.numpy()
    for i, model in enumerate(env.sim.models):
        assert 0.5 <= model.geom_friction[task.course.geoms[0], 0] <= 0.6
        assert _ray_down(model, layout[i, 0, :2].mean()) == pytest.approx(layout[i, 0, 2])
    with pytest.raises(ValueError, match="rough ground"):
        VecEnv(make_task("quadruped_terrain"), 2, randomization=Randomization(rough_ground_m=0.03))


def test_standing_on_a_block_is_standing_tall_not_a_fall():
    task = make_task("quadruped_terrain")
    env = VecEnv(task, 2, seed=2, threads=1)
    layout = task.course_layout.numpy()
    qpos = env.state.qpos.clone()
    qpos[0, 0] = layout[0, 1, :2].mean()  # env 0 on its middle block
    qpos[0, 2] += layout[0, 1, 2]
    env.state = SimState(qpos, torch.zeros_like(env.state.qvel), env.state.act)
    for _ in range(100):
        result = env.step(torch.zeros(2, 12))
    assert not result.terminated.any()
    z, height = env.state.qpos[:, 2].numpy(), task.trunk_height(env.state.qpos).numpy()
    assert z[0] == pytest.approx(layout[0, 1, 2] + height[0])
    assert height[0] == pytest.approx(height[1], abs=0.01)
    terms = task.reward_terms(env.state, torch.zeros(2, 12), env.state)["height"].numpy()
    assert terms[0] == pytest.approx(terms[1], abs=0.05)  # the same height reward as on the floor


def test_standing_still_never_crosses():
    result = evaluate(StandStill(), "quadruped_terrain", 2, 0, True)
    assert result["falls"] == 0 and result["crossings"] == 0 and result["crossing_rate"] == 0.0
    assert not make_task("quadruped_terrain").solved(result)


def test_a_crossing_counts_only_without_a_fall(monkeypatch):
    """Both robots start past the finish line; the one dropped upside down falls and does not count."""
    start = QuadrupedTerrain.initial_state

    def past_the_course(self, n, rng):
        state = start(self, n, rng)
        qpos = state.qpos.clone()
        qpos[:, 0] = 10.0  # past any course (the farthest finish is at 4.1 m)
        qpos[1, 3:7] = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=qpos.dtype)  # env 1 upside down
        return SimState(qpos, state.qvel, state.act)

    monkeypatch.setattr(QuadrupedTerrain, "initial_state", past_the_course)
    result = evaluate(StandStill(), "quadruped_terrain", 2, 0, True)
    assert result["falls"] == 1 and result["crossings"] == 1 and result["crossing_rate"] == 0.5
    task = make_task("quadruped_terrain")
    assert task.solved({**result, "falls": 0, "crossing_rate": 0.9})
    assert not task.solved({**result, "falls": 0, "crossing_rate": 0.85})
    assert not task.solved({**result, "falls": 1, "crossing_rate": 1.0})


def test_the_depth_camera_sees_each_envs_blocks():
    task = make_task("quadruped_terrain_depth")
    models = task.env_models(2)
    near = task.course.nominal.copy()
    near[:, :2] += 0.9 - near[0, 0]  # env 0: the first block 0.55 m ahead of the nose, in full view
    task.course.apply(models[0], near)
    task.course.apply(models[1], near + [100.0, 100.0, 0.0])  # env 1: no block in view, flat ground
    qpos = torch.from_numpy(np.stack([STAND, STAND]))
    image = task.depth_image(qpos)[:, 0]
    closer = image[1] - image[0]  # normalised depth: 1 = the depth range (4 m)
    assert (closer >= -1e-9).all()  # a block never makes a pixel farther
    assert (closer * task.depth_range > 0.05).sum() >= 16  # at least a row of pixels 5 cm nearer
    assert (image[1] < 1).all()  # looking down: every ray of the flat image hits the ground in range


def test_a_realsense_d435_covers_the_terrain_camera():
    camera = model_camera(make_task("quadruped_terrain_depth"))
    assert camera.fovy_deg <= 55 and (camera.width, camera.height) == (16, 16)
    focal_x, focal_y = 424 / math.tan(math.radians(87 / 2)), 240 / math.tan(math.radians(58 / 2))
    d435 = Intrinsics(848, 480, focal_x, focal_y, 423.5, 239.5)  # its 87 x 58 degree depth stream
    DepthResampler(camera, d435)  # raises FieldOfViewError when the camera cannot cover the model's


def test_a_course_spec_names_what_is_wrong():
    def world(custom: str) -> mujoco.MjModel:
        return mujoco.MjModel.from_xml_string(
            f"<mujoco><custom>{custom}</custom><worldbody><body name='course_block_0' pos='1 0 0.05'>"
            "<geom type='box' size='0.2 1 0.05'/></body></worldbody></mujoco>"
        )

    good = {"start_x": "0.5 1", "block_length": "0.3 0.4", "block_height": "0.05 0.1", "gap": "0 0.1",
            "finish_margin": "0.3", "command_vx": "0.5 1", "solved_crossing_rate": "0.9"}  # fmt: skip

    def custom(**change) -> str:
        entries = {k: v for k, v in {**good, **change}.items() if v is not None}
        return "".join(f"<numeric name='course_{k}' data='{v}'/>" for k, v in entries.items())

    assert CourseSpec.from_model(world("")) is None  # no course declared
    course = Course(world(custom()))
    np.testing.assert_allclose(course.nominal, [[0.8, 1.2, 0.1]])
    for change, message in (
        ({"gap": None}, "course_gap"),
        ({"block_height": "0.1 0.05"}, "low > high"),
        ({"block_length": "0 0.4"}, "course_block_length must be > 0"),
        ({"finish_margin": "0.3 0.4"}, "needs 1 value"),
        ({"solved_crossing_rate": "1.5"}, "course_solved_crossing_rate"),
    ):
        with pytest.raises(ValueError, match=message):
            Course(world(custom(**change)))


@pytest.mark.parametrize("name", ["quadruped_terrain_depth_rfo", "quadruped_terrain_rfo"])
def test_the_training_configs_load(name):
    cfg = load_config(REPO / "config" / "train" / f"{name}.yaml")
    reference = load_config(REPO / "config" / "train" / "quadruped_rfo.yaml")
    assert cfg.algo == "rfo" and cfg.env.task == name.removesuffix("_rfo")
    assert (cfg.policy, cfg.critic, cfg.diff) == (reference.policy, reference.critic, reference.diff)
    task = task_from_config(cfg.env.task, cfg.env.robot, cfg.env.base_lin_vel, cfg.env.obs_history)
    assert task.image_shape == ((1, 16, 16) if "depth" in name else None)


# --- the sim node and the demo ------------------------------------------------------------------------


@pytest.fixture
def terrain_robot(tmp_path) -> Path:
    """A robot file of the go1 in the course world (what the bringup's --terrain writes)."""
    path = tmp_path / "go1_terrain.yaml"
    path.write_text(yaml.safe_dump(description_tree(make_task("quadruped_terrain").description)))
    return path


def make_sim(harness: NodeHarness, **params) -> SimNode:
    params = {"real_time_factor": 0.0, "lockstep": True, "lockstep_timeout_s": 60.0, **params}
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return harness.add(SimNode(**harness.node_kwargs(parameter_overrides=overrides)))


def test_the_sim_node_draws_one_course_per_run_and_counts_crossings(terrain_robot):
    with NodeHarness() as h:
        nominal = make_sim(h, robot=str(terrain_robot), course_seed=-1)
        course = Course(nominal.model)
        np.testing.assert_allclose(nominal.course_layout, course.nominal)
        drawn = make_sim(h, robot=str(terrain_robot), course_seed=7)
        np.testing.assert_allclose(drawn.course_layout, course.draw(np.random.default_rng(7), 1)[0])
        block = drawn.course_layout[1]
        assert _ray_down(drawn.model, block[:2].mean()) == pytest.approx(block[2])  # placed in its world
        for sim in (nominal, drawn):
            sim.step_period()
            assert sim.report().crossings == 0 and sim.report().course_finish_x == pytest.approx(
                sim.course_layout[-1, 1] + course.spec.finish_margin
            )
        nominal.data.qpos[0] = nominal.course_finish_x + 0.05  # past the finish, standing
        nominal.step_period()
        assert (nominal.report().crossings, nominal.report().falls) == (1, 0)
        drawn.data.qpos[0] = drawn.course_finish_x + 0.05
        drawn.data.qpos[3:7] = (0.0, 1.0, 0.0, 0.0)  # past it, but upside down: a fall, no crossing
        drawn.step_period()
        assert (drawn.report().crossings, drawn.report().falls) == (0, 1)


def test_the_terrain_demo_runs_a_depth_model_with_the_sim_camera(tmp_path):
    model = export_untrained_policy(
        tmp_path / "seeing.onnx", task="quadruped_terrain_depth", flow_steps=1, chunk=1
    )
    report = run_bringup(model=model, duration=1.0, fast=True, terrain=True, course_seed=-1)
    assert report.complete and report.task == "quadruped_terrain_depth"
    assert {"depth", "camera_info"} <= set(report.policy_inputs)
    assert report.crossings == 0 and report.attempts == 1
    assert report.course_finish_x == pytest.approx(
        Course(make_task("quadruped_terrain").model).nominal[-1, 1] + 0.3
    )
    cam = report.camera
    assert 0 < cam.used <= cam.published and cam.dropped == 0 and cam.latency.count == cam.used
    assert cam.rate_hz == pytest.approx(30.0, abs=2.0)  # the sim camera's 30 Hz of sim time
    assert cam.status.startswith("320x240")  # the sim's camera, resampled to the model's
    text = report.text()
    assert "obstacle course" in text and "camera latency" in text
    assert report.as_dict()["camera"]["used"] == cam.used


def test_the_terrain_demo_runs_a_blind_model_blind(tmp_path):
    model = export_untrained_policy(tmp_path / "blind.onnx", task="quadruped_terrain", flow_steps=1, chunk=1)
    report = run_bringup(model=model, duration=0.5, fast=True, terrain=True)
    assert report.complete and report.camera is None and "depth" not in report.policy_inputs
    assert report.crossings == 0 and "camera" not in report.text()


def test_an_exported_depth_model_is_evaluated_as_its_checkpoint(tmp_path):
    """``python -m rfo_ros.evaluate model.onnx`` on the perceptive task: the image part of the observation
    goes to the graph's image input, and the actions are the checkpoint's."""
    from rfo_ros.bench.latency import untrained_checkpoint
    from rfo_ros.checkpoint import load_actor
    from rfo_ros.evaluate import OnnxActor
    from rfo_ros.export import export_onnx

    checkpoint, task = untrained_checkpoint(
        tmp_path / "seeing.pt", "quadruped_terrain_depth", flow_steps=1, chunk=1
    )
    export_onnx(checkpoint, tmp_path / "seeing.onnx", zero_noise=True, task=task)
    env = VecEnv(task, 3, seed=0, threads=1)
    obs, noise = env.reset(), torch.zeros(3, 1, 12)
    onnx, (torch_actor, _) = OnnxActor(tmp_path / "seeing.onnx"), load_actor(checkpoint)
    torch.testing.assert_close(onnx(obs, noise)[0], torch_actor(obs, noise)[0].detach(), atol=1e-5, rtol=0)
    assert onnx.obs_dim == torch_actor.obs_dim == obs.shape[1]  # the pixels count: evaluate's size check
    assert evaluate(onnx, "quadruped_terrain_depth", 2, 0, True)["length_mean"] > 0


# --- the perceptive route: a teacher that reads the course's heights, a student that sees depth ---------

TROT = str(REPO / "config" / "robots" / "go1_trot.yaml")


def test_the_height_scan_reads_the_course_ahead_along_the_heading():
    """``legged_terrain_scan`` ends its observation with the trunk's height above the ground at 15 points
    ahead (minus 0.3 m, ×5): 0 over the floor, and each block's height where the points are over it."""
    task = make_task("legged_terrain_scan", robot=TROT)
    assert task.obs_layout.names[-1] == "height_scan" and task.description.gait is not None
    env = VecEnv(task, 2, seed=0, threads=1)
    env.reset()
    layout = np.array([[[0.45, 0.75, 0.1], [1.0, 1.3, 0.15], [2.0, 2.5, 0.08]]] * 2)
    task.course_layout = torch.from_numpy(layout)
    qpos = torch.from_numpy(np.stack([STAND, STAND]))
    qpos[1, 3:7] = torch.tensor([math.cos(math.pi / 2), 0.0, 0.0, math.sin(math.pi / 2)])  # facing -x
    ahead = np.round(np.arange(-0.2, 1.25, 0.1), 1)
    ground = np.where((ahead >= 0.45) & (ahead < 0.75), 0.1, 0.0)
    ground = np.where((ahead >= 1.0) & (ahead < 1.3), 0.15, ground)
    np.testing.assert_allclose(task.height_scan(qpos)[0].numpy(), 0.30 - ground, atol=1e-12)
    # Facing -x, the blocks are behind the trunk: the scan reads the floor.
    np.testing.assert_allclose(task.height_scan(qpos)[1].numpy(), np.full(15, 0.30), atol=1e-12)
    state = SimState(qpos, torch.zeros(2, task.model.nv), torch.zeros(2, task.model.na))
    obs = task.observe(state, torch.zeros(2, 12))
    np.testing.assert_allclose(obs[0, -15:].numpy(), (0.30 - ground - 0.3) * 5.0, atol=1e-12)


def test_a_scan_teacher_labels_a_depth_student_from_the_simulators_course(tmp_path):
    """The teacher's scan comes from the simulator (each env's own course), the rest from the student's
    frame, in front of the image; the student observes no scan, and the node refuses the teacher."""
    from rfo_ros.algos.teacher import OnnxTeacher
    from rfo_ros.runtime import make_policy
    from rfo_ros.runtime.controller import Controller, ControllerConfig
    from rfo_ros.runtime.metadata import ModelError

    teacher_path = export_untrained_policy(
        tmp_path / "scan.onnx", task="legged_terrain_scan", robot=TROT, flow_steps=1, chunk=1
    )
    student = make_task("legged_terrain_depth", robot=TROT)
    env = VecEnv(student, 3, seed=1, threads=1)
    obs = env.reset()
    for _ in range(3):
        obs = env.step(torch.zeros(3, 12)).obs
    assert "height_scan" not in student.obs_layout.names
    assert obs.shape[1] == student.obs_layout.size + 256  # the frame, then the pixels
    teacher = OnnxTeacher(teacher_path, env)
    assert teacher.privileged_fields == ["height_scan"]
    seen = teacher.observation(obs)
    scan = (student.height_scan(env.state.qpos).numpy() - 0.3) * 5.0
    np.testing.assert_allclose(seen[:, -15:], scan, atol=1e-6)
    np.testing.assert_array_equal(seen[:, :-15], obs[:, : student.obs_layout.size].numpy().astype(np.float32))
    assert teacher.act(obs).shape == (3, 12)
    with pytest.raises(ModelError, match="height_scan"):
        Controller(make_policy(teacher_path, provider="cpu"), ControllerConfig())


def test_a_scan_teacher_cannot_label_a_student_without_a_course(tmp_path):
    from rfo_ros.algos.teacher import OnnxTeacher
    from rfo_ros.runtime.metadata import ModelError

    teacher_path = export_untrained_policy(
        tmp_path / "scan.onnx", task="legged_terrain_scan", robot=TROT, flow_steps=1, chunk=1
    )
    flat = VecEnv(make_task("legged", robot=TROT), 2, seed=0, threads=1)
    with pytest.raises(ModelError, match="no obstacle course"):
        OnnxTeacher(teacher_path, flat)


def test_a_policy_is_evaluated_on_the_course_or_refused_with_the_sizes(tmp_path):
    """``evaluate --task``: a flat-ground policy of go1_trot on the course (same observation), and a policy
    whose observation the task cannot give is refused with both sizes."""
    from rfo_ros.evaluate import main

    flat = export_untrained_policy(tmp_path / "flat.onnx", task="legged", robot=TROT, flow_steps=1, chunk=1)
    assert main([str(flat), "--episodes", "1", "--task", "legged_terrain"]) == 0
    assert main([str(flat), "--episodes", "1", "--task", "legged_terrain_scan"]) == 1


def test_the_perceptive_route_configs_load():
    """The teacher observes the scan and the velocity, the student the depth image; both on go1_trot."""
    teacher = load_config(REPO / "config" / "train" / "quadruped_terrain_teacher_ppo.yaml")
    student = load_config(REPO / "config" / "train" / "quadruped_terrain_distill.yaml")
    assert (teacher.algo, student.algo) == ("ppo", "distill") and student.policy.chunk == 4
    built = [task_from_config(c.env.task, c.env.robot, c.env.base_lin_vel, c.env.obs_history)
             for c in (teacher, student)]  # fmt: skip
    assert built[0].obs_layout.names[-1] == "height_scan" and built[0].image_shape is None
    assert "height_scan" not in built[1].obs_layout.names and built[1].image_shape == (1, 16, 16)
    assert {t.description.name for t in built} == {"go1_trot"}


def test_the_course_steers_its_robot_back_to_the_course_direction():
    """The command's yaw rate on the course is a heading controller's (0.5 per rad, at most 1 rad/s), in the
    observation and in the reward alike, so turning away from the blocks is no way to earn the reward."""
    task = make_task("legged_terrain", robot=TROT)
    env = VecEnv(task, 3, seed=0, threads=1)
    env.reset()
    qpos = torch.from_numpy(np.stack([STAND] * 3))
    for i, yaw in enumerate((0.0, math.pi / 2, math.pi)):
        qpos[i, 3:7] = torch.tensor([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    command = task.command_at(qpos)
    np.testing.assert_allclose(command[:, 2].numpy(), [0.0, -math.pi / 4, -1.0], atol=1e-9)
    np.testing.assert_array_equal(command[:, :2].numpy(), task.commands_for(3)[:, :2].numpy())
    state = SimState(qpos, torch.zeros(3, task.model.nv), torch.zeros(3, task.model.na))
    obs = task.observe(state, torch.zeros(3, 12))
    cut = task.obs_layout.slice("command")
    np.testing.assert_allclose(obs[:, cut][:, 2].numpy(), 0.25 * command[:, 2].numpy(), atol=1e-9)
    # Standing still: the yaw term pays fully where the command is 0, less where it asks for a turn.
    yaw_reward = task.reward_terms(state, torch.zeros(3, 12), state)["track_yaw_rate"]
    assert yaw_reward[0] > yaw_reward[1] > yaw_reward[2]


def test_the_curriculum_moves_an_env_up_on_a_crossing_and_down_short_of_halfway():
    from rfo_ros.envs.course_levels import CourseLevels

    levels, rng = CourseLevels(4), np.random.default_rng(0)
    at = np.array([0, 1, 2, 0, 2])
    crossed = np.array([True, True, False, False, False])
    progress = np.array([1.1, 1.3, 0.3, 0.2, 0.7])  # trunk x over the finish line's x
    np.testing.assert_array_equal(levels.update(at, crossed, progress, rng), [1, 2, 1, 0, 2])
    # Crossing at the top level sends the env to a random level, so the easy courses stay in the batch.
    top = levels.update(np.full(200, 3), np.ones(200, bool), np.full(200, 1.2), rng)
    assert set(top.tolist()) == {0, 1, 2, 3}
    np.testing.assert_allclose(levels.height_scale(np.arange(4)), [0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match="course_levels"):
        CourseLevels(0)


def test_a_curriculum_draws_low_blocks_first_and_higher_ones_after_a_crossing():
    from rfo_ros.envs.course_levels import CourseLevels

    task = make_task("quadruped_terrain")
    task.use_levels(CourseLevels(5))
    env = VecEnv(task, 2, seed=3, threads=1)
    spec = task.course.spec
    heights = task.course_layout[..., 2]
    assert (task.course_level == 0).all()
    assert (heights >= spec.block_height[0] / 5 - 1e-12).all() and (heights <= spec.block_height[1] / 5).all()
    assert task.train_metrics() == {"Train/course_level_mean": 0.0}
    # Env 0's trunk is past its finish line when its episode ends: it moves up; env 1 stood still: it stays.
    qpos = env.state.qpos.clone()
    qpos[0, 0] = float(task.course.finish_x(task.course_layout.numpy()[:1])[0]) + 0.1
    env.state = SimState(qpos, env.state.qvel, env.state.act)
    env.reset()  # a reset of every env is not an episode's outcome: no level moves
    assert task.course_level.tolist() == [0, 0]
    env.state = SimState(qpos, torch.zeros_like(env.state.qvel), env.state.act)
    env.episode_step[:] = task.info.episode_length - 1  # both episodes end at the next step (time limit)
    env.step(torch.zeros(2, 12))
    assert task.course_level.tolist() == [1, 0]
    assert (task.course_layout[0, :, 2] >= 2 * spec.block_height[0] / 5 - 1e-12).all()
    assert (task.course_layout[1, :, 2] <= spec.block_height[1] / 5).all()
    # The levels are part of the run's state (a resumed run keeps them); evaluation's own task has none.
    assert torch.equal(env.state_dict()["task"]["course_level"], task.course_level)
    assert make_task("quadruped_terrain").train_metrics() == {}


def test_a_curriculum_run_logs_its_level_and_is_refused_on_a_task_without_a_course(tmp_path):
    from rfo_ros.runner import Runner

    tiny = ["env.num_envs=2", "env.threads=1", "policy.hidden=[16]", "critic.hidden=[16]"]
    tiny.append("run.eval_episodes=1")
    sets = [*tiny, "algo=ppo", "env.task=quadruped_terrain", "env.course_levels=3", "run.total_env_steps=128"]
    runner = Runner(load_config(None, sets), tmp_path / "levels", progress=False)
    runner.train()
    runner.finish()
    rows = (tmp_path / "levels" / "metrics.csv").read_text().splitlines()
    assert "Train/course_level_mean" in rows[0].split(",")
    assert (tmp_path / "levels" / "learning_curve.png").stat().st_size > 0
    cfg = load_config(None, ["env.task=cartpole", "env.course_levels=3", "env.num_envs=2"])
    with pytest.raises(ValueError, match="env.course_levels: task 'cartpole' has no obstacle course"):
        Runner(cfg, tmp_path / "run", progress=False)
