"""Run logging: TensorBoard scalars, a CSV of every logged row, and progress callbacks."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

ProgressCallback = Callable[[dict[str, float]], None]


class MetricsLog:
    """Rows of scalars keyed by ``iteration``; written to ``metrics.csv`` and TensorBoard.

    The CSV is rewritten whole on each flush (runs log at most a few thousand rows), so columns
    that first appear late still get a header, and a resumed run can drop rows past its checkpoint.
    """

    def __init__(self, out_dir: Path, tensorboard: bool = True, write: bool = True) -> None:
        self.path = out_dir / "metrics.csv"
        self.write = write  # False on torchrun's other ranks: rows are kept, nothing touches the disk
        self.rows: list[dict[str, float]] = []
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"))

    def load(self, upto_iteration: int) -> None:
        """Reload rows from an earlier run's CSV, keeping those at or before ``upto_iteration``."""
        if not self.path.is_file():
            return
        with self.path.open() as f:
            for row in csv.DictReader(f):
                parsed = {k: float(v) for k, v in row.items() if v not in ("", None)}
                if parsed.get("iteration", 0) <= upto_iteration:
                    self.rows.append(parsed)

    def log(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        if self.writer is not None:
            step = int(row["Train/env_steps"])
            for key, value in row.items():
                if key not in ("iteration", "Train/env_steps"):
                    self.writer.add_scalar(key, value, step)

    def flush(self) -> None:
        if not self.write:
            return
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(env_steps, values) of every row that has ``key``."""
        pts = [(r["Train/env_steps"], r[key]) for r in self.rows if key in r]
        return [p[0] for p in pts], [p[1] for p in pts]


#: Parts of a differentiable training iteration's wall time, as ``split_time`` names them.
TIME_PARTS = (
    "sim_forward",
    "jacobian_wait",
    "networks_and_other",
    "backward",
    "critic_and_updates",
    "sample_reuse",
    "sim_jacobians_compute",
)


def split_time(perf: dict[str, float]) -> dict[str, float]:
    """Where wall time went, from ``Perf/*_s`` metrics (one iteration's, or sums over many).

    ``sim_forward``: mj_step (≈ wall); ``jacobian_wait``: wall time the trainer was blocked on Jacobians
    (all of their time when inline, what the overlap did not hide otherwise); ``networks_and_other``: the
    rest of the rollout (policy and critic forward, task maths, copies); ``backward``: the rest of the
    actor's backward pass (network and simulator VJPs) and the optimiser step; ``critic_and_updates``;
    ``sample_reuse``: the actor's extra epochs on the window's adjoints (and SAPO's temperature step).
    These add up to the wall time. Not part of that sum: ``sim_jacobians_compute``, mjd_transitionFD's
    own time (thread-averaged), overlapped or not. Keys absent from ``perf`` count as 0.
    """
    get = lambda key: perf.get(f"Perf/{key}_s", 0.0)  # noqa: E731
    wait_in_rollout = get("jacobian_wait_rollout")
    wait_in_backward = get("jacobian_wait") - wait_in_rollout
    return {
        "sim_forward": get("sim_step"),
        "jacobian_wait": get("jacobian_wait"),
        "networks_and_other": max(0.0, get("rollout") - get("sim_step") - wait_in_rollout),
        "backward": max(0.0, get("backward") - wait_in_backward),
        "critic_and_updates": get("critic") + get("update"),
        "sample_reuse": get("reuse"),
        "sim_jacobians_compute": get("sim_jacobian"),
    }
