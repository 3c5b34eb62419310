"""ament_python packaging for rfo_ros (colcon build, ros2 run, ros2 launch)."""

import os
from glob import glob

from setuptools import find_packages, setup

package_name = "rfo_ros"

# Folders installed as they are under share/rfo_ros/, sub-folders kept (config/train/, sim meshes, ...).
SHARE_FOLDERS = ("launch", "config", "models", "sim")


def share_tree(folder):
    """Return data_files entries installing every file under `folder` to share/rfo_ros/<folder>/...

    Globbed at build time, so new files are picked up without editing this file. A missing or empty
    folder still gets its (empty) share directory.
    """
    entries = {os.path.join("share", package_name, folder): []}
    for path in sorted(glob(os.path.join(folder, "**", "*"), recursive=True)):
        if not os.path.isfile(path) or "__pycache__" in path.split(os.sep) or path.endswith(".pyc"):
            continue
        target = os.path.join("share", package_name, os.path.dirname(path))
        entries.setdefault(target, []).append(path)
    return list(entries.items())


data_files = [
    ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
    ("share/" + package_name, ["package.xml"]),
]
for share_folder in SHARE_FOLDERS:
    data_files += share_tree(share_folder)

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    data_files=data_files,
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="rfo_ros maintainers",
    maintainer_email="maintainers@users.noreply.b-seed-2409569e.example",
    description="Reparameterization Flow Policy Optimization (RFO) for ROS 2: MuJoCo training, "
    "ONNX export and an rclpy policy node.",
    license="Apache-2.0",
    python_requires=">=3.11",
    entry_points={
        "console_scripts": [
            "rfo_train = rfo_ros.train:main",
            "rfo_export = rfo_ros.export:main",
            "rfo_evaluate = rfo_ros.evaluate:main",
            "policy_node = rfo_ros.nodes.policy_node:main",
            "policy_lifecycle_node = rfo_ros.nodes.policy_lifecycle_node:main",
            "sim_node = rfo_ros.nodes.sim_node:main",
            "rfo_bringup = rfo_ros.bringup:main",
        ],
    },
)
