"""Optimiser step with global-norm clipping and a NaN guard (skip, count, carry on)."""

from __future__ import annotations

import torch

from rfo_ros.distributed import average_gradients

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class GuardedOptimizer:
    """Adam (or AdamW) over ``params``; ``step(loss)`` returns (pre-clip grad norm, applied?).

    A non-finite loss or gradient skips the update and increments ``skipped`` instead of
    poisoning the weights (no nan_to_num patching: the batch is simply not used). Under torchrun the
    gradients are averaged over the ranks before clipping, and a non-finite loss on any rank skips the
    update on every rank.
    """

    def __init__(
        self,
        params,
        lr: float,
        clip: float,
        betas: tuple[float, float] = (0.9, 0.999),
        kind: str = "adam",
        weight_decay: float = 0.0,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if kind not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {kind!r}; choose one of {sorted(OPTIMIZERS)}")
        self.opt = OPTIMIZERS[kind](self.params, lr=lr, betas=betas, weight_decay=weight_decay)
        self.clip = clip
        self.base_lr = lr
        self.skipped = 0

    def scale_lr(self, factor: float) -> None:
        """Set the learning rate to ``factor`` times the one given at construction (for schedules)."""
        for group in self.opt.param_groups:
            group["lr"] = self.base_lr * factor

    def step(self, loss: torch.Tensor) -> tuple[float, bool]:
        self.opt.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
        if not average_gradients(self.params, finite):
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
            return float("nan"), False
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        if not torch.isfinite(norm):
            self.opt.zero_grad(set_to_none=True)
            self.skipped += 1
            return float(norm), False
        self.opt.step()
        return float(norm), True

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.skipped = state["skipped"]
