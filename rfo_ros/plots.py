"""Learning-curve figures (matplotlib, Agg backend: works headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(
    series: dict[str, tuple[list[float], list[float]]],
    title: str,
    out: Path,
    threshold: float | None = None,
    secondary: dict[str, tuple[list[float], list[float]]] | None = None,
) -> None:
    """One line per named (env_steps, return) series, with the solved threshold as a dashed line; the
    ``secondary`` series (a task's own training state, e.g. a curriculum's level) on a right-hand axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in series.items():
        if x:
            ax.plot(x, y, label=label, marker="o" if len(x) < 10 else None)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", label="solved")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if secondary:
        right = ax.twinx()
        for label, (x, y) in secondary.items():
            right.plot(x, y, label=label, color="tab:green", alpha=0.8)
        right.set_ylabel(", ".join(secondary))
        more, more_labels = right.get_legend_handles_labels()
        handles, labels = handles + more, labels + more_labels
    ax.legend(handles, labels)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def seed_band_curves(
    groups: dict[str, list[tuple[list[float], list[float]]]],
    title: str,
    xlabel: str,
    out: Path,
    threshold: float | None = None,
    points: int = 60,
    ylabel: str = "training return (mean of last 100 episodes)",
) -> None:
    """Per named group of runs (one (x, y) series per seed): the mean over seeds with a ±1 std band, on
    a common grid up to the shortest run's end (so every point averages every seed)."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in groups.items():
        runs = [(x, y) for x, y in runs if len(x) > 1]
        if not runs:
            continue
        grid = np.linspace(max(x[0] for x, _ in runs), min(x[-1] for x, _ in runs), points)
        ys = np.stack([np.interp(grid, x, y) for x, y in runs])
        mean, std = ys.mean(0), ys.std(0)
        (line,) = ax.plot(grid, mean, label=f"{label} ({len(runs)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    if threshold is not None:
        ax.axhline(threshold, color="gray", linestyle="--", label="solved")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
