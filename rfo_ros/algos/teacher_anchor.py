"""``L_teacher``: an RFO loss term that keeps a fine-tuned student near the teacher it was distilled from.

RFO fine-tuning a distilled student improves what its gradient sees in each short window (the pushes, the
command) and forgets what it does not (the teacher's rough-ground footwork; issue 25's measurements). The
anchor is the distillation loss kept on as a regulariser: at every step of RFO's own window the teacher
(``rfo_ros.algos.teacher.OnnxTeacher``, which may observe the simulator's truth) labels the state the
student visits, and ``L_teacher`` is the flow-matching loss of the student's chunk distribution towards
the teacher's actions along the executed trajectory, exactly the targets of ``algo: distill``:

    J_total = J_RFO - λ_stab L_stab - λ_expl L_expl - λ_teacher L_CFM(student, teacher's chunks)

The labels come from ``TeacherLabels``, an env wrapper: the teacher acts on the observation the student
acts on, before the step, so privileged fields are read from the state that observation describes.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from rfo_ros.algos.cfm import cfm_loss, subsample
from rfo_ros.algos.distill import chunk_targets
from rfo_ros.algos.teacher import OnnxTeacher
from rfo_ros.envs.vec_env import StepResult


class TeacherLabels:
    """An env whose every step also records the state's observation, the teacher's action there and
    whether the step ended an episode.

    Keeps the last ``window`` steps (one RFO window); everything but ``reset`` and ``step`` is the wrapped
    env's.
    """

    def __init__(self, env: Any, teacher: OnnxTeacher, window: int) -> None:
        self.env, self.teacher = env, teacher
        self.steps: deque[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = deque(maxlen=window)
        self.last_obs: torch.Tensor | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self) -> torch.Tensor:
        self.last_obs = self.env.reset()
        return self.last_obs

    def step(self, action: torch.Tensor) -> StepResult:
        if self.last_obs is None:
            raise RuntimeError("TeacherLabels.step before reset: the teacher has no state to label")
        obs = self.last_obs.detach()
        label = self.teacher.act(obs.cpu()).to(obs.device)
        result = self.env.step(action)
        self.steps.append((obs, label, (result.terminated | result.truncated).detach()))
        self.last_obs = result.obs
        return result

    def window(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Observations (T, N, D), the teacher's actions (T, N, m) and done flags (T, N) of the last T
        recorded steps."""
        if not self.steps:
            raise RuntimeError("no labelled steps yet")
        obs, labels, dones = zip(*self.steps, strict=True)
        return torch.stack(obs), torch.stack(labels), torch.stack(dones)


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


class TeacherAnchor:
    """The ``LossTerm`` ``teacher``: CFM towards the teacher's chunks from the window's chunk-boundary
    states (chunks cut by a reset are left out, as in distillation).

    Its samples are the labelled window's, whatever ``loss`` is passed (a reuse epoch passes a minibatch
    of the window's samples; the anchor draws ``batch`` of its own from the same window).
    """

    name = "teacher"

    def __init__(
        self, weight: float, batch: int, labels: TeacherLabels, chunk: int, target_clip: float
    ) -> None:
        self.weight, self.reuse_weight = weight, weight
        self.batch, self.labels, self.chunk, self.target_clip = batch, labels, chunk, target_clip

    def loss(self, actor, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        states, teacher, done = self.labels.window()
        if states.shape[0] % self.chunk:
            raise RuntimeError(f"{states.shape[0]} labelled steps are not whole chunks of {self.chunk}")
        targets, valid = chunk_targets(teacher, done, self.chunk)  # (T/C, N, C, m), (T/C, N)
        if not valid.any():
            return None
        drawn_from = states[:: self.chunk][valid]  # the observation each chunk was drawn from
        targets = targets[valid]
        idx = subsample(drawn_from.shape[0], self.batch)
        latent = torch.atanh(targets[idx].clamp(-self.target_clip, self.target_clip))
        return cfm_loss(actor.policy, actor.normalizer(drawn_from[idx]).detach(), latent)

    def end_iteration(self, obs: torch.Tensor, z: torch.Tensor) -> None:
        pass

    def state_dict(self) -> dict:
        # The observation the teacher labels next: after a resume it is the checkpoint's, not a reset's.
        return {
            "teacher_rng": self.labels.teacher.rng.bit_generator.state,
            "obs": _detached(self.labels.last_obs),
        }

    def load_state_dict(self, state: dict) -> None:
        self.labels.teacher.rng.bit_generator.state = state["teacher_rng"]
        self.labels.last_obs = state["obs"]

    def stage_info(self) -> dict:
        """What the route records: the teacher the stage was anchored to, and how strongly."""
        return {"teacher": self.labels.teacher.describe(), "lambda_teacher": self.weight}
