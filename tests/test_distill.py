"""Distillation into a blind flow student (algo distill) and the route a policy's stages leave behind.

The teacher in these tests is the shipped RFO policy that observes the trunk's velocity
(models/quadruped_randomized.onnx); the student observes joints and IMU only.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from training_settings import TINY_TRAINING

from rfo_ros.algos.cfm import cfm_loss
from rfo_ros.algos.distill import chunk_targets
from rfo_ros.algos.teacher import OnnxTeacher
from rfo_ros.config import load_config
from rfo_ros.envs import task_from_config
from rfo_ros.envs.legged import base_lin_vel_body
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.export import export_onnx
from rfo_ros.runner import Runner
from rfo_ros.runtime.metadata import ModelError
from rfo_ros.runtime.ort_model import load_metadata

MODELS = Path(__file__).resolve().parents[1] / "models"
TEACHER = MODELS / "quadruped_randomized.onnx"
STUDENT = [
    *TINY_TRAINING,
    "algo=distill",
    "env.task=quadruped",
    "env.base_lin_vel=false",
    "env.obs_history=2",
    "env.critic_obs=[base_lin_vel, base_height]",
    "policy.chunk=4",
    f"distill.teacher={TEACHER}",
    "distill.teacher_share_steps=64",
    "run.eval_episodes=1",
]


def _blind_env(history: int = 2) -> VecEnv:
    task = task_from_config("quadruped", None, False, history)
    return VecEnv(task, 4, seed=3, threads=1, critic_obs=("base_lin_vel",))


def test_the_teacher_sees_the_simulators_velocity_and_the_students_frame():
    """The teacher's observation: the trunk's true velocity (privileged), then the student's newest frame;
    the student's own observation has no velocity."""
    env = _blind_env()
    teacher = OnnxTeacher(TEACHER, env)
    obs = env.reset()
    for _ in range(5):
        obs = env.step(torch.zeros(4, 12)).obs
    assert "base_lin_vel" not in env.task.obs_layout.names and teacher.privileged_fields == ["base_lin_vel"]
    seen = teacher.observation(obs)
    truth = 2.0 * base_lin_vel_body(env.state.qpos, env.state.qvel)
    np.testing.assert_allclose(seen[:, :3], truth.numpy(), atol=1e-6)
    frame = env.task.obs_layout.size
    np.testing.assert_array_equal(seen[:, 3:], obs[:, -frame:].numpy().astype(np.float32))
    action = teacher.act(obs)
    assert action.shape == (4, 12) and bool((action.abs() <= 1).all())


def test_a_teacher_of_another_robot_is_refused():
    env = _blind_env()
    with pytest.raises(ModelError, match="joints"):
        OnnxTeacher(MODELS / "hexapod.onnx", env)


def test_chunk_targets_drop_chunks_an_episode_end_cuts():
    actions = torch.arange(8 * 2 * 1, dtype=torch.float32).reshape(8, 2, 1)
    done = torch.zeros(8, 2, dtype=torch.bool)
    done[1, 0] = True  # env 0's episode ends inside its first chunk (steps 0-3)
    done[7, 1] = True  # env 1's ends at the last step of its second chunk: the chunk is still whole
    targets, valid = chunk_targets(actions, done, 4)
    assert targets.shape == (2, 2, 4, 1)
    assert torch.equal(targets[1, 1, :, 0], actions[4:8, 1, 0])
    assert valid.tolist() == [[False, True], [True, True]]


def test_a_distillation_step_moves_the_student_towards_the_teacher(tmp_path):
    """On a fixed batch of the teacher's chunks, the student's flow-matching loss and the distance of its
    sampled chunks from the teacher's fall after the CFM epochs of one iteration's update."""
    runner = Runner(load_config(None, STUDENT), tmp_path / "run", progress=False)
    algo, actor = runner.algo, runner.actor
    window = algo._window()
    targets, valid = chunk_targets(window["teacher"], window["done"], actor.chunk)
    obs_norm = actor.normalizer(window["obs"][::4][valid])
    z = torch.atanh(targets[valid].clamp(-0.98, 0.98))
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(z.shape, generator=generator)

    def measure() -> tuple[float, float]:
        with torch.no_grad():
            loss = cfm_loss(actor.policy, obs_norm, z, torch.Generator().manual_seed(1))
            action, _ = actor.policy(obs_norm, noise)
        return float(loss), float((action - targets[valid]).abs().mean())

    before = measure()
    for _ in range(10):
        algo._fit_student(window)
    after = measure()
    assert after[0] < 0.7 * before[0] and after[1] < before[1], (before, after)


def test_the_distilled_student_exports_blind_with_its_chunk_and_route_and_rfo_continues_it(tmp_path):
    """The export of a distilled student: chunk C=4, no velocity input, a route naming the teacher; an RFO
    run started from it adds its own stage to the route."""
    first = Runner(load_config(None, [*STUDENT, "run.total_env_steps=64"]), tmp_path / "d", progress=False)
    first.train()
    report = export_onnx(first.checkpoint_path, tmp_path / "student.onnx")
    meta = report.metadata
    assert meta.chunk == 4 and meta.policy_kind == "flow" and meta.algo == "distill"
    assert "base_lin_vel" not in meta.obs_layout.names and meta.obs_dim == 2 * meta.obs_layout.size
    (stage,) = meta.route
    assert stage["algo"] == "distill" and stage["env_steps"] == first.env_steps
    assert stage["teacher"]["file"] == TEACHER.name and stage["teacher"]["privileged"] == ["base_lin_vel"]
    session = ort.InferenceSession(str(tmp_path / "student.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"observation": np.zeros((3, meta.obs_dim), np.float32)}
    feeds["noise"] = np.zeros((3, 4, 12), np.float32)
    assert session.run(None, feeds)[0].shape == (3, 4, 12)

    rfo = [*STUDENT, "algo=rfo", "run.total_env_steps=64", f"run.init_from={first.checkpoint_path}"]
    second = Runner(load_config(None, rfo), tmp_path / "r", progress=False)
    for name, value in first.actor.state_dict().items():
        assert torch.equal(value, second.actor.state_dict()[name]), name
    second.train()
    route = second.route(0.0)
    assert [s["algo"] for s in route] == ["distill", "rfo"]


def test_a_model_without_a_route_still_loads():
    meta = load_metadata(TEACHER)  # exported before routes were recorded
    assert meta.route is None and meta.policy_kind == "flow"


def test_fpo_with_chunks_makes_one_decision_per_chunk(tmp_path):
    """FPO can fine-tune a chunked student: a decision runs the C actions open loop and its reward is their
    discounted sum (checked against the same env stepped by hand); a rollout counts decisions."""
    fpo = [*STUDENT, "algo=fpo", "onpolicy.rollout_steps=2", "run.total_env_steps=64"]
    runner = Runner(load_config(None, fpo), tmp_path / "f", progress=False)
    algo, env = runner.algo, runner.env
    assert runner.actor.chunk == 4
    actions = torch.rand(8, 4, 12) * 2 - 1
    state = env.state_dict()
    by_hand = [env.step(actions[:, j]) for j in range(4)]
    env.load_state_dict(state)
    decision = algo._execute(actions)
    alive = torch.ones(8, dtype=torch.bool)
    expected = torch.zeros(8)
    for j, res in enumerate(by_hand):
        expected += torch.where(alive, 0.99**j * res.reward, torch.zeros(8))
        alive &= ~(res.terminated | res.truncated)
    torch.testing.assert_close(decision.reward, expected)
    assert torch.equal(decision.obs, by_hand[-1].obs)
    before = env.stats.env_steps
    algo.iterate()
    assert env.stats.env_steps - before == 2 * 4 * 8
