"""Learning-curve figures (matplotlib, Agg backend: works headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curve(
    series: dict[str, tuple[list[float], list[float]]], title: str, out: Path, threshold: float | None = None
) -> None:
    """One line per named (env_steps, return) series, with the solved threshold as a dashed line."""
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
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
