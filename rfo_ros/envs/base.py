"""The task contract: what a world observes, rewards, terminates on and resets to.

A task is pure maths over batched torch tensors (float64 state in, differentiable outputs), so the
same definitions serve the differentiable trainer, the plain-stepping baselines and evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np
import torch

from rfo_ros.envs.legged_obs import ObsLayout
from rfo_ros.sim.autograd import SimState

if TYPE_CHECKING:
    from rfo_ros.envs.depth import DepthCamera
    from rfo_ros.robot import Robot


@dataclass(frozen=True)
class TaskInfo:
    """Documented facts about a task, reported next to results.

    ``solved_return``: an undiscounted episode return documented as good (the tasks without a better
    test count it as solved; None: none documented); ``random_return``: what a uniform-random policy
    scores (measured, see the task's docstring).
    """

    episode_length: int
    solved_return: float | None
    random_return: float
    description: str


@dataclass(frozen=True)
class ActionMap:
    """``ctrl = clip(offset + scale * action, low, high)``, per actuator (float64 arrays of size nu)."""

    scale: np.ndarray
    offset: np.ndarray
    low: np.ndarray
    high: np.ndarray


class Task(ABC):
    """One world's observation, reward, termination and reset distribution, vectorised over envs.

    Subclasses set ``world`` (the MJCF name in ``sim/``) and ``info``, and implement the abstract
    methods. All tensors are batched along dim 0.
    """

    world: str
    info: TaskInfo
    #: The robot's gait prior (``rfo_ros.envs.gait.GaitPrior``) when its actions add to one, else None.
    gait: Any = None
    #: mj_steps per control step (same ctrl held); each one is differentiated.
    substeps: int = 1
    #: Observation fields this task's options left out (sensor noise configured for them is moot).
    omitted_obs_fields: tuple[str, ...] = ()
    #: Frames the policy observes (``VecEnv`` keeps the past ones): K > 1 is a task option of legged tasks.
    obs_history: int = 1
    #: The named fields of one observation frame, exported with the policy; None: an unnamed state.
    obs_layout: ObsLayout | None = None
    #: Privileged fields a critic observes when the training config names none (a robot file's).
    default_critic_obs: tuple[str, ...] = ()
    #: The robot file's bound model (legged tasks: randomisation and privileged fields need it), else None.
    robot: Robot | None = None
    #: (C, H, W) of an image flattened after the proprioception (image tasks), else None.
    image_shape: tuple[int, int, int] | None = None
    #: How the image is encoded for the exported model's contract (``runtime.metadata.ImageSpec``).
    image_encoding: str | None = None
    #: The ray-cast camera of a depth-image task: its field of view and range go into the exported model,
    #: so that a policy node can resample any real camera to it.
    depth_camera: DepthCamera | None = None
    #: Velocity-commanded tasks: the (vx, vy, yaw rate) every env gets instead of a drawn command, when set.
    fixed_command: tuple[float, float, float] | None = None
    #: Whether the task takes a velocity command (``fixed_command`` then holds one for evaluation).
    commanded: bool = False

    @property
    def joint_names(self) -> tuple[str, ...] | None:
        """The policy joints in action order (a robot file's), else None (each actuator's joint)."""
        return None

    def robot_spec(self) -> dict | None:
        """The robot contract the exported model carries (legged tasks), else None."""
        return None

    # What evaluation measures, where a task defines it (None: not measured). Batched (N,) tensors.
    def forward_speed(self, state: SimState) -> torch.Tensor | None:
        """Trunk forward speed (m/s) of locomotion tasks."""
        return None

    def tracking_error(self, state: SimState) -> torch.Tensor | None:
        """|command - velocity| (m/s) of velocity-commanded tasks."""
        return None

    def planar_pose(self, state: SimState) -> np.ndarray | None:
        """(N, 3) the trunk's world x, y (m) and heading (rad) of free-floating robots, else None: how far
        along its start heading a robot got, and how much it turned (``evaluate``)."""
        return None

    def command_speed(self, state: SimState) -> torch.Tensor | None:
        """The commanded speed (m/s) of velocity-commanded tasks."""
        return None

    def fall_proximity(self, state: SimState) -> torch.Tensor | None:
        """(N,) how close each env is to the failure that ends its episode, differentiable: 0 far from
        it, 1 at its bound; None for tasks that never fail."""
        return None

    def success(self, state: SimState) -> torch.Tensor | None:
        """Whether each env's goal is reached (bool), for tasks with a goal."""
        return None

    def crossed(self, state: SimState) -> torch.Tensor | None:
        """Whether each env's trunk is past the finish of its obstacle course (bool), for tasks with one."""
        return None

    def env_models(self, num_envs: int) -> list[mujoco.MjModel] | None:
        """One MjModel per env when the task's world differs between envs (an obstacle course drawn per
        episode, which ``resample`` writes into them), else None: every env steps ``model``. The same list
        for the same ``num_envs``: ``VecEnv`` steps it, and physics randomisation writes into it too."""
        return None

    def models_of_batch(self, n: int) -> list[mujoco.MjModel] | None:
        """The per-env models ``env_models`` made for ``n`` envs, if it did, else None: a batch of another
        size (``obs_dim``'s probe) is seen in ``model``'s world."""
        return None

    @classmethod
    def create(cls, **options: Any) -> Task:
        """The task on its world from ``sim/`` (tasks with options, such as a robot file, override)."""
        from rfo_ros.sim.worlds import load_model

        if options:
            raise ValueError(f"task {cls.__name__} takes no options (got {', '.join(sorted(options))})")
        return cls(load_model(cls.world))

    def options(self) -> dict[str, Any]:
        """The ``make_task`` options that build this task again (stored in checkpoints)."""
        return {}

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        amap = self.action_map()
        self._scale, self._offset = torch.from_numpy(amap.scale), torch.from_numpy(amap.offset)
        self._low, self._high = torch.from_numpy(amap.low), torch.from_numpy(amap.high)

    @property
    def action_dim(self) -> int:
        return self.model.nu

    @property
    def obs_dim(self) -> int:
        return int(
            self.observe(
                self.initial_state(1, np.random.default_rng(0)), torch.zeros(1, self.action_dim)
            ).shape[1]
        )

    @property
    def dt(self) -> float:
        """Control period in seconds."""
        return float(self.model.opt.timestep) * self.substeps

    def action_map(self) -> ActionMap:
        """Affine map from policy actions to actuator units; default: [-1, 1] onto the ctrlrange box.

        Override (not ``action_to_ctrl``) to change it: export bakes this same map into the ONNX graph.
        """
        lo, hi = self.model.actuator_ctrlrange[:, 0].copy(), self.model.actuator_ctrlrange[:, 1].copy()
        limited = self.model.actuator_ctrllimited.astype(bool)
        lo, hi = np.where(limited, lo, -1.0), np.where(limited, hi, 1.0)
        return ActionMap(scale=(hi - lo) / 2, offset=(hi + lo) / 2, low=lo, high=hi)

    def action_to_ctrl(self, action: torch.Tensor, prior: torch.Tensor | float = 0.0) -> torch.Tensor:
        """Actuator controls (N, nu) for policy actions in [-1, 1] (N, m), via ``action_map``; ``prior``
        (a gait's, (N, m)) is added before the clip."""
        ctrl = self._offset + prior + self._scale * action.to(torch.float64)
        return torch.maximum(torch.minimum(ctrl, self._high), self._low)

    @abstractmethod
    def initial_state(self, n: int, rng: np.random.Generator) -> SimState:
        """Sample ``n`` start states from the reset distribution (no grad)."""

    @abstractmethod
    def observe(self, state: SimState, last_action: torch.Tensor) -> torch.Tensor:
        """Observation (N, obs_dim), differentiable in ``state``."""

    @abstractmethod
    def reward(self, state: SimState, action: torch.Tensor, next_state: SimState) -> torch.Tensor:
        """Per-step reward (N,), differentiable in all arguments."""

    @abstractmethod
    def terminated(self, state: SimState) -> torch.Tensor:
        """Failure termination (N,) bool: no bootstrap past it."""

    def state_dict(self) -> dict[str, Any]:
        """Per-env task variables (every public tensor/array attribute), for exact resumption."""
        return {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and isinstance(v, torch.Tensor | np.ndarray)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    @staticmethod
    def resample_rows(
        current: torch.Tensor | None, mask: np.ndarray, draw: Callable[[int], np.ndarray]
    ) -> torch.Tensor:
        """A per-env variable (N, ...) with the rows in ``mask`` replaced by ``draw(k)`` (k, ...).

        Allocates (and draws every row) when ``current`` is missing or sized for another batch.
        """
        n = len(mask)
        new_batch = current is None or current.shape[0] != n
        if new_batch:
            mask = np.ones(n, dtype=bool)
        rows = torch.from_numpy(np.asarray(draw(int(mask.sum())), dtype=np.float64))
        out = torch.zeros(n, *rows.shape[1:], dtype=torch.float64) if new_batch else current
        out[torch.from_numpy(mask)] = rows
        return out

    #: How ``solved`` judges an evaluation, in words (reported in summaries).
    solved_rule: str = "return_mean >= info.solved_return"

    def solved(self, evaluation: dict[str, float]) -> bool:
        """Whether an ``rfo_ros.evaluate.evaluate`` result counts as solving the task (here: its return)."""
        threshold = self.info.solved_return
        return threshold is not None and evaluation["return_mean"] >= threshold

    def advance(self) -> None:  # noqa: B027 - optional hook
        """One control step has passed for every env (called after its reward, before its observation):
        tasks with a clock (a gait) move it on; the others keep this no-op."""

    def episode_end(  # noqa: B027 - optional hook
        self, mask: np.ndarray, state: SimState, rng: np.random.Generator
    ) -> None:
        """The episodes of the envs in ``mask`` (N,) bool ended in ``state`` (before their reset and
        ``resample``): a task with a curriculum judges them here; the others keep this no-op."""

    def train_metrics(self) -> dict[str, float]:
        """What a training run logs about the task's own state each iteration (a curriculum's level)."""
        return {}

    def resample(self, mask: np.ndarray, rng: np.random.Generator) -> None:  # noqa: B027 - optional hook
        """Re-draw per-env task variables (goals, commands) for the envs in ``mask`` (N,) bool.

        Tasks without such variables keep this no-op; tasks with them allocate for ``len(mask)`` envs.
        """
