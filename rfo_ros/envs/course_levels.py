"""A block-height curriculum for the obstacle course: legged_gym's terrain levels, per env.

Each env has a level ``0 .. levels - 1``; its blocks are drawn at ``(level + 1) / levels`` of the course's
heights (the lengths, gaps and positions as the course draws them). When an episode ends, its env moves
up a level if the trunk crossed the finish line, down one if it got less than halfway to it (a fall, a
stop before the blocks), and stays otherwise. An env that crosses at the top level is sent to a random
level, so that the easy courses stay in the batch (legged_gym does the same). Training only: evaluation
builds its own task, which draws the full course.

Why: a teacher that meets 0.08-0.15 m blocks from the start learns to stop before them (no crossing
ever pays, docs/results, issue 26); blocks that grow only as the gait crosses them give the reward for
crossing from the first episodes.
"""

from __future__ import annotations

import numpy as np


class CourseLevels:
    """Per-env levels of a block-height curriculum with ``levels`` steps (module docstring)."""

    def __init__(self, levels: int, start_level: int = 0) -> None:
        if levels < 1:
            raise ValueError(f"env.course_levels must be >= 1 (0 turns the curriculum off), got {levels}")
        if not 0 <= start_level < levels:
            raise ValueError(f"a curriculum's start level must be in [0, {levels - 1}], got {start_level}")
        self.levels, self.start_level = levels, start_level

    def start(self, n: int) -> np.ndarray:
        """(n,) the levels of ``n`` fresh envs."""
        return np.full(n, self.start_level, dtype=np.int64)

    def height_scale(self, level: np.ndarray) -> np.ndarray:
        """(k,) the fraction of the course's block heights drawn at each level."""
        return (np.asarray(level) + 1.0) / self.levels

    def update(
        self, level: np.ndarray, crossed: np.ndarray, progress: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The next levels (k,) of envs whose episodes ended at ``level`` (k,), given whether each crossed
        and how far it got towards the finish (``progress``: trunk x over the finish line's x)."""
        up = np.asarray(crossed, dtype=bool)
        down = ~up & (np.asarray(progress) < 0.5)
        new = np.asarray(level, dtype=np.int64) + up - down
        top = up & (new >= self.levels)
        new[top] = rng.integers(0, self.levels, int(top.sum()))
        return np.clip(new, 0, self.levels - 1)
