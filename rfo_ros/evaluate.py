"""Policy evaluation: N full episodes in parallel, zero-noise or stochastic.

``python -m rfo_ros.evaluate CHECKPOINT [--episodes N] [--command VX VY WZ] [--perturb NAME] [--task T]``
prints both modes as JSON; ``--command`` holds a velocity-commanded task (the quadrupeds) at one command
instead of random ones, ``--perturb`` evaluates in a named perturbed world (``rfo_ros.randomization``),
``--task`` on another task with the same robot and observation (a blind policy on the obstacle course).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rfo_ros.envs import make_task
from rfo_ros.envs.device_env import act_on
from rfo_ros.envs.vec_env import VecEnv
from rfo_ros.nets.actor import Actor
from rfo_ros.randomization import PERTURBATION_SETS, Randomization


@torch.no_grad()
def evaluate(
    actor: Actor,
    task_name: str,
    episodes: int,
    seed: int,
    deterministic: bool,
    command: tuple[float, float, float] | None = None,
    task_options: dict | None = None,
    randomization: Randomization | None = None,
) -> dict[str, float]:
    """Run ``episodes`` episodes (one per env) to their first end; return mean/std return and length.

    Tasks whose ``forward_speed(state)`` gives (N,) speeds also report the mean forward speed (m/s) over
    the steps each episode was alive (legged walking tasks: the trunk's body-frame forward speed, what the
    command asks for), and ``falls`` (episodes that ended in failure); velocity-commanded
    tasks the mean tracking error |command_xy - v_xy| (m/s) and the mean commanded speed |command_xy|;
    free-floating robots (``planar_pose``) ``progress_speed_mean``, the distance made good along each
    episode's start heading per second alive, and ``heading_change_deg_mean``, the mean |turn| (deg) from
    start to end (a robot that walks in a circle at the commanded body speed has a high ``forward_speed``
    and a low ``progress_speed``);
    tasks whose ``success(state)`` gives (N,) bools
    (push) the ``success_rate``: the fraction of episodes that were a success at their last control step
    (the state that step starts from); tasks whose ``crossed(state)`` gives (N,) bools (an obstacle course)
    ``crossings``, the episodes whose trunk passed the course's finish and that never fell, and
    ``crossing_rate``, their fraction. Every task reports ``action_change_mean``: the RMS over action
    entries of |a_t - a_(t-1)| (policy units, [-1, 1]), averaged over alive steps: how jumpy the commands
    are. ``command`` fixes a velocity-commanded
    task's command (its ``fixed_command``) for every episode. ``task_options``: what ``make_task`` needs
    besides the name (a legged task's robot; ``Task.options()``). ``randomization``: the world's
    perturbations (``rfo_ros.randomization``; a named set from ``PERTURBATION_SETS``).

    ``actor`` is anything called as ``actor(obs (N, D), noise (N, C, m) | None) -> (actions (N, C, m), _)``
    with ``chunk`` and ``action_dim`` attributes (the training ``Actor``, or ``OnnxActor``).
    """
    task = make_task(task_name, **(task_options or {}))
    if command is not None:
        if not task.commanded:
            raise ValueError(f"task {task_name!r} takes no velocity command")
        task.fixed_command = tuple(float(c) for c in command)
    env = VecEnv(task, episodes, seed=seed, threads=None, randomization=randomization)
    obs = env.reset()
    wanted = getattr(actor, "obs_dim", None)  # None: a scripted actor
    if wanted is not None and obs.shape[1] != wanted:
        raise ValueError(f"task {task_name!r} observes {obs.shape[1]} values, the policy {wanted}")
    chunk = actor.chunk
    alive = np.ones(episodes, dtype=bool)
    returns, lengths, falls = np.zeros(episodes), np.zeros(episodes), np.zeros(episodes, dtype=bool)
    speed_sum, error_sum, change_sum = np.zeros(episodes), np.zeros(episodes), np.zeros(episodes)
    command_sum = np.zeros(episodes)
    previous = None
    # What the task measures (``Task.forward_speed`` and friends return None where it does not).
    measure_speed = task.forward_speed(env.state) is not None
    measure_tracking = task.tracking_error(env.state) is not None
    measure_success = task.success(env.state) is not None
    measure_crossing = task.crossed(env.state) is not None
    succeeded, crossed = np.zeros(episodes, dtype=bool), np.zeros(episodes, dtype=bool)
    start_pose = task.planar_pose(env.state)  # (x, y, heading) at each episode's start, or None
    last_pose = start_pose
    for t in range(task.info.episode_length):
        if t % chunk == 0:
            noise = torch.zeros(episodes, chunk, actor.action_dim) if deterministic else None
            actions = act_on(actor, obs, noise)
        if measure_speed:
            speed_sum += alive * task.forward_speed(env.state).numpy()
        if measure_tracking:
            error_sum += alive * task.tracking_error(env.state).numpy()
            command_sum += alive * task.command_speed(env.state).numpy()
        if measure_success:  # before the step: an episode's end resets its env (and redraws its goal)
            succeeded = np.where(alive, task.success(env.state).numpy(), succeeded)
        if measure_crossing:  # before the step too: a reset redraws the env's course
            crossed |= alive & task.crossed(env.state).numpy()
        if start_pose is not None:  # before the step too: an episode's end resets its env's pose
            last_pose = np.where(alive[:, None], task.planar_pose(env.state), last_pose)
        action = actions[:, t % chunk]
        if previous is not None:
            change_sum += alive * (action - previous).pow(2).mean(1).sqrt().numpy()
        previous = action
        res = env.step(action)
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
        "action_change_mean": float((change_sum / np.maximum(lengths - 1, 1)).mean()),
    }
    if measure_speed:
        out["forward_speed_mean"] = float((speed_sum / np.maximum(lengths, 1)).mean())
    if measure_tracking:
        out["tracking_error_mean"] = float((error_sum / np.maximum(lengths, 1)).mean())
        out["command_speed_mean"] = float((command_sum / np.maximum(lengths, 1)).mean())
    if start_pose is not None:
        heading = start_pose[:, 2]
        made_good = (last_pose[:, 0] - start_pose[:, 0]) * np.cos(heading)
        made_good += (last_pose[:, 1] - start_pose[:, 1]) * np.sin(heading)
        # The last pose read is the state before the episode's last step: lengths - 1 steps from the start.
        out["progress_speed_mean"] = float((made_good / (np.maximum(lengths - 1, 1) * task.dt)).mean())
        turn = np.angle(np.exp(1j * (last_pose[:, 2] - heading)))  # wrapped to (-pi, pi]
        out["heading_change_deg_mean"] = float(np.degrees(np.abs(turn)).mean())
    if measure_success:
        out["success_rate"] = float(succeeded.mean())
    if measure_crossing:
        crossings = crossed & ~falls
        out["crossings"] = int(crossings.sum())
        out["crossing_rate"] = float(crossings.mean())
    return out


class OnnxActor:
    """An exported model, batched, behind the training ``Actor``'s call: ``(obs, noise) -> (actions, None)``
    with actions in policy units [-1, 1] (the graph's actuator commands mapped back by the action map).
    An image model's observation carries the image flattened after the proprioception, as the task
    observes it; it goes to the graph's ``image`` input."""

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        from rfo_ros.runtime.ort_model import metadata_from_session, open_session, session_options

        self.session = open_session(path, options=session_options(threads=1))
        self.metadata = meta = metadata_from_session(self.session, path)
        if meta.inpainting:
            raise ValueError(f"{path}: inpainting models are not supported here")
        self.chunk, self.action_dim = meta.chunk, meta.action_dim
        self.rng = np.random.default_rng(seed)

    @property
    def obs_dim(self) -> int:
        """The task's observation size this model takes: its observation, then any image's pixels."""
        meta = self.metadata
        return meta.obs_dim + (int(np.prod(meta.image.shape)) if meta.image is not None else 0)

    def __call__(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        n, meta = obs.shape[0], self.metadata
        values = obs.numpy().astype(np.float32)
        feeds = {"observation": values[:, : meta.obs_dim]}
        if meta.image is not None:
            feeds["image"] = values[:, meta.obs_dim :].reshape(n, *meta.image.shape)
        if not self.metadata.zero_noise:
            shape = (n, self.chunk, self.action_dim)
            eps = self.rng.standard_normal(shape) if noise is None else noise.numpy()
            feeds["noise"] = eps.astype(np.float32)
        commands = self.session.run(None, feeds)[0].astype(np.float64)
        prior = meta.chunk_prior(values[:, : meta.obs_dim])  # a gait's, which the task adds back
        return torch.from_numpy(meta.policy_action(commands, prior)).to(torch.float32), None


def load_policy(path: str) -> tuple[object, str, dict]:
    """(actor, task name, task options) of an ONNX model or a training checkpoint."""
    if path.endswith(".onnx"):
        from rfo_ros.envs import task_options_from_metadata

        actor = OnnxActor(path)
        return actor, actor.metadata.task, task_options_from_metadata(actor.metadata.robot)
    from rfo_ros.checkpoint import load_actor

    actor, payload = load_actor(path)
    return actor, payload["task"], payload.get("task_options", {})


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: evaluate a policy (a checkpoint or an exported ONNX model) with sampled and with zero noise,
    and judge it by the task's own test of solved; prints one JSON object."""
    from rfo_ros.checkpoint import CheckpointError
    from rfo_ros.envs import make_task
    from rfo_ros.runtime.metadata import ModelError

    p = argparse.ArgumentParser(prog="python -m rfo_ros.evaluate", description=main.__doc__)
    p.add_argument("policy", help="a training checkpoint (last.pt / best.pt) or an exported .onnx model")
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--command", type=float, nargs=3, metavar=("VX", "VY", "WZ"), help="fixed command")
    p.add_argument(
        "--perturb", choices=sorted(PERTURBATION_SETS), default=None, help="a named perturbation set"
    )
    p.add_argument(
        "--task",
        default=None,
        help="evaluate on this task instead of the policy's own, with the policy's robot and observation "
        "options (e.g. a flat-ground policy of go1_trot on legged_terrain, the obstacle course)",
    )
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    torch.manual_seed(args.seed)  # the sampled-noise episodes draw from torch's generator
    try:
        actor, task, options = load_policy(args.policy)
        task = args.task or task
        result = {
            mode: evaluate(
                actor,
                task,
                args.episodes,
                args.seed,
                mode == "zero_noise",
                args.command,
                options,
                PERTURBATION_SETS.get(args.perturb),
            )
            for mode in ("stochastic", "zero_noise")
        }
        judge = make_task(task, **options)
    except (CheckpointError, ModelError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verdict = {"solved": judge.solved(result["stochastic"]), "solved_rule": judge.solved_rule}
    print(json.dumps({"task": task, "command": args.command, "perturb": args.perturb, **result, **verdict}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
