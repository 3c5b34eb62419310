"""The ``main`` of every node: init without rclpy's signal handlers, spin, shut down cleanly.

rclpy's own SIGINT handler shuts the context down before ``finally`` runs, which would make the policy
node's hold-on-shutdown publish impossible; so SIGINT and SIGTERM become ``KeyboardInterrupt`` here and the
node is destroyed (publishing its hold) while the context is still valid. Jazzy-compatible: ``rclpy.init``
+ ``try``/``finally`` + ``rclpy.try_shutdown``.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable

import rclpy
import rclpy.executors
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

#: Executors a node's ``executor`` parameter may choose: rclpy's Python one, or the C++-driven event queue
#: of ``rclpy.experimental`` (Jazzy). Only the bare echo node offers the choice: the policy node under the
#: EventsExecutor fails in ``spin_once`` ("SystemError: null argument to internal routine", rclpy of
#: this Jazzy wheel set), so it keeps the SingleThreadedExecutor and its input thread.
EXECUTORS = ("single", "events")


def run_node(
    factory: Callable[[], Node], name: str, startup_errors: tuple[type[BaseException], ...], args=None
) -> int:
    """Build the node with ``factory`` and spin it; 1 (with a fatal log) if it raises ``startup_errors``.

    The executor is the node's ``executor`` parameter when it declares one (``EXECUTORS``), else rclpy's
    ``SingleThreadedExecutor``.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    previous_sigterm = _interrupt_on_sigterm()
    node = None
    try:
        node = factory()
        executor = make_executor(node)
        executor.add_node(node)
        while rclpy.ok():  # spin_once, not spin: rclpy.experimental's spin() never returned to Python here
            executor.spin_once(timeout_sec=0.1)
    except startup_errors as exc:
        rclpy.logging.get_logger(name).fatal(f"{name} cannot start: {exc}")
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    return 0


def make_executor(node: Node):
    """The executor the node's ``executor`` parameter names (``single`` without one)."""
    kind = node.get_parameter("executor").value if node.has_parameter("executor") else "single"
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor()
    if kind != "single":
        raise ValueError(f"parameter executor={kind!r}: choose {' or '.join(EXECUTORS)}")
    return rclpy.executors.SingleThreadedExecutor()


def _interrupt_on_sigterm():
    """Treat SIGTERM (``ros2 launch`` escalation, ``kill``) like Ctrl-C; returns the previous handler."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to the caller
        return None


def isolated_ros_env(environ=None) -> dict[str, str]:
    """ROS discovery settings that keep a demo, test or benchmark to itself: a random ``ROS_DOMAIN_ID``
    and ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, except where ``environ`` (default os.environ) sets them.

    Returns only the variables to set; apply them before ``rclpy.init`` (and pass them to child processes).
    """
    environ = os.environ if environ is None else environ
    env = {}
    if "ROS_DOMAIN_ID" not in environ:
        env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))  # 0-101: safe with default ports
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in environ:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    return env
