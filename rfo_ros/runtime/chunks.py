"""Action-chunk scheduling: which command to execute at each control step, from overlapping chunks.

A chunk ``(C, m)`` planned at step ``s`` holds the commands for steps ``s, s+1, ..., s+C-1``. A new
chunk is planned every ``R <= C`` steps (``needs_plan``), so up to ``ceil(C / R)`` chunks can cover a
step; ``blend`` decides how they combine:

- ``"latest"``: the newest covering chunk alone (plain receding horizon; R = C is open-loop chunking).
- ``"ensemble"``: temporal ensembling as in ACT: covering chunks oldest first, weights
  ``w_i = exp(-k·i)``, normalised; ``k = ensemble_decay`` (``k > 0`` favours older plans, smoother;
  ``k = 0`` is a plain mean; ``k < 0`` favours newer ones).
- ``"overlap"``: linear cross-fade from the previous chunk to the newest over their overlap: at step t
  with newest start ``s_n`` and overlap length ``L`` (steps covered by both), the newest chunk's weight is
  ``(t - s_n + 1) / (L + 1)``, so the command is continuous when a chunk arrives and when the old one ends.

"Newest" means the latest start step (ties: the later ``add``). Steps passed to ``action`` must not
decrease (chunks that end before the last asked step are dropped). Pure numpy; no clocks, no ROS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BLENDS = ("latest", "ensemble", "overlap")


@dataclass(frozen=True)
class _Chunk:
    start: int
    actions: np.ndarray  # (C, m) float64


class ChunkScheduler:
    """Per-step commands from action chunks.

    Args:
        chunk_len: C, commands per chunk.
        action_dim: m, values per command.
        replan_every: R in [1, C], steps between plans (default C).
        blend: one of ``BLENDS``.
        ensemble_decay: k of the "ensemble" weights (ACT uses 0.01).
    """

    def __init__(
        self,
        chunk_len: int,
        action_dim: int,
        replan_every: int | None = None,
        blend: str = "latest",
        ensemble_decay: float = 0.01,
    ) -> None:
        replan_every = chunk_len if replan_every is None else replan_every
        if chunk_len < 1 or action_dim < 1:
            raise ValueError(f"chunk_len and action_dim must be >= 1, got {chunk_len}, {action_dim}")
        if not 1 <= replan_every <= chunk_len:
            raise ValueError(f"replan_every must be in [1, chunk_len={chunk_len}], got {replan_every}")
        if blend not in BLENDS:
            raise ValueError(f"unknown blend {blend!r}; choose one of {BLENDS}")
        if not math.isfinite(ensemble_decay):
            raise ValueError(f"ensemble_decay must be finite, got {ensemble_decay}")
        self.chunk_len, self.action_dim, self.replan_every = chunk_len, action_dim, replan_every
        self.blend, self.ensemble_decay = blend, float(ensemble_decay)
        self._chunks: list[_Chunk] = []  # sorted oldest first (stable for equal starts)
        self.last_start: int | None = None

    def reset(self) -> None:
        """Forget every chunk (e.g. after a hold or a restart)."""
        self._chunks.clear()
        self.last_start = None

    def add(self, chunk: np.ndarray, start_step: int) -> None:
        """Register ``chunk`` (C, m) whose row j is the command for step ``start_step + j``."""
        actions = np.array(chunk, dtype=np.float64)
        if actions.shape != (self.chunk_len, self.action_dim):
            raise ValueError(
                f"chunk must have shape {(self.chunk_len, self.action_dim)}, got {actions.shape}"
            )
        if not np.isfinite(actions).all():
            raise ValueError("chunk has non-finite values")
        start = int(start_step)
        index = sum(1 for c in self._chunks if c.start <= start)
        self._chunks.insert(index, _Chunk(start, actions))
        self.last_start = start if self.last_start is None else max(self.last_start, start)

    def covering(self, step: int) -> list[tuple[int, np.ndarray]]:
        """(start, chunk) of every chunk with a command for ``step``, oldest first."""
        return [(c.start, c.actions) for c in self._chunks if c.start <= step < c.start + self.chunk_len]

    def needs_plan(self, step: int) -> bool:
        """True when a new chunk should be planned at ``step``: none yet, R steps since the newest
        chunk's start, or no chunk covers ``step``."""
        if self.last_start is None or step - self.last_start >= self.replan_every:
            return True
        return not self.covering(step)

    def action(self, step: int) -> np.ndarray | None:
        """The command (m,) for ``step``, or None when no chunk covers it (the caller holds)."""
        self._chunks = [c for c in self._chunks if c.start + self.chunk_len > step]
        covering = self.covering(step)
        if not covering:
            return None
        rows = np.stack([chunk[step - start] for start, chunk in covering])  # (n, m), oldest first
        if self.blend == "latest" or len(covering) == 1:
            return rows[-1].copy()
        if self.blend == "ensemble":
            weights = np.exp(-self.ensemble_decay * np.arange(len(rows)))
            return weights @ rows / weights.sum()
        (prev_start, _), (new_start, _) = covering[-2], covering[-1]
        overlap = prev_start + self.chunk_len - new_start
        alpha = (step - new_start + 1) / (overlap + 1)
        return (1.0 - alpha) * rows[-2] + alpha * rows[-1]
