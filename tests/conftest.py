"""Shared pytest fixtures: deliberately few; tests build their own tiny worlds inline."""

from __future__ import annotations

import pytest

from rfo_ros.envs import Task, make_task


@pytest.fixture
def cartpole_task() -> Task:
    """The smallest shipped task (fresh per test: tasks may hold per-env variables)."""
    return make_task("cartpole")
