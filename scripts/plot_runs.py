"""Training-return curves of named run folders, over env steps and over wall-clock, one figure each.

    python scripts/plot_runs.py [--metric COLUMN] OUT_STEM "LABEL=FOLDER[,FOLDER...]" ...

Each LABEL's folders are seeds of one setting (mean ± std band, as ``bench learn`` draws them);
writes OUT_STEM.png (env steps) and OUT_STEM_wall.png (wall-clock). ``--metric`` plots another
``metrics.csv`` column than ``Train/return_mean100`` (e.g. ``Train/reward_mean``, the window's mean
reward per env step, which does not lag the way a mean over the last 100 episodes does).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file from any folder
from rfo_ros.metrics import MetricsLog  # noqa: E402
from rfo_ros.plots import seed_band_curves  # noqa: E402

#: The column drawn without ``--metric``: the training return (seed_band_curves' default y label).
TRAINING_RETURN = "Train/return_mean100"


def main(argv: list[str]) -> int:
    metric = TRAINING_RETURN
    if argv[:1] == ["--metric"]:
        metric, argv = argv[1], argv[2:]
    if len(argv) < 2:
        print(__doc__)
        return 2
    stem = Path(argv[0])
    by_steps, by_wall = {}, {}
    for spec in argv[1:]:
        label, folders = spec.split("=", 1)
        steps, walls = [], []
        for folder in folders.split(","):
            log = MetricsLog(Path(folder), tensorboard=False)
            log.load(10**12)
            rows = [r for r in log.rows if metric in r]
            y = [r[metric] for r in rows]
            steps.append(([r["Train/env_steps"] for r in rows], y))
            walls.append(([r["Train/wall_time_s"] for r in rows], y))
        by_steps[label], by_wall[label] = steps, walls
    ylabel = {} if metric == TRAINING_RETURN else {"ylabel": metric}
    seed_band_curves(by_steps, stem.name, "env steps", stem.with_suffix(".png"), **ylabel)
    seed_band_curves(by_wall, stem.name, "wall-clock s", stem.parent / f"{stem.name}_wall.png", **ylabel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
