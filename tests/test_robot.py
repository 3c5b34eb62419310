"""Robots as data: robot files, the generic legged task, and every way a robot file can be wrong."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
import yaml
from training_settings import TINY_TRAINING

from rfo_ros.envs import make_task, task_from_config
from rfo_ros.envs.legged_walk import LeggedWalk
from rfo_ros.robot import Robot, RobotError, node_parameters, read_description
from rfo_ros.sim.autograd import SimState
from rfo_ros.sim.worlds import world_path

REPO = Path(__file__).resolve().parents[1]
GO1 = REPO / "config" / "robots" / "go1.yaml"
HEXAPOD = REPO / "config" / "robots" / "hexapod.yaml"
# QuadrupedWalk's outputs on fixed states, recorded at commit b0ba1c1 (the last hand-written
# QuadrupedWalk) with scripts/record_quadruped_reference.py.
REFERENCE = Path(__file__).parent / "data" / "quadruped_walk_reference.npz"


def go1_tree() -> dict:
    return yaml.safe_load(GO1.read_text())


def write_robot(tmp_path: Path, tree: dict, name: str = "robot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# --- go1 is today's quadruped ------------------------------------------------------------------------
def test_go1_robot_file_reproduces_the_hand_written_quadruped():
    """Same reset draws, commands, observation, rewards, controls and termination as the hand-written
    quadruped, on the states it was recorded on.

    The record was made on one machine, and torch's vector kernels (exp, matmul's summation order) round
    differently from one CPU vendor and instruction set to the next, so floats match to 1e-12 (any real
    difference in a formula is many orders larger) and the termination flags exactly."""
    ref = np.load(REFERENCE)
    close = dict(rtol=1e-12, atol=1e-12)
    for task in (make_task("quadruped"), make_task("legged", robot=GO1)):
        n = ref["qpos"].shape[0]
        task.resample(np.ones(n, dtype=bool), np.random.default_rng(7))
        start = task.initial_state(n, np.random.default_rng(3))
        np.testing.assert_allclose(start.qpos.numpy(), ref["start_qpos"], **close)
        np.testing.assert_allclose(start.qvel.numpy(), ref["start_qvel"], **close)
        np.testing.assert_allclose(task.command.numpy(), ref["command"], **close)
        t = {k: torch.from_numpy(ref[k]) for k in ("qpos", "qvel", "next_qpos", "next_qvel", "action")}
        state = SimState(t["qpos"], t["qvel"], torch.zeros(n, 0, dtype=torch.float64))
        after = SimState(t["next_qpos"], t["next_qvel"], state.act)
        action = t["action"]
        np.testing.assert_allclose(task.observe(state, action).numpy(), ref["obs"], **close)
        terms = task.reward_terms(state, action, after)
        assert {f"term_{k}" for k in terms} == {k for k in ref.files if k.startswith("term_")}
        for name, value in terms.items():
            np.testing.assert_allclose(value.numpy(), ref[f"term_{name}"], **close, err_msg=name)
        np.testing.assert_allclose(task.reward(state, action, after).numpy(), ref["reward"], **close)
        assert np.array_equal(task.terminated(after).numpy(), ref["terminated"])
        assert ref["terminated"].any() and not ref["terminated"].all()  # the states exercise both
        np.testing.assert_allclose(task.action_to_ctrl(action).numpy(), ref["ctrl"], **close)
        np.testing.assert_allclose(task.forward_speed(after).numpy(), ref["forward_speed"], **close)
        assert task.dt == float(ref["dt"]) and task.obs_dim == int(ref["obs_dim"])


def test_quadruped_task_is_the_go1_robot_only():
    assert make_task("quadruped", robot="go1").robot.name == "go1"
    with pytest.raises(ValueError, match="not 'hexapod'.*env.task: legged"):
        make_task("quadruped", robot=HEXAPOD)
    with pytest.raises(ValueError, match="needs a robot file"):
        make_task("legged")
    with pytest.raises(ValueError, match="takes no options"):
        make_task("cartpole", robot=GO1)


# --- the generic task on other robots ----------------------------------------------------------------
def test_hexapod_layout_is_sized_from_its_joints():
    task = make_task("legged", robot=HEXAPOD)
    n = 18
    assert task.action_dim == n and task.obs_dim == 12 + 3 * n
    assert task.obs_layout.slice("joint_pos") == slice(12, 12 + n)
    # At the standing pose the joint-position field reads zero (its offset is the pose).
    qpos = torch.from_numpy(task.model.qpos0.copy())[None]
    qpos[0, task.robot.qpos_adr] = torch.from_numpy(task.robot.standing_pose)
    state = SimState(qpos, torch.zeros(1, task.model.nv, dtype=torch.float64), torch.zeros(1, 0))
    obs = task.observe(state, torch.zeros(1, n))
    assert torch.all(obs[0, task.obs_layout.slice("joint_pos")] == 0)


def test_joint_order_of_the_robot_file_is_the_policy_order(tmp_path):
    """A robot file listing the joints in another order than the MJCF's actuators: actions, observation
    and exported joint names follow the file; each actuator still gets its own joint's target."""
    tree = go1_tree()
    tree["mjcf"] = str(world_path("quadruped"))
    tree["joints"] = list(reversed(tree["joints"]))
    task = make_task("legged", robot=write_robot(tmp_path, tree))
    robot = task.robot
    assert task.joint_names == tuple(tree["joints"])
    action = torch.linspace(-0.9, 0.9, 12, dtype=torch.float64)[None]
    ctrl = task.action_to_ctrl(action)[0].numpy()
    targets = task.joint_targets(action)[0].numpy()
    actuated = [task.model.joint(int(j)).name for j in task.model.actuator_trnid[:, 0]]
    for j, name in enumerate(tree["joints"]):
        assert ctrl[actuated.index(name)] == targets[j]
    qpos = torch.from_numpy(task.model.key_qpos[0].copy())[None]
    qpos[0, 7:] += torch.arange(12, dtype=torch.float64) * 0.01
    state = SimState(qpos, torch.zeros(1, 18, dtype=torch.float64), torch.zeros(1, 0))
    joint_pos = task.joint_pos(qpos)[0].numpy()
    assert np.array_equal(joint_pos, qpos[0, robot.qpos_adr].numpy())
    assert task.observe(state, torch.zeros(1, 12)).shape == (1, 48)


def test_given_pd_gains_replace_the_actuators_and_a_pose_can_be_per_joint(tmp_path):
    tree = go1_tree()
    tree["pd_gains"] = {"kp": 25.0, "kd": [0.5] * 12}
    tree["standing_pose"] = {"values": dict(zip(tree["joints"], [0.0, 0.8, -1.6] * 4, strict=True))}
    robot = Robot.load(write_robot(tmp_path, tree))
    assert np.all(robot.kp == 25.0) and np.all(robot.kd == 0.5)
    m = robot.model
    assert np.all(m.actuator_gainprm[:, 0] == 25.0) and np.all(m.actuator_biasprm[:, 1] == -25.0)
    assert np.all(m.actuator_biasprm[:, 2] == -0.5)
    assert robot.standing_pose.tolist() == [0.0, 0.8, -1.6] * 4
    task = LeggedWalk(robot)
    assert task.action_map().offset.tolist() == [0.0, 0.8, -1.6] * 4


def test_contract_and_node_parameters_come_from_the_description():
    robot = Robot.load(HEXAPOD)
    contract = robot.contract()
    assert contract["joint_names"] == list(robot.joint_names)
    assert contract["default_joint_pos"] == robot.standing_pose.tolist()
    assert contract["dt"] == pytest.approx(0.01) and len(contract["kp"]) == 18
    assert read_description(contract["description"]) == robot.description
    params = node_parameters(HEXAPOD)
    assert params["sim_node"]["robot"] == str(HEXAPOD)
    assert params["policy_node"]["robot_joint_names"] == list(robot.joint_names)
    assert params["policy_node"]["default_cmd_vx"] == pytest.approx(sum(robot.description.commands.vx) / 2)


def test_robot_names_resolve_in_config_robots():
    assert read_description("hexapod") == read_description(HEXAPOD)
    with pytest.raises(RobotError, match=r"robot file not found.*robots in config/robots: .*go1.*hexapod"):
        read_description("no_such_robot")


# --- bad robot files: one clear error each, naming what is valid ------------------------------------
def _without_actuator(tmp_path: Path, joint: str) -> str:
    xml = world_path("quadruped").read_text()
    xml, count = re.subn(rf'\s*<position name="\w+" joint="{joint}"[^>]*/>', "", xml)
    assert count == 1
    xml = re.sub(r"<keyframe>.*</keyframe>", "", xml, flags=re.S)  # its ctrl no longer has 12 entries
    (tmp_path / "three_legged_motor.xml").write_text(xml)
    return "three_legged_motor.xml"  # relative: resolved against the robot file's folder


#: go1's standing pose per joint.
STAND = dict(zip(go1_tree()["joints"], [0.0, 0.9, -1.8] * 4, strict=True))
BAD_ROBOTS = {
    "missing joint": (
        lambda t, tmp: t.update(joints=[*t["joints"][:-1], "RL_knee_joint"]),
        r"joints \['RL_knee_joint'\] not in the MJCF; its joints: FR_hip_joint, .*RL_calf_joint",
    ),
    "missing trunk": (
        lambda t, tmp: t.update(trunk="base"),
        r"trunk body 'base' not in the MJCF; bodies: world, trunk, FR_hip",
    ),
    "joint without position actuator": (
        lambda t, tmp: t.update(
            mjcf=_without_actuator(tmp, "FR_calf_joint"), standing_pose={"values": STAND}
        ),
        r"joints \['FR_calf_joint'\] have no position actuator .*"
        r"joints with one: FR_hip_joint, FR_thigh_joint, FL_hip",
    ),
    "pose outside range": (
        lambda t, tmp: t.update(standing_pose={"values": {**STAND, "FR_calf_joint": 1.0}}),
        r"standing pose outside the joint range: FR_calf_joint = 1 not in \[-2.818, -0.888\]",
    ),
    "foot neither geom nor body": (
        lambda t, tmp: t.update(feet=["FR_foot", "FL_foot", "RR_foot", "RL_toe"]),
        r"feet \['RL_toe'\] are neither geoms nor bodies; geoms: .*FR_foot.*; bodies: world, trunk",
    ),
    "missing MJCF": (
        lambda t, tmp: t.update(mjcf="no_such_robot.xml"),
        r"mjcf .*MJCF world not found: .*no_such_robot.xml \(worlds in sim/: .*quadruped",
    ),
    "unknown keyframe": (
        lambda t, tmp: t.update(standing_pose={"keyframe": "crouch"}),
        r"standing_pose.keyframe 'crouch' not in the MJCF; keyframes: stand",
    ),
    "unknown key": (
        lambda t, tmp: t.update(joint_names=t["joints"]),
        r"joint_names: unknown key \(valid keys here: action_scale, camera, commands",
    ),
    "wrong type": (
        lambda t, tmp: t.update(action_scale="half"),
        r"action_scale.float = 'half': Input should be a valid number",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ROBOTS))
def test_bad_robot_file_gives_one_clear_error(case, tmp_path):
    change, message = BAD_ROBOTS[case]
    tree = go1_tree()
    change(tree, tmp_path)
    path = write_robot(tmp_path, tree)
    with pytest.raises(RobotError, match=message):
        Robot.load(path)


@pytest.mark.parametrize("case", ["missing joint", "joint without position actuator", "pose outside range",
                                  "foot neither geom nor body", "missing MJCF"])  # fmt: skip
def test_train_cli_refuses_a_bad_robot_with_exit_2_and_writes_nothing(case, tmp_path):
    change, message = BAD_ROBOTS[case]
    tree = go1_tree()
    change(tree, tmp_path)
    path = write_robot(tmp_path, tree)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "rfo_ros.train", "--config", str(REPO / "config/train/legged_rfo.yaml"),
           "--set", f"env.robot={path}", "--out", str(out), "--no-progress"]  # fmt: skip
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert result.stderr.count("error:") == 1
    assert not out.exists()


# --- training, resume, evaluate and export need nothing but the run -----------------------------------
def test_a_run_carries_its_robot_so_resume_evaluate_and_export_need_no_robot_file(tmp_path):
    from rfo_ros.export import export_onnx
    from rfo_ros.runtime import load_metadata

    robot_copy = tmp_path / "my_hexapod.yaml"
    description = yaml.safe_load(Path(HEXAPOD).read_text())
    description["episode"] = {**description.get("episode", {}), "length": 64}  # short evaluations
    robot_copy.write_text(yaml.safe_dump(description))
    out = tmp_path / "run"
    sets = [*TINY_TRAINING, "algo=rfo", "env.task=legged", f"env.robot={robot_copy}",
            "run.total_env_steps=256", "run.eval_episodes=2", "run.checkpoint_every=1"]  # fmt: skip

    def train(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "rfo_ros.train", *args, "--out", str(out), "--no-progress"]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150, check=False)

    first = train(*[a for s in sets for a in ("--set", s)])
    assert first.returncode == 0, first.stderr[-2000:]
    assert yaml.safe_load((out / "robot.yaml").read_text())["name"] == "hexapod"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["robot"] == "hexapod" and summary["task"] == "legged"
    Path(robot_copy).unlink()  # from here on only the run folder knows the robot
    resumed = train("--resume", "--set", "run.total_env_steps=512")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["env_steps"] >= 512
    evaluated = subprocess.run(
        [sys.executable, "-m", "rfo_ros.evaluate", str(out / "checkpoints/last.pt"), "--episodes", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "forward_speed_mean" in json.loads(evaluated.stdout)["stochastic"]
    onnx_path = tmp_path / "hexapod.onnx"
    export_onnx(out / "checkpoints/last.pt", onnx_path)
    meta = load_metadata(onnx_path)
    hexapod = Robot.load(HEXAPOD)
    assert meta.joint_names == hexapod.joint_names and meta.action_dim == 18 and meta.obs_dim == 66
    assert meta.robot["name"] == "hexapod"
    assert meta.robot["default_joint_pos"] == hexapod.standing_pose.tolist()
    assert meta.robot["kp"] == hexapod.kp.tolist() and meta.robot["observation"]["size"] == 66
    assert np.array_equal(meta.action_offset, hexapod.standing_pose)
    # The metadata rebuilds the training task (what bench chunks and latency do).
    from rfo_ros.envs import task_from_metadata

    assert task_from_metadata(meta.task, meta.robot).robot.name == "hexapod"


def test_task_from_config_passes_the_robot():
    task = task_from_config("legged", str(HEXAPOD))
    assert isinstance(task, LeggedWalk) and task.robot.name == "hexapod"
    assert task.options()["robot"]["name"] == "hexapod"
    rebuilt = make_task("legged", **task.options())
    assert rebuilt.robot.description == task.robot.description
    assert mujoco.mj_name2id(rebuilt.model, mujoco.mjtObj.mjOBJ_GEOM, "L1_foot") >= 0
