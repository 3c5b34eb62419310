"""The ament_python packaging, proved with a real `colcon build` of a copy of the package.

What ROS 2 users rely on: `ros2 launch rfo_ros ...` finds share/rfo_ros/launch, the nodes find their YAML
and models through `get_package_share_directory('rfo_ros')`, and `ros2 run rfo_ros policy_node` finds the
console script in lib/rfo_ros/. The build runs in a temporary workspace, so nothing lands in the repository.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "rfo_ros"
SHARE_FOLDERS = ("launch", "config", "models", "sim")
SOURCE_FILES = ("package.xml", "setup.py", "setup.cfg")
SOURCE_FOLDERS = ("resource", PACKAGE, *SHARE_FOLDERS)
CONSOLE_SCRIPTS = (
    "rfo_train",
    "rfo_export",
    "rfo_evaluate",
    "policy_node",
    "policy_lifecycle_node",
    "sim_node",
    "rfo_bringup",
)
BUILD_TIMEOUT_S = 600
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
COLCON_OUTPUTS = ("build", "install", "log")


class Build(NamedTuple):
    """A finished colcon build: its workspace and the repository's colcon folders before and after it."""

    root: Path
    repo_before: dict
    repo_after: dict


def _colcon():
    """The colcon beside the running interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "colcon"
    found = str(beside) if beside.exists() else shutil.which("colcon")
    assert found, "colcon not found: run scripts/setup_venv.sh (requirements/dev.txt installs colcon-ros)"
    return found


def _repo_colcon_outputs():
    """Modification time of build/, install/, log/ at the repository root (None where absent)."""
    paths = {name: REPO / name for name in COLCON_OUTPUTS}
    return {name: path.stat().st_mtime_ns if path.exists() else None for name, path in paths.items()}


def _relative_files(folder):
    """Files under `folder` as sorted relative POSIX paths, build debris left out."""
    if not folder.is_dir():
        return []
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace holding a copy of the package, built once for every test in this module."""
    root = tmp_path_factory.mktemp("colcon_ws")
    src = root / "src" / PACKAGE
    src.mkdir(parents=True)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, src / name)
    for name in SOURCE_FOLDERS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=IGNORED)
    repo_before = _repo_colcon_outputs()
    env = dict(os.environ, COLCON_HOME=str(root / "colcon_home"), PYTHONDONTWRITEBYTECODE="1")
    cmd = [
        _colcon(),
        "--log-base",
        str(root / "log"),
        "build",
        "--base-paths",
        str(root / "src"),
        "--build-base",
        str(root / "build"),
        "--install-base",
        str(root / "install"),
    ]
    result = subprocess.run(
        cmd, cwd=root, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    return Build(root, repo_before, _repo_colcon_outputs())


@pytest.fixture(scope="module")
def prefix(workspace):
    """The package's install prefix (colcon's default isolated layout)."""
    path = workspace.root / "install" / PACKAGE
    assert path.is_dir(), f"no install prefix at {path}"
    return path


def test_build_stays_in_its_workspace(workspace):
    assert (workspace.root / "build" / PACKAGE).is_dir()
    assert (workspace.root / "log").is_dir()
    assert workspace.repo_after == workspace.repo_before, "colcon wrote build/ install/ log/ into the repo"


def test_package_is_registered_in_ament_index(prefix):
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    assert (prefix / "share" / PACKAGE / "package.xml").is_file()


@pytest.mark.parametrize("folder", SHARE_FOLDERS)
def test_share_folder_installed_with_every_file(prefix, folder):
    installed = prefix / "share" / PACKAGE / folder
    assert installed.is_dir(), f"share/{PACKAGE}/{folder} was not installed"
    source_files = _relative_files(REPO / folder)
    if not source_files:
        pytest.skip(f"{folder}/ has no files yet")
    assert _relative_files(installed) == source_files


def test_get_package_share_directory_resolves_to_install(prefix):
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    code = (
        "from ament_index_python.packages import get_package_share_directory\n"
        f"print(get_package_share_directory({PACKAGE!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == (prefix / "share" / PACKAGE).resolve()


@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_script_installed_where_ros2_run_looks(prefix, script):
    path = prefix / "lib" / PACKAGE / script
    assert path.is_file(), f"{script} not in lib/{PACKAGE}/ (setup.cfg install_scripts)"
    assert os.access(path, os.X_OK)


def test_python_packages_installed(prefix):
    expected = find_packages(str(REPO), exclude=["tests", "tests.*"])
    site_packages = list(prefix.glob("lib/python3*/site-packages"))
    if not expected:
        pytest.skip(f"{PACKAGE}/ has no __init__.py yet")
    assert len(site_packages) == 1, f"expected one site-packages under {prefix}/lib, found {site_packages}"
    for package in expected:
        init = site_packages[0].joinpath(*package.split("."), "__init__.py")
        assert init.is_file(), f"{package} was not installed ({init} missing)"
