"""A dedicated thread that serves a node's latency-critical subscriptions with a minimal wait set.

rclpy's executors rebuild a wait set over every entity of every node (parameter services, timers, ...) in
Python on each wake-up; measured here that costs about half a millisecond per state message at 100 Hz.
``InputThread`` waits on just the given subscriptions (plus a guard condition to stop it), takes the
messages in a fixed order and calls their callbacks (which must lock what they share with the node's
other callbacks). The subscriptions belong to a ``ServedElsewhere`` callback group, which no executor
ever waits on, so each message is taken exactly once.
This is the role a real-time control thread has in ros2_control; everything else stays on the executor.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack

from rclpy.callback_groups import CallbackGroup
from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.subscription import Subscription

WAIT_NS = 100_000_000


class ServedElsewhere(CallbackGroup):
    """A callback group executors never run (nor wait on): ``InputThread`` serves its entities."""

    def can_execute(self, entity) -> bool:
        return False

    def beginning_execution(self, entity) -> bool:
        return False

    def ending_execution(self, entity) -> None:
        pass


class InputThread:
    """Serve ``subscriptions`` (taken in this order when several are ready) on a thread of their own.

    ``stop()`` wakes the thread and joins it; the thread also ends when the context shuts down.
    """

    def __init__(self, node, subscriptions: Sequence[Subscription], name: str) -> None:
        self._subscriptions = list(subscriptions)
        self._context = node.context
        self._wake = GuardCondition(None, None, context=self._context)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping = True
        self._wake.trigger()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._wake.destroy()

    def _run(self) -> None:
        subs = self._subscriptions
        with ExitStack() as stack:
            for sub in subs:
                stack.enter_context(sub.handle)
            stack.enter_context(self._wake.handle)
            stack.enter_context(self._context.handle)
            wait_set = _rclpy.WaitSet(len(subs), 1, 0, 0, 0, 0, self._context.handle)
            while not self._stopping and self._context.ok():
                wait_set.clear_entities()
                for sub in subs:
                    wait_set.add_subscription(sub.handle)
                wait_set.add_guard_condition(self._wake.handle)
                wait_set.wait(WAIT_NS)  # bounded, so a context shut down under us is noticed
                if self._stopping:
                    return
                ready = wait_set.get_ready_entities("subscription")
                for sub in subs:
                    if sub.handle.pointer in ready:
                        self._take(sub)

    def _take(self, sub: Subscription) -> None:
        taken = sub.handle.take_message(sub.msg_type, sub.raw)
        if taken is None:
            return
        if sub._callback_type is Subscription.CallbackType.MessageOnly:
            sub.callback(taken[0])
        else:
            sub.callback(*taken)
