"""Train a policy: ``python -m rfo_ros.train --config CONFIG.yaml [--set k=v ...] [--out DIR] [--resume]``.

Data-parallel on several processes or machines: ``torchrun --nproc_per_node=N -m rfo_ros.train ...``
(``rfo_ros.distributed``: each rank its own envs, gradients averaged, rank 0 writes).

Exit codes: 0 done, 2 invalid configuration or arguments (nothing written), 130 interrupted
(a checkpoint was saved; continue with ``--resume``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from rfo_ros.checkpoint import CheckpointError
from rfo_ros.config import ConfigError, TrainConfig, build_config, load_config, merge_trees, parse_overrides
from rfo_ros.robot import ROBOT_RUN_FILE


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rfo_ros.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="training YAML (default: built-in defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set diff.horizon=16 (repeatable)",
    )
    p.add_argument("--out", type=Path, help="run folder (default: runs/<task>_<algo>_s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


#: What a resumed run may change: how long it goes on, how often it reports, and how many simulation
#: threads it uses (each env's physics is independent of the thread that steps it).
RESUMABLE_OVERRIDES = {
    "run.total_env_steps",
    "run.max_wall_time_s",
    "run.checkpoint_every",
    "run.eval_every",
    "env.threads",
    "run.device",  # a run may move to (or off) a GPU machine
}


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    """The validated config and run folder; raises ConfigError before anything is written."""
    if args.resume:
        if args.out is None:
            raise ConfigError("--resume needs --out pointing at the run to continue")
        saved = args.out / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"--resume: no config.yaml in {args.out} (not a training run folder)")
        tree = yaml.safe_load(saved.read_text())
        if args.config is not None:
            raise ConfigError("--resume continues the run's saved config.yaml; drop --config")
        extra = parse_overrides(args.overrides)
        changed = {
            f"{section}.{key}" if isinstance(keys, dict) else section
            for section, keys in extra.items()
            for key in (keys if isinstance(keys, dict) else [None])
        }
        if not changed <= RESUMABLE_OVERRIDES:
            raise ConfigError(
                f"--resume may only change {', '.join(sorted(RESUMABLE_OVERRIDES))}; "
                "start a new --out for anything else"
            )
        robot_copy = args.out / ROBOT_RUN_FILE
        if robot_copy.is_file():  # the description the run started with, even if the original changed
            extra = merge_trees(extra, {"env": {"robot": str(robot_copy)}})
        cfg = build_config(merge_trees(tree, extra), str(saved))
        return cfg, args.out
    cfg = load_config(args.config, args.overrides)
    out = args.out or Path("runs") / f"{cfg.env.task}_{cfg.algo}_s{cfg.run.seed}"
    return cfg, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg, out = resolve_config(args)
        from rfo_ros.envs import TASKS, task_from_config

        if cfg.env.task not in TASKS:
            raise ConfigError(f"env.task = {cfg.env.task!r}: unknown task; known: {', '.join(sorted(TASKS))}")
        try:  # a wrong robot file fails here, before anything is written
            task = task_from_config(cfg.env.task, cfg.env.robot, cfg.env.base_lin_vel, cfg.env.obs_history)
        except ValueError as exc:  # RobotError is one
            raise ConfigError(f"env.task = {cfg.env.task!r}, env.robot = {cfg.env.robot!r}: {exc}") from None
        if cfg.env.randomization.active and task.robot is None:
            raise ConfigError(
                f"env.randomization needs a legged task (a robot file); env.task = {cfg.env.task!r}"
            )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from rfo_ros import distributed
    from rfo_ros.envs.device_env import resolve_device
    from rfo_ros.runner import Runner

    try:
        device, _ = resolve_device(cfg.run.device, distributed.local_rank())  # Runner prints any fallback
    except ValueError as exc:  # cuda:N beyond this machine's GPUs
        print(f"error: {exc}", file=sys.stderr)
        return 2
    distributed.init_from_env(device)
    try:
        try:  # what only the built world can check (a noise field its observation lacks) is a config error
            runner = Runner(cfg, out, progress=not args.no_progress, task=task)
        except (ValueError, CheckpointError) as exc:  # and a run.init_from that does not fit
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            if args.resume:
                runner.resume()
            runner.write_config()  # on resume: records an extended step or time budget
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            runner.train()
        except KeyboardInterrupt:
            return 130
        summary = runner.finish()
        if distributed.is_main():
            keys = ("algo", "task", "final_return", "solved", "env_steps", "wall_time_s", "world_size")
            print(json.dumps({k: summary[k] for k in keys}))
        return 0
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
