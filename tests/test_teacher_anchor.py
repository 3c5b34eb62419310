"""RFO anchored to a teacher (``diff.lambda_teacher``, rfo_ros/algos/teacher_anchor.py).

The teacher is the shipped RFO policy that observes the trunk's velocity (models/quadruped_randomized.onnx);
the student, a blind chunked flow, observes joints and IMU only.
"""

from pathlib import Path

import pytest
import torch
from training_settings import TINY_TRAINING, interrupt_at

from rfo_ros.algos.teacher_anchor import TeacherAnchor, TeacherLabels
from rfo_ros.config import load_config
from rfo_ros.runner import Runner

TEACHER = Path(__file__).resolve().parents[1] / "models" / "quadruped_randomized.onnx"
ANCHORED = [
    *TINY_TRAINING,
    "algo=rfo",
    "env.task=quadruped",
    "env.base_lin_vel=false",
    "env.obs_history=2",
    "env.critic_obs=[base_lin_vel, base_height]",
    "policy.chunk=4",
    "diff.lambda_teacher=1.0",
    f"distill.teacher={TEACHER}",
    "run.eval_episodes=1",
    "run.checkpoint_every=1",
]


def _runner(tmp_path: Path, name: str, *extra: str) -> Runner:
    return Runner(load_config(None, [*ANCHORED, *extra]), tmp_path / name, progress=False)


def test_the_teacher_labels_the_states_of_rfos_own_window(tmp_path):
    """Every step of the window is labelled at the observation the student acted on, and the anchor is one
    of the run's loss terms."""
    runner = _runner(tmp_path, "run")
    algo = runner.algo
    assert isinstance(algo.env, TeacherLabels)
    (anchor,) = [t for t in algo.terms if isinstance(t, TeacherAnchor)]
    _, data, _, _ = algo._window()
    states, labels, done = algo.env.window()
    assert torch.equal(states, data["obs"]) and torch.equal(done, data["done"])
    assert labels.shape == (8, 8, 12) and bool((labels.abs() <= 1).all())
    assert anchor.loss(runner.actor, data["z_obs"], data["z"]) is not None


def test_the_anchor_alone_moves_the_student_towards_the_teacher(tmp_path):
    """On one labelled window, steps on L_teacher alone lower it well below its start."""
    runner = _runner(tmp_path, "run")
    algo = runner.algo
    (anchor,) = [t for t in algo.terms if isinstance(t, TeacherAnchor)]
    anchor.batch = 10_000  # the whole window in every evaluation: a fixed batch
    _, data, _, _ = algo._window()

    def loss() -> torch.Tensor:
        torch.manual_seed(0)  # the same flow-matching draws in every evaluation
        return anchor.loss(runner.actor, data["z_obs"], data["z"])

    before = float(loss().detach())
    optim = torch.optim.Adam(runner.actor.policy.parameters(), lr=3e-3)
    for _ in range(30):
        optim.zero_grad()
        loss().backward()
        optim.step()
    assert float(loss().detach()) < 0.7 * before


def test_an_anchored_run_records_its_teacher_in_the_route_and_resumes_exactly(tmp_path):
    steps = 4 * 8 * 8
    straight = _runner(tmp_path, "straight", f"run.total_env_steps={steps}")
    straight.train()
    stage = straight.route(0.0)[-1]
    assert stage["algo"] == "rfo" and stage["lambda_teacher"] == 1.0
    assert stage["teacher"]["file"] == TEACHER.name and stage["teacher"]["privileged"] == ["base_lin_vel"]

    interrupt_at(_runner(tmp_path, "interrupted", f"run.total_env_steps={steps}"), 2)
    resumed = _runner(tmp_path, "interrupted", f"run.total_env_steps={steps}")
    resumed.resume()
    resumed.train()
    for (name, a), (_, b) in zip(
        straight.actor.state_dict().items(), resumed.actor.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (["distill.teacher=null"], "needs distill.teacher"),
        (["diff.horizon=6"], "a multiple of policy.chunk"),
    ],
)
def test_an_anchor_without_a_teacher_or_with_cut_chunks_is_refused(tmp_path, overrides, needle):
    with pytest.raises(ValueError, match=needle):
        _runner(tmp_path, "run", *overrides)
