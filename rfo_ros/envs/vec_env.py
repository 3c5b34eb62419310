"""A batch of one task's envs over the differentiable simulator, with auto-reset.

``step`` differentiates through the simulator whenever the action (or the carried state) requires
grad; call ``detach()`` at window boundaries to cut the graph. Resets and diverged envs always cut it.
``randomization`` perturbs each env's world (``rfo_ros.envs.perturb``); without it the world is nominal.
``shaping`` adds reward terms of the previous action (``rfo_ros.envs.shaping``) to the task's reward.
A task with ``obs_history`` K > 1 observes its last K frames (``legged_obs.FrameHistory``): the env keeps
them, since a task's ``observe`` sees only the present state. ``critic_obs`` names privileged fields
(``rfo_ros.envs.privileged``) that the critic observes after the actor's observation; without them the
critic's observation is the actor's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rfo_ros.envs.base import Task
from rfo_ros.envs.legged_obs import FrameHistory
from rfo_ros.envs.perturb import make_perturbations
from rfo_ros.envs.privileged import CriticObservation
from rfo_ros.envs.shaping import StepShaping
from rfo_ros.envs.twin_check import check_twin
from rfo_ros.randomization import Randomization
from rfo_ros.sim.autograd import SimState, mj_step_autograd
from rfo_ros.sim.batched import BatchedSim, FDConfig
from rfo_ros.sim.gradient_model import GradientModel
from rfo_ros.sim.tangent import TangentMap


@dataclass
class StepResult:
    """What one control step returns. Shapes: obs (N, obs_dim) float32, the rest (N,).

    ``obs`` is the observation to act on next (after auto-reset); ``final_obs`` is the observation of
    the state the step reached, before any reset, for bootstrapping at truncation. ``critic_obs`` and
    ``final_critic_obs`` are the critic's views of the same two states (the very tensors ``obs`` and
    ``final_obs`` when the env has no privileged fields).
    ``truncated`` covers time limits and diverged envs; ``terminated`` is task failure only.
    """

    obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor
    diverged: torch.Tensor
    critic_obs: torch.Tensor
    final_critic_obs: torch.Tensor


@dataclass
class EnvStats:
    """Running counters; ``completed_returns`` holds finished episodes' undiscounted returns."""

    env_steps: int = 0
    divergences: int = 0
    completed_returns: list[float] = field(default_factory=list)
    completed_lengths: list[int] = field(default_factory=list)

    def pop_completed(self) -> tuple[list[float], list[int]]:
        returns, lengths = self.completed_returns, self.completed_lengths
        self.completed_returns, self.completed_lengths = [], []
        return returns, lengths


class VecEnv:
    """``num_envs`` envs of ``task`` stepped in lock-step; float64 physics, observations and rewards in
    torch's default dtype (float32)."""

    def __init__(
        self,
        task: Task,
        num_envs: int,
        seed: int = 0,
        threads: int | None = None,
        fd: FDConfig | None = None,
        randomization: Randomization | None = None,
        shaping: Sequence[StepShaping] = (),
        gradient: GradientModel | None = None,
        critic_obs: Sequence[str] = (),
    ) -> None:
        self.task = task
        self.shaping = tuple(shaping)
        self.num_envs = num_envs
        self.perturb = make_perturbations(task, num_envs, randomization, seed)
        # Per-env models: randomised physics' copies (which hold a task's per-env world too), or the task's.
        models = self.perturb.models if self.perturb.models is not None else task.env_models(num_envs)
        self.sim = BatchedSim(
            task.model, num_envs, threads=threads, fd=fd or FDConfig(), models=models,
            gradient=gradient, substeps=task.substeps,
        )
        if self.sim.gradient is not None and self.sim.gradient.twin:
            check_twin(task, self.sim.gradient, seed)
        self.tmap = TangentMap(task.model)
        self.rng = np.random.default_rng(seed)
        self.stats = EnvStats()
        self.action_dim = task.action_dim
        self.state: SimState = task.initial_state(num_envs, self.rng)
        self.last_action = torch.zeros(num_envs, self.action_dim)
        self.episode_step = np.zeros(num_envs, dtype=np.int64)
        self.episode_return = np.zeros(num_envs)
        self.task.resample(np.ones(num_envs, dtype=bool), self.rng)
        self.sim.models_changed(np.ones(num_envs, dtype=bool))  # a task's per-env worlds are drawn now
        self.history = FrameHistory(task.obs_history)
        self.obs_dim = int(self.observe().shape[1])
        self.critic = CriticObservation(self, critic_obs) if critic_obs else None
        #: The critic's observation size: the actor's plus the privileged fields.
        self.critic_obs_dim = self.obs_dim + (self.critic.size if self.critic else 0)

    @property
    def dt(self) -> float:
        return self.task.dt

    def observe_frame(self) -> torch.Tensor:
        """What the sensors report now (N, task.obs_dim): the task's observation, perturbed."""
        # torch's default dtype (float32 unless a float64 gradient check asks for more).
        obs = self.perturb.observe(self.task.observe(self.state, self.last_action))
        return obs.to(torch.get_default_dtype())

    def observe(self) -> torch.Tensor:
        """The observation of the current state (N, obs_dim), after the stored past frames (none stored)."""
        return self.history.stack(self.observe_frame())

    def critic_view(self, obs: torch.Tensor) -> torch.Tensor:
        """The critic's observation of the current state, given the actor's ``obs`` of it."""
        return obs if self.critic is None else self.critic(obs)

    def reset(self) -> torch.Tensor:
        """Reset every env; returns the first observation (N, obs_dim)."""
        self._reset_where(np.ones(self.num_envs, dtype=bool))
        return self.history.restart(None, self.observe_frame())

    def detach(self) -> None:
        """Cut the autograd graph of the carried state (window boundary)."""
        self.state = self.state.detach()
        self.last_action = self.last_action.detach()
        self.history.detach()
        self.perturb.detach()

    def _reset_where(self, mask: np.ndarray) -> None:
        if not mask.any():
            return
        fresh = self.task.initial_state(self.num_envs, self.rng)
        mask_t = torch.from_numpy(mask)
        self.state = self.state.where(mask_t, fresh)
        self.last_action = torch.where(mask_t[:, None], torch.zeros_like(self.last_action), self.last_action)
        self.task.resample(mask, self.rng)
        self.perturb.reset(mask)
        self.sim.models_changed(mask)
        self.episode_step[mask] = 0
        self.episode_return[mask] = 0.0

    def check_action(self, action: torch.Tensor) -> None:
        if action.shape != (self.num_envs, self.action_dim):
            raise ValueError(
                f"action must have shape {(self.num_envs, self.action_dim)}, got {tuple(action.shape)}"
            )
        if not torch.isfinite(action).all():
            raise ValueError("action contains NaN or inf")

    def step(self, action: torch.Tensor) -> StepResult:
        """Apply ``action`` in [-1, 1]^m for one control step (``task.substeps`` physics steps)."""
        self.check_action(action)
        prev = self.perturb.push(self.state)
        ctrl = self.perturb.actuate(self.task.action_to_ctrl(action))
        state, diverged = mj_step_autograd(self.sim, self.tmap, prev, ctrl)
        # Diverged rows carry garbage: swap in the (finite) previous state before any maths touches them.
        state = state.where(diverged, prev.detach())
        reward = self.task.reward(prev, action, state)
        for term in self.shaping:
            reward = reward + term(action, self.last_action)
        reward = torch.where(diverged, torch.zeros_like(reward), reward)
        terminated = self.task.terminated(state) & ~diverged
        self.state, self.last_action = state, action
        self.task.advance()
        final_obs = self.history.push(self.observe_frame())
        final_critic_obs = self.critic_view(final_obs)

        self.episode_step += 1
        self.episode_return += reward.detach().numpy()
        div_np = diverged.numpy()
        truncated_np = (self.episode_step >= self.task.info.episode_length) | div_np
        done = terminated.numpy() | truncated_np
        self.stats.env_steps += self.num_envs
        self.stats.divergences += int(div_np.sum())
        for i in np.flatnonzero(done & ~div_np):
            self.stats.completed_returns.append(float(self.episode_return[i]))
            self.stats.completed_lengths.append(int(self.episode_step[i]))
        if done.any():
            self.task.episode_end(done, self.state, self.rng)
        self._reset_where(done)
        # Reset envs start a fresh history; the others act on the frame just stored.
        if done.any():
            obs = self.history.restart(torch.from_numpy(done), self.observe_frame())
            critic_obs = self.critic_view(obs)
        else:
            obs, critic_obs = final_obs, final_critic_obs
        return StepResult(
            obs=obs,
            reward=reward.to(torch.get_default_dtype()),
            terminated=terminated,
            truncated=torch.from_numpy(truncated_np),
            final_obs=final_obs,
            diverged=diverged,
            critic_obs=critic_obs,
            final_critic_obs=final_critic_obs,
        )

    def state_dict(self) -> dict:
        """Everything that determines future steps: physics, episode counters, RNG, task variables."""
        return {
            "state": self.state.detach(),
            "last_action": self.last_action.detach(),
            "episode_step": self.episode_step.copy(),
            "episode_return": self.episode_return.copy(),
            "rng": self.rng.bit_generator.state,
            "task": self.task.state_dict(),
            "warmstart": self.sim.warmstart(),
            "stats": (self.stats.env_steps, self.stats.divergences),
            "perturb": self.perturb.state_dict(),
            "history": [frame.detach() for frame in self.history.stored],
        }

    def load_state_dict(self, state: dict) -> None:
        self.state, self.last_action = state["state"], state["last_action"]
        self.episode_step, self.episode_return = state["episode_step"].copy(), state["episode_return"].copy()
        self.rng.bit_generator.state = state["rng"]
        self.task.load_state_dict(state["task"])
        self.sim.set_warmstart(state["warmstart"])
        self.stats.env_steps, self.stats.divergences = state["stats"]
        self.perturb.load_state_dict(state.get("perturb", {}))  # absent in nominal-world checkpoints
        self.sim.models_changed(np.ones(self.num_envs, dtype=bool))
        self.history.stored = list(state.get("history", []))  # absent before histories: the next step fills

    def close(self) -> None:
        self.sim.close()
