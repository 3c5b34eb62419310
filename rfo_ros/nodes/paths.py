"""Moved to ``rfo_ros.paths`` (no ROS import); kept so existing imports keep working."""

from rfo_ros.paths import DEFAULT_MODEL, DEFAULT_PARAMS, package_file, resolve_model_path, share_dir

__all__ = ["DEFAULT_MODEL", "DEFAULT_PARAMS", "package_file", "resolve_model_path", "share_dir"]
