"""A teacher for distillation: an exported policy that may see what the student cannot.

The teacher is any ``rfo_ros`` ONNX model of the same robot (same joints, same action map). Its
observation is rebuilt field by field from what the env holds: a field the student also observes comes
from the student's newest frame (with the same sensor noise and delay a robot would have); a field the
student lacks (``base_lin_vel`` for a blind student, ``height_scan`` for one that sees depth) comes from
the simulator's truth, the privileged readers of ``rfo_ros.envs.privileged``. So a teacher trained with
odometry (or the course's heights) can label the states a blind (or depth-seeing) student visits, and
nothing privileged ever enters the student's observation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rfo_ros.envs.course_walk import HEIGHT_SCAN
from rfo_ros.envs.legged_obs import BASE_LIN_VEL, ObsLayout
from rfo_ros.envs.privileged import FIELDS
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.runtime.metadata import ModelError
from rfo_ros.runtime.ort_model import metadata_from_session, open_session, session_options

#: The fields a teacher may observe that a student need not: the simulator's truth, in the units of the
#: observation field the teacher was trained with (``privileged.FIELDS`` reads them so).
SIMULATOR_TRUTH = {
    "base_lin_vel": BASE_LIN_VEL,
    "height_scan": HEIGHT_SCAN,
}


class OnnxTeacher:
    """``teacher.act(obs)``: the teacher's actions in [-1, 1] (N, m) for the student's observation ``obs``
    of ``env``'s current state (only the newest frame of a stacked history is read).

    Raises ``ModelError`` when the model is not a policy of this env's robot, when its action map differs
    (its actions would mean other joint targets), or when it observes a field the env cannot supply.
    """

    def __init__(self, path: str | Path, env: VecEnv, seed: int = 0) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, options=session_options(threads=1))
        self.meta = meta = metadata_from_session(self.session, self.path)
        task = env.task
        student: ObsLayout | None = task.obs_layout
        if student is None or task.robot is None:
            raise ModelError(f"distill.teacher {path}: task {type(task).__name__} has no legged observation")
        joints = tuple(task.robot.description.joints)
        if meta.joint_names != joints:
            raise ModelError(
                f"distill.teacher {path}: its joints {list(meta.joint_names)} are not the student's "
                f"{list(joints)}"
            )
        offset, scale = task.robot.standing_pose, np.asarray(task.robot.description.action_scale)
        if not (np.allclose(meta.action_offset, offset) and np.allclose(meta.action_scale, scale)):
            raise ModelError(f"distill.teacher {path}: its action map is not the student robot file's")
        if meta.image is not None or meta.obs_history != 1:
            raise ModelError(f"distill.teacher {path}: a teacher takes one frame and no image")
        # The student's newest frame: the last of its history, before any image pixels.
        newest = (task.obs_history - 1) * student.size
        self._frame = slice(newest, newest + student.size)
        self._sources = [self._source(field, student, env) for field in meta.obs_layout.fields]
        self.privileged_fields = [f.name for f in meta.obs_layout.fields if f.name not in student.names]
        self.rng = np.random.default_rng(seed)
        self._noise_shape = (meta.chunk, meta.action_dim)

    def _source(self, field, student: ObsLayout, env: VecEnv):
        """A function of the student's newest frame (N, D) returning this field's (N, size) values."""
        if field.name in student.names:
            mine = student.fields[student.names.index(field.name)]
            if (mine.scale, mine.offset) != (field.scale, field.offset):
                raise ModelError(f"distill.teacher {self.path}: field {field.name!r} is scaled differently")
            cut = student.slice(field.name)
            return lambda frame: frame[:, cut]
        truth = SIMULATOR_TRUTH.get(field.name)
        if truth is None:
            raise ModelError(
                f"distill.teacher {self.path}: observes {field.name!r}, which the student's env cannot supply"
            )
        if (field.size, field.scale, field.offset) != (truth.size, truth.scale, truth.offset):
            raise ModelError(
                f"distill.teacher {self.path}: {field.name!r} is sized or scaled other than the simulator's "
                f"(size {truth.size}, scale {truth.scale[0]:g}, offset {truth.offset[0]:g})"
            )
        try:
            read = FIELDS[field.name](env)
        except ValueError as exc:
            raise ModelError(f"distill.teacher {self.path}: {exc}") from None
        return lambda frame: read().to(frame.dtype)

    def observation(self, obs: torch.Tensor) -> np.ndarray:
        """The teacher's observation (N, teacher obs_dim) float32."""
        frame = obs[:, self._frame]
        # Detached: the teacher labels states, no gradient flows through it (its truth fields may carry one).
        fields = torch.cat([source(frame) for source in self._sources], dim=1).detach()
        return fields.numpy().astype(np.float32)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The teacher's first action of its chunk, in the policy's [-1, 1] space (N, m)."""
        feeds = {"observation": self.observation(obs)}
        if not self.meta.zero_noise:
            feeds["noise"] = self.rng.standard_normal((obs.shape[0], *self._noise_shape), dtype=np.float32)
        ctrl = self.session.run(None, feeds)[0][:, 0].astype(np.float64)
        action = self.meta.policy_action(ctrl, self.meta.step_prior(feeds["observation"]))
        return torch.from_numpy(action).to(obs.dtype)

    def describe(self) -> dict:
        """What the route metadata records about the teacher."""
        return {
            "file": self.path.name,
            "algo": self.meta.algo,
            "policy": self.meta.policy_shape,
            "privileged": self.privileged_fields,
            "env_steps": (self.meta.checkpoint or {}).get("env_steps"),
            "route": self.meta.route,
        }
