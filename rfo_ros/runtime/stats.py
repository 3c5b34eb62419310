"""Small, allocation-free statistics for the control loop (latency windows) and their snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles (ms) over the last ``count`` samples of a window; NaN while it is empty."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    count: int


class LatencyWindow:
    """The last ``size`` latency samples (seconds in, milliseconds out) in a preallocated ring."""

    def __init__(self, size: int = 4096) -> None:
        self._samples = np.zeros(size)
        self._next = 0
        self._count = 0

    def add(self, seconds: float) -> None:
        self._samples[self._next] = seconds
        self._next = (self._next + 1) % len(self._samples)
        self._count = min(self._count + 1, len(self._samples))

    def clear(self) -> None:
        """Forget every sample (e.g. the warm-up's)."""
        self._next = self._count = 0

    def summary(self) -> LatencySummary:
        if self._count == 0:
            nan = float("nan")
            return LatencySummary(nan, nan, nan, 0)
        ms = self._samples[: self._count] * 1e3
        p50, p99 = np.percentile(ms, [50, 99])
        return LatencySummary(float(p50), float(p99), float(ms.max()), self._count)

    def values_ms(self) -> np.ndarray:
        """The samples in the window (ms), oldest first once the ring has wrapped."""
        if self._count < len(self._samples):
            return self._samples[: self._count] * 1e3
        return np.roll(self._samples, -self._next) * 1e3


@dataclass(frozen=True)
class PolicyStats:
    """A snapshot of the policy node's health, as published on ``diagnostics``.

    ``watchdog``: "waiting" (no state yet), "ok", or "stale" (holding). ``node_latency``: state
    received (rmw reception time of the ``joint_states`` message) -> ``action_chunk`` published.
    ``dispatch_latency``: rmw reception of ``joint_states`` -> its callback starts (the executor's or input
    thread's share of ``node_latency``). ``dropped``: rejected input messages by reason (e.g.
    ``joint_states/malformed``, ``imu/nonfinite``, ``image/camera_refused``). Models with an image input:
    ``images`` accepted, ``image_latency`` from an image's rmw reception to the controller (conversion and
    resampling included), ``camera`` the camera in use (or why it was refused).
    """

    provider: str
    watchdog: str
    ticks: int
    plans: int
    hold_ticks: int
    rate_limited_steps: int
    model_latency: LatencySummary
    node_latency: LatencySummary
    dispatch_latency: LatencySummary
    dropped: dict[str, int] = field(default_factory=dict)
    images: int = 0
    image_latency: LatencySummary | None = None
    camera: str = ""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())
