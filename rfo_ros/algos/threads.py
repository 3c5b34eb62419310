"""Torch's intra-op threads by training phase.

A rollout runs hundreds of small torch ops per env step on a few dozen envs: there a second intra-op thread
costs more than it gives, and it would fight the simulation's threads for the cores (``run.torch_threads``,
default 1). An update multiplies minibatches of hundreds to thousands of samples while the simulator is
mostly idle: there the spare cores pay (``run.update_threads``, default the simulation's threads). On a
2-core host, with the update on both cores, the race's RFO iteration took ~7 % less time and PPO's update
~20 % less, with the same results bit for bit on that host (``docs/results``, "The race after two
speed-ups").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from rfo_ros.envs.vec_env import VecEnv


def update_thread_count(update_threads: int | None, env: VecEnv) -> int:
    """``run.update_threads``, or the simulation's thread count when it is unset."""
    return update_threads or env.sim.threads


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the caller's count."""
    before = torch.get_num_threads()
    if count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
