"""Finding the package's data files: the source tree first, then the installed share directory.

No ROS import: ``ament_index_python`` is tried only when the source tree lacks a file (an installed
package), so training, export and the runtime can use it without ROS.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "rfo_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = "models/quadruped.onnx"
DEFAULT_PARAMS = "config/quadruped.yaml"


def share_dir() -> Path | None:
    """``share/rfo_ros`` of an installed package (colcon / ROS), or None when it is not installed."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # pragma: no cover - ament_index_python ships with the ROS requirements
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError, OSError):  # OSError: no AMENT_PREFIX_PATH
        return None


def package_file(relative: str | os.PathLike) -> Path:
    """``relative`` (e.g. ``config/quadruped.yaml``) in the source tree if it is there, else in the share
    directory; an absolute or existing path is returned as is. The first candidate is returned when none
    exists, so the caller's error names a sensible path."""
    path = Path(relative)
    if path.is_absolute() or path.exists():
        return path
    candidates = [SOURCE_ROOT / path]
    share = share_dir()
    if share is not None:
        candidates.append(share / path)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def resolve_model_path(value: str | os.PathLike | None) -> Path:
    """The model a ``model_path`` parameter names; empty means ``models/quadruped.onnx``."""
    return package_file(value or DEFAULT_MODEL)
