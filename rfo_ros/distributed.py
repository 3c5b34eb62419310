"""Data-parallel training under ``torchrun`` (torch.distributed), the way rsl_rl and Isaac Lab do it.

One process per device (or per group of CPU cores), each with its own envs, simulation threads and
seed stream. Rank 0's initial weights are broadcast; every optimiser step averages the gradients over
the ranks (one flat all-reduce, SUM ÷ world size) before clipping; observation-normaliser moments are
merged; rank 0 alone writes. Every function here is a no-op in a single process (no process group),
which then runs exactly as before.

``torchrun --nproc_per_node=N -m rfo_ros.train ...`` sets ``WORLD_SIZE``/``RANK``/``MASTER_*``;
``init_from_env`` reads them. The backend is gloo when the networks train on the CPU; when each rank's
networks are on its own GPU (``run.device: cuda``; every rank must resolve the same kind) CUDA tensors
(gradients, normaliser moments, weights) go over NCCL and the small CPU ones (stop flags, episode
returns, checkpoint states) over gloo, in one process group.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Rank 0, which writes metrics, checkpoints and the summary (and the only rank when not distributed)."""
    return rank() == 0


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``; 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device: torch.device | None = None) -> int:
    """Join the process group ``torchrun`` describes, if it describes one (gloo; with NCCL beside it for
    networks on a GPU ``device``); returns the world size."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return world_size()
    if device is not None and device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    return world_size()


def shutdown() -> None:
    if is_distributed():
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Make every rank's parameters and buffers rank ``src``'s."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src)


def average_gradients(params: Sequence[torch.Tensor], finite: bool) -> bool:
    """Average ``params``' gradients over the ranks in one flat all-reduce; returns whether every rank's
    loss was finite (a rank whose loss was not contributes zeros and a flag, so all ranks skip together).
    Missing gradients count as zeros."""
    if not is_distributed():
        return finite
    zeros = lambda p: torch.zeros(p.numel(), device=p.device)  # noqa: E731
    parts = [p.grad.reshape(-1) if p.grad is not None and finite else zeros(p) for p in params]
    flat = torch.cat([*parts, torch.tensor([0.0 if finite else 1.0], device=parts[0].device)])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n
    return bool(flat[-1] == 0)


def all_ranks(flag: bool) -> bool:
    """True on every rank iff ``flag`` is true on every rank (a collective decision)."""
    if not is_distributed():
        return flag
    value = torch.tensor([0.0 if flag else 1.0])
    dist.all_reduce(value)
    return bool(value == 0)


def any_rank(flag: bool) -> bool:
    """True on every rank iff ``flag`` is true on some rank."""
    return not all_ranks(not flag)


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (the same shape on all), concatenated along dim 0 in rank order, on every
    rank: for batch statistics that must be the whole batch's, not one rank's."""
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def batch_mean_std(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) standard deviation of every rank's ``x`` together, on every rank; in one process
    exactly ``x.mean(), x.std()``."""
    if not is_distributed():
        return x.mean(), x.std()
    count, mean, var = merge_moments(float(x.numel()), x.mean().reshape(1), x.var(unbiased=False).reshape(1))
    return mean[0], (var[0] * count / (count - 1)).sqrt()


def merge_moments(
    count: float, mean: torch.Tensor, var: torch.Tensor
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Pool per-rank (count, mean (D,), population var (D,)) into the whole batch's, on every rank."""
    if not is_distributed():
        return count, mean, var
    sums = torch.cat(
        [torch.tensor([count], device=mean.device), count * mean, count * (var + mean**2)]
    ).double()
    dist.all_reduce(sums)
    total = float(sums[0])
    d = mean.numel()
    pooled_mean = sums[1 : 1 + d] / total
    pooled_var = (sums[1 + d :] / total - pooled_mean**2).clamp_min(0.0)
    return total, pooled_mean.to(mean.dtype), pooled_var.to(var.dtype)


def gather_objects(obj) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj) -> list | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others)."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out
