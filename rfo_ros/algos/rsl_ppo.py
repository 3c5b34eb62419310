"""rsl_rl's PPO, the reference of legged_gym, Isaac Lab and mjlab, on our VecEnv: ``algo: rsl_ppo``.

``RslPPO.iterate`` is one iteration of rsl_rl's ``OnPolicyRunner.learn`` (act, step, process_env_step,
compute_returns, update) around rsl_rl's own ``PPO``, networks and storage; rsl_rl's runner is not used
because it also owns logging and checkpoint files, which our ``Runner`` keeps for every algorithm.
Needs the optional rsl_rl (requirements/bench.txt): ``rfo_ros.algos.make_rsl_ppo`` imports this module
only when the algorithm is chosen, after checking that rsl_rl is there.
"""

from __future__ import annotations

import time

import torch
from rsl_rl.algorithms import PPO
from rsl_rl.env import VecEnv as RslVecEnvBase
from rsl_rl.models import MLPModel
from rsl_rl.storage import RolloutStorage
from rsl_rl.utils import check_nan
from tensordict import TensorDict

from rfo_ros import distributed
from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.threads import torch_threads, update_thread_count
from rfo_ros.config import TrainConfig
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor
from rfo_ros.nets.rsl import OBS_GROUPS, PRIVILEGED_OBS_GROUPS, as_obs_dict


class RslVecEnv(RslVecEnvBase):
    """Our VecEnv in rsl_rl's interface: observations normalised by the ``Actor``'s normaliser (as the
    trained policy sees them at evaluation and export), in the TensorDict group ``policy``; with
    privileged fields the critic's observation, normalised by the critic's own, in the group ``critic``."""

    def __init__(self, env: VecEnv, actor: Actor, critic: CriticLearner) -> None:
        self.env, self.normalizer, self.critic = env, actor.normalizer, critic
        self.num_envs, self.num_actions = env.num_envs, env.action_dim
        self.max_episode_length = env.task.info.episode_length
        self.device = actor.device
        self.cfg: dict = {}
        self.obs = env.reset()  # raw (N, obs_dim), on the networks' device
        self.critic_obs = env.critic_view(self.obs)

    @property
    def episode_length_buf(self) -> torch.Tensor:
        """Steps into each env's episode (N,); read-only (rsl_rl writes it only for random start lengths)."""
        return torch.from_numpy(self.env.episode_step)

    def get_observations(self) -> TensorDict:
        """The current observation, normalised, as ``{"policy": (N, obs_dim)}`` (and ``"critic"``)."""
        privileged = self.critic.normalizer(self.critic_obs) if self.critic.own_normalizer else None
        return as_obs_dict(self.normalizer(self.obs), privileged)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply rsl_rl's unbounded Gaussian actions (N, m), clipped to our [-1, 1] action box.

        Returns the next observation, reward (N,), done (N,) and ``time_outs`` (N,): episodes cut by the
        time limit or a divergence, not by failure, which rsl_rl bootstraps with γ·V(s_t).
        """
        self.normalizer.update(self.obs)  # the observation just acted on, as our PPO folds it in
        self.critic.update_normalizer(self.critic_obs)
        res = self.env.step(actions.clamp(-1.0, 1.0))
        self.obs, self.critic_obs = res.obs, res.critic_obs
        extras = {"time_outs": res.truncated & ~res.terminated}
        return self.get_observations(), res.reward, res.terminated | res.truncated, extras


class NoSkips:
    """rsl_rl clips gradients but never skips a step; the Runner reports ``optim.skipped`` for all."""

    skipped = 0


class RslPPO:
    """rsl_rl's ``PPO`` with its ``MLPModel`` actor (the ``Actor``'s ``rsl_gaussian`` policy) and critic."""

    def __init__(self, cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner) -> None:
        if distributed.world_size() > 1:
            raise ValueError(
                "algo rsl_ppo runs in one process: rsl_rl's multi-GPU training is its own, not torchrun's"
            )
        r = cfg.rsl
        self.actor, self.steps_per_env = actor, r.num_steps_per_env
        self.env = RslVecEnv(env, actor, critic)
        self.update_threads = update_thread_count(cfg.run.update_threads, env)
        self.critic_learner = critic  # its normaliser only: rsl_rl trains its own value network
        obs, device = self.env.get_observations(), str(actor.device)
        groups = PRIVILEGED_OBS_GROUPS if critic.own_normalizer else OBS_GROUPS
        value_net = MLPModel(
            obs, groups, "critic", 1, hidden_dims=list(r.critic_hidden_dims), activation=r.activation
        )
        storage = RolloutStorage("rl", env.num_envs, r.num_steps_per_env, obs, [env.action_dim], device)
        self.ppo = PPO(
            actor.policy.model,  # the very module the Actor evaluates and checkpoints
            value_net,
            storage,
            num_learning_epochs=r.num_learning_epochs,
            num_mini_batches=r.num_mini_batches,
            clip_param=r.clip_param,
            gamma=cfg.gamma,
            lam=r.lam,
            value_loss_coef=r.value_loss_coef,
            entropy_coef=r.entropy_coef,
            learning_rate=r.learning_rate,
            max_grad_norm=r.max_grad_norm,
            use_clipped_value_loss=r.use_clipped_value_loss,
            schedule=r.schedule,
            desired_kl=r.desired_kl,
            device=device,
        )
        self.optim = NoSkips()

    def iterate(self) -> dict[str, float]:
        """Collect ``num_steps_per_env`` x N transitions, then rsl_rl's PPO update."""
        ppo, env = self.ppo, self.env
        ppo.train_mode()
        t0 = time.perf_counter()
        # no_grad, not rsl_rl's inference_mode: the normaliser's buffers must stay ordinary tensors
        # (inference tensors refuse in-place loads when a run resumes).
        with torch.no_grad():
            obs, reward_sum = env.get_observations(), 0.0
            for _ in range(self.steps_per_env):
                obs, rewards, dones, extras = env.step(ppo.act(obs))
                check_nan(obs, rewards, dones)
                ppo.process_env_step(obs, rewards, dones, extras)
                reward_sum += float(rewards.mean())
            ppo.compute_returns(obs)
        t_collect = time.perf_counter() - t0
        with torch_threads(self.update_threads):
            losses = ppo.update()
        return {
            "Loss/policy": losses["surrogate"],
            "Loss/value": losses["value"],
            "Policy/entropy": losses["entropy"],
            "Policy/learning_rate": ppo.learning_rate,
            "Policy/action_std": float(ppo.actor.output_std.detach().mean()),
            "Train/reward_mean": reward_sum / self.steps_per_env,
            "Perf/rollout_s": t_collect,
            "Perf/update_s": time.perf_counter() - t0 - t_collect,
        }

    def state_dict(self) -> dict:
        """rsl_rl's own checkpoint dict (actor, critic, optimiser with its adapted lr), the current
        observations and the critic's own normaliser."""
        state = {"ppo": self.ppo.save(), "obs": self.env.obs, "critic_obs": self.env.critic_obs}
        if self.critic_learner.own_normalizer:
            state["critic_normalizer"] = self.critic_learner.normalizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` saved (rsl_rl reads the learning rate back from the optimiser)."""
        self.ppo.load(state["ppo"], None, strict=True)
        device = self.env.obs.device
        self.env.obs = state["obs"].to(device)
        self.env.critic_obs = state.get("critic_obs", state["obs"]).to(device)  # absent: no privileged
        if self.critic_learner.own_normalizer:
            self.critic_learner.normalizer.load_state_dict(state["critic_normalizer"])
