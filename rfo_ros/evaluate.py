"""Policy evaluation: N full episodes in parallel, zero-noise or stochastic."""

from __future__ import annotations

import numpy as np
import torch

from rfo_ros.envs import make_task
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor


@torch.no_grad()
def evaluate(actor: Actor, task_name: str, episodes: int, seed: int, deterministic: bool) -> dict[str, float]:
    """Run ``episodes`` episodes (one per env) to their first end; return mean/std return and length.

    Tasks that define ``forward_speed(state) -> (N,)`` also report the mean forward speed (m/s) over
    the steps each episode was alive, and ``falls`` (episodes that ended in failure).
    """
    task = make_task(task_name)
    env = VecEnv(task, episodes, seed=seed, threads=None)
    obs = env.reset()
    chunk = actor.chunk
    alive = np.ones(episodes, dtype=bool)
    returns, lengths, falls = np.zeros(episodes), np.zeros(episodes), np.zeros(episodes, dtype=bool)
    speed_sum = np.zeros(episodes)
    measure_speed = hasattr(task, "forward_speed")
    for t in range(task.info.episode_length):
        if t % chunk == 0:
            noise = torch.zeros(episodes, chunk, actor.action_dim) if deterministic else None
            actions, _ = actor(obs, noise)
        if measure_speed:
            speed_sum += alive * task.forward_speed(env.state).numpy()
        res = env.step(actions[:, t % chunk])
        returns += alive * res.reward.numpy()
        lengths += alive
        falls |= alive & res.terminated.numpy()
        alive &= ~(res.terminated | res.truncated).numpy()
        obs = res.obs
        if not alive.any():
            break
    env.close()
    out = {
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(lengths.mean()),
        "falls": int(falls.sum()),
    }
    if measure_speed:
        out["forward_speed_mean"] = float((speed_sum / np.maximum(lengths, 1)).mean())
    return out
