"""Clipped-surrogate on-policy learning on plain (non-differentiable) stepping: PPO and FPO.

The two share storage, GAE and the clipped update; they differ only in the likelihood ratio
(``RatioModel``): PPO uses log-probabilities of a tanh-Gaussian, FPO the flow-matching loss change.
A flow with action chunks (FPO with ``policy.chunk`` C > 1) makes one decision per chunk: the C actions
run open loop and the decision's reward is their discounted sum (``OnPolicyPG._execute``); a rollout
holds ``onpolicy.rollout_steps`` decisions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import torch

from rfo_ros.algos.critic import CriticLearner
from rfo_ros.algos.optim import GuardedOptimizer
from rfo_ros.algos.returns import gae
from rfo_ros.algos.threads import torch_threads, update_thread_count
from rfo_ros.config import TrainConfig
from rfo_ros.distributed import batch_mean_std
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


class RatioModel(Protocol):
    """How an algorithm scores its own samples: stored at collection, compared at update."""

    clip: float

    def record(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample quantities of the behaviour policy (no grad), each with leading dim B."""
        ...

    def log_ratio(self, actor: Actor, obs_norm: torch.Tensor, z: torch.Tensor, old: dict) -> torch.Tensor:
        """log(π_θ / π_old) estimate per sample (B,), differentiable in θ."""
        ...

    def entropy(self, actor: Actor) -> torch.Tensor: ...


@dataclass
class Decision:
    """One sampled chunk's outcome: its reward (N,), whether its episode terminated or ended (N,), the
    critic's observation of where it ended (N, D), and what to act on next."""

    reward: torch.Tensor
    terminated: torch.Tensor
    done: torch.Tensor
    final_critic_obs: torch.Tensor
    obs: torch.Tensor
    critic_obs: torch.Tensor


def clipped_surrogate(log_ratio: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's pessimistic clipped objective, negated into a loss (scalar)."""
    ratio = log_ratio.exp()
    return -torch.min(ratio * adv, ratio.clamp(1.0 - clip, 1.0 + clip) * adv).mean()


class OnPolicyPG:
    """Collect ``rollout_steps`` x N transitions without grad, then clipped-surrogate epochs."""

    def __init__(self, cfg: TrainConfig, env: VecEnv, actor: Actor, critic: CriticLearner, ratio: RatioModel):
        self.cfg, self.env, self.actor, self.critic, self.ratio = cfg, env, actor, critic, ratio
        params = list(actor.policy.parameters()) + list(critic.critic.parameters())
        self.optim = GuardedOptimizer(params, lr=cfg.onpolicy.lr, clip=cfg.onpolicy.grad_clip)
        self.update_threads = update_thread_count(cfg.run.update_threads, env)
        self.obs = env.reset()
        self.critic_obs = env.critic_view(self.obs)

    @torch.no_grad()
    def _collect(self) -> dict[str, torch.Tensor]:
        actor, critic, critic_norm = self.actor, self.critic.critic, self.critic.normalizer
        keys = ("obs_norm", "critic_obs_norm", "z", "rew", "term", "done", "value", "v_next", "old")
        rec: dict[str, list] = {k: [] for k in keys}
        obs, critic_obs = self.obs, self.critic_obs
        for _ in range(self.cfg.onpolicy.rollout_steps):
            obs_norm = actor.normalizer(obs)
            critic_obs_norm = critic_norm(critic_obs)
            actions, z = actor.policy(obs_norm)
            step = self._execute(actions)
            rec["obs_norm"].append(obs_norm)
            rec["critic_obs_norm"].append(critic_obs_norm)
            rec["z"].append(z)
            rec["old"].append(self.ratio.record(actor, obs_norm, z))
            rec["rew"].append(step.reward)
            rec["term"].append(step.terminated)
            rec["done"].append(step.done)
            rec["value"].append(critic(critic_obs_norm))
            rec["v_next"].append(critic(critic_norm(step.final_critic_obs)))
            actor.normalizer.update(obs)
            self.critic.update_normalizer(critic_obs)
            obs, critic_obs = step.obs, step.critic_obs
        self.obs, self.critic_obs = obs, critic_obs
        data = {k: torch.stack(v) for k, v in rec.items() if k != "old"}
        data["old"] = {k: torch.stack([o[k] for o in rec["old"]]) for k in rec["old"][0]}
        return data

    def _execute(self, actions: torch.Tensor) -> Decision:
        """Execute a sample's C actions (N, C, m) open loop, as the robot will: one decision.

        Its reward is the discounted sum over the steps of the episode it started in; an episode that
        ends inside the chunk ends the decision there (the chunk's remaining actions play into the next
        episode's first steps, which the next decision observes). With C = 1 this is one plain step.
        """
        gamma = self.cfg.gamma
        reward = torch.zeros(actions.shape[0], device=actions.device)
        terminated = torch.zeros(actions.shape[0], dtype=torch.bool, device=actions.device)
        done, final = terminated.clone(), None
        for j in range(actions.shape[1]):
            res = self.env.step(actions[:, j])
            live = ~done
            reward = reward + torch.where(live, gamma**j * res.reward, torch.zeros_like(res.reward))
            terminated = terminated | (live & res.terminated)
            # The value to bootstrap from: the last state the decision's episode reached.
            final = (
                res.final_critic_obs
                if final is None
                else torch.where(live[:, None], res.final_critic_obs, final)
            )
            done = done | (live & (res.terminated | res.truncated))
        return Decision(reward, terminated, done, final, res.obs, res.critic_obs)

    def iterate(self) -> dict[str, float]:
        c = self.cfg.onpolicy
        t0 = time.perf_counter()
        data = self._collect()
        t_collect = time.perf_counter() - t0
        # A decision spans C control steps: its bootstrap is discounted by γ^C (λ stays per decision).
        adv = gae(
            data["rew"],
            data["value"],
            data["v_next"],
            data["term"],
            data["done"],
            self.cfg.gamma**self.actor.chunk,
            c.gae_lambda,
        )
        returns = adv + data["value"]
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        obs_norm, z, adv, returns = flat(data["obs_norm"]), flat(data["z"]), flat(adv), flat(returns)
        critic_obs_norm = flat(data["critic_obs_norm"])
        old = {k: flat(v) for k, v in data["old"].items()}
        with torch_threads(self.update_threads):
            metrics = self._update(obs_norm, critic_obs_norm, z, adv, returns, old)
        var = returns.var()
        metrics["Policy/explained_variance"] = float(1 - (returns - flat(data["value"])).var() / (var + 1e-8))
        metrics["Train/reward_mean"] = float(data["rew"].mean())
        metrics["Perf/rollout_s"] = t_collect
        metrics["Perf/update_s"] = time.perf_counter() - t0 - t_collect
        return metrics

    def _update(
        self,
        obs_norm: torch.Tensor,
        critic_obs_norm: torch.Tensor,
        z: torch.Tensor,
        adv: torch.Tensor,
        returns: torch.Tensor,
        old: dict[str, torch.Tensor],
    ) -> dict[str, float]:
        """The epochs of clipped-surrogate minibatch steps on one rollout's flattened samples."""
        c = self.cfg.onpolicy
        n = obs_norm.shape[0]
        size = max(1, n // c.minibatches)
        stats: dict[str, list[float]] = {
            "Loss/policy": [],
            "Loss/value": [],
            "Policy/approx_kl": [],
            "Policy/clipfrac": [],
            "Policy/grad_norm_pre_clip": [],
        }
        for _ in range(c.epochs):
            perm = torch.randperm(n)
            for start in range(0, n - size + 1, size):
                idx = perm[start : start + size]
                mb_adv = adv[idx]
                mean, std = batch_mean_std(mb_adv)  # the whole minibatch's, over every rank
                mb_adv = (mb_adv - mean) / (std + 1e-8)
                log_ratio = self.ratio.log_ratio(
                    self.actor, obs_norm[idx], z[idx], {k: v[idx] for k, v in old.items()}
                )
                policy_loss = clipped_surrogate(log_ratio, mb_adv, self.ratio.clip)
                value_loss = ((self.critic.critic(critic_obs_norm[idx]) - returns[idx]) ** 2).mean()
                loss = (
                    policy_loss + c.value_coef * value_loss - c.entropy_coef * self.ratio.entropy(self.actor)
                )
                grad_norm, _ = self.optim.step(loss)
                with torch.no_grad():
                    stats["Policy/approx_kl"].append(float(((log_ratio.exp() - 1) - log_ratio).mean()))
                    stats["Policy/clipfrac"].append(
                        float(((log_ratio.exp() - 1).abs() > self.ratio.clip).float().mean())
                    )
                stats["Loss/policy"].append(policy_loss.item())
                stats["Loss/value"].append(value_loss.item())
                stats["Policy/grad_norm_pre_clip"].append(grad_norm)
        return {k: sum(v) / len(v) for k, v in stats.items()}

    def state_dict(self) -> dict:
        return {
            "optim": self.optim.state_dict(),
            "critic": self.critic.state_dict(),
            "obs": self.obs,
            "critic_obs": self.critic_obs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.optim.load_state_dict(state["optim"])
        self.critic.load_state_dict(state["critic"])
        self.obs = state["obs"].to(self.obs.device)
        # Checkpoints from before privileged critics: the critic's observation was the actor's.
        self.critic_obs = state.get("critic_obs", state["obs"]).to(self.obs.device)
