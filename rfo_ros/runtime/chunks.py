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
- ``"realtime"``: real-time chunk execution (Black et al. 2025). Each new chunk is planned *conditioned
  on* the newest one (``conditioning``: its commands for the new chunk's steps, weight 1 for the first
  ``committed_steps`` — committed: they run before the plan could take over — then falling linearly to
  0 over the rest of the overlap), which the flow inpaints during its integration (models exported with
  ``--inpainting``); execution is then "latest", and continuous, since the new chunk starts on the
  committed commands.

"Newest" means the latest start step (ties: the later ``add``). Steps passed to ``action`` must not
decrease (chunks that end before the last asked step are dropped). Pure numpy; no clocks, no ROS.

``action`` runs every control step, so it allocates only the returned (m,) array: chunks are kept sorted
by start (all have length C, so their ends are sorted too, the ended ones are a prefix and the ones
covering a step are the next run), the ensemble weights are computed once per number of covering
chunks, and blending writes into scratch buffers.
"""

from __future__ import annotations

import math
from bisect import bisect_right

import numpy as np

BLENDS = ("latest", "ensemble", "overlap", "realtime")


class ChunkScheduler:
    """Per-step commands from action chunks.

    Args:
        chunk_len: C, commands per chunk.
        action_dim: m, values per command.
        replan_every: R in [1, C], steps between plans (default C).
        blend: one of ``BLENDS``.
        ensemble_decay: k of the "ensemble" weights (ACT uses 0.01).
        committed_steps: d of "realtime": steps of the newest chunk a new plan must keep exactly.
    """

    def __init__(
        self,
        chunk_len: int,
        action_dim: int,
        replan_every: int | None = None,
        blend: str = "latest",
        ensemble_decay: float = 0.01,
        committed_steps: int = 1,
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
        if not 0 <= committed_steps <= chunk_len:
            raise ValueError(f"committed_steps must be in [0, chunk_len={chunk_len}], got {committed_steps}")
        self.committed_steps = committed_steps
        self.chunk_len, self.action_dim, self.replan_every = chunk_len, action_dim, replan_every
        self.blend, self.ensemble_decay = blend, float(ensemble_decay)
        # Chunks sorted oldest first (stable for equal starts): start steps and (C, m) float64 commands.
        self._starts: list[int] = []
        self._actions: list[np.ndarray] = []
        self.last_start: int | None = None
        self._ensemble_weights: dict[int, tuple[np.ndarray, np.float64]] = {}  # n -> (weights, sum)
        self._rows = np.empty((0, action_dim))  # scratch: the covering chunks' rows for "ensemble"
        self._scaled = np.empty(action_dim)  # scratch: the newest chunk's weighted row for "overlap"

    def reset(self) -> None:
        """Forget every chunk (e.g. after a hold or a restart)."""
        self._starts.clear()
        self._actions.clear()
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
        index = bisect_right(self._starts, start)  # after every chunk starting at or before ``start``
        self._starts.insert(index, start)
        self._actions.insert(index, actions)
        self.last_start = start if self.last_start is None else max(self.last_start, start)

    def covering(self, step: int) -> list[tuple[int, np.ndarray]]:
        """(start, chunk) of every chunk with a command for ``step``, oldest first."""
        c = self.chunk_len
        return [(s, a) for s, a in zip(self._starts, self._actions, strict=True) if s <= step < s + c]

    def conditioning(self, step: int) -> dict[str, np.ndarray]:
        """Extra inference inputs for a chunk planned at ``step``: ``committed`` (C, m) and
        ``committed_weight`` (C,) under "realtime" (all-zero weights before the first chunk), else none."""
        if self.blend != "realtime":
            return {}
        c = self.chunk_len
        committed, weight = np.zeros((c, self.action_dim)), np.zeros(c)
        if self._starts:
            start, newest = self._starts[-1], self._actions[-1]
            overlap = min(max(start + c - step, 0), c)  # the new chunk's steps the newest still covers
            committed[:overlap] = newest[step - start : step - start + overlap]
            kept = min(self.committed_steps, overlap)
            weight[:kept] = 1.0
            tail = overlap - kept
            weight[kept:overlap] = (tail - np.arange(tail)) / (tail + 1)
        return {"committed": committed, "committed_weight": weight}

    def needs_plan(self, step: int) -> bool:
        """True when a new chunk should be planned at ``step``: none yet, R steps since the newest
        chunk's start, or no chunk covers ``step``."""
        if self.last_start is None or step - self.last_start >= self.replan_every:
            return True
        # Equal lengths: if any chunk starting at or before ``step`` covers it, the latest-starting one does.
        started = bisect_right(self._starts, step)
        return started == 0 or self._starts[started - 1] + self.chunk_len <= step

    def action(self, step: int) -> np.ndarray | None:
        """The command (m,) for ``step``, or None when no chunk covers it (the caller holds)."""
        ended = bisect_right(self._starts, step - self.chunk_len)  # start + C <= step
        if ended:
            del self._starts[:ended], self._actions[:ended]
        n = bisect_right(self._starts, step)  # the first n chunks cover ``step``, oldest first
        if n == 0:
            return None
        if self.blend in ("latest", "realtime") or n == 1:
            return self._row(n - 1, step).copy()
        if self.blend == "ensemble":
            return self._ensemble(n, step)
        return self._cross_fade(n, step)

    def _row(self, i: int, step: int) -> np.ndarray:
        """A view of chunk ``i``'s command for ``step``: (m,)."""
        return self._actions[i][step - self._starts[i]]

    def _ensemble(self, n: int, step: int) -> np.ndarray:
        """``w @ rows / w.sum()`` with ``w_i = exp(-k·i)`` over the ``n`` covering chunks, oldest first."""
        if n not in self._ensemble_weights:
            weights = np.exp(-self.ensemble_decay * np.arange(n))
            self._ensemble_weights[n] = (weights, weights.sum())
        weights, total = self._ensemble_weights[n]
        if len(self._rows) < n:
            self._rows = np.empty((n, self.action_dim))
        rows = self._rows[:n]
        for i in range(n):
            rows[i] = self._row(i, step)
        out = weights @ rows
        out /= total
        return out

    def _cross_fade(self, n: int, step: int) -> np.ndarray:
        """``(1 - a)·previous + a·newest`` with ``a = (step - s_n + 1) / (L + 1)``, L the overlap."""
        prev_start, new_start = self._starts[n - 2], self._starts[n - 1]
        overlap = prev_start + self.chunk_len - new_start
        alpha = (step - new_start + 1) / (overlap + 1)
        newest = np.multiply(self._row(n - 1, step), alpha, out=self._scaled)
        out = np.multiply(self._row(n - 2, step), 1.0 - alpha)
        out += newest
        return out
