"""Locating and loading the MJCF worlds shipped in ``sim/``."""

from __future__ import annotations

import os
from pathlib import Path

import mujoco

from rfo_ros.paths import SOURCE_ROOT, share_dir


def sim_dir() -> Path:
    """The folder holding the MJCF worlds: the source tree's ``sim/`` or the installed share dir."""
    override = os.environ.get("RFO_ROS_SIM_DIR")
    if override:
        return Path(override)
    source = SOURCE_ROOT / "sim"
    if source.is_dir():
        return source
    share = share_dir()  # installed with colcon: share/rfo_ros/sim
    if share is None:  # pragma: no cover - only without the source tree and the ament index
        raise FileNotFoundError("cannot find the rfo_ros sim/ folder; set RFO_ROS_SIM_DIR")
    return share / "sim"


def world_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a world name (``"quadruped"``) or an explicit path to an existing MJCF file."""
    candidate = Path(name_or_path)
    if candidate.suffix != ".xml":
        candidate = sim_dir() / f"{candidate}.xml"
    if not candidate.is_file():
        known = sorted(p.stem for p in sim_dir().glob("*.xml"))
        raise FileNotFoundError(f"MJCF world not found: {candidate} (worlds in sim/: {', '.join(known)})")
    return candidate


def load_model(name_or_path: str | os.PathLike) -> mujoco.MjModel:
    """Load an MJCF world, turning MuJoCo's parse errors into a message that names the file."""
    path = world_path(name_or_path)
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:
        raise ValueError(f"invalid MJCF in {path}: {exc}") from exc
