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

    def __init__(self, out_dir: Path, tensorboard: bool = True) -> None:
        self.path = out_dir / "metrics.csv"
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
