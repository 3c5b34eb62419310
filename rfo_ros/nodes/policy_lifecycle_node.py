"""The managed (lifecycle) policy node: the policy node's contract, driven by ROS 2 lifecycle transitions.

- ``configure``: load and check the model against the robot, create the interfaces and warm up the
  execution provider with one inference. A missing, corrupt or mismatched model fails the transition
  cleanly (back to *unconfigured*, nothing left behind; fix it and configure again). A model that loads
  but cannot infer (a non-finite warm-up chunk) takes the *error* transition.
- ``activate``: commanding starts (plans and ``joint_commands``, as the plain node from its start).
- ``deactivate``: commanding stops after one hold command (the last safe one); inputs keep arriving, so
  a later ``activate`` plans from fresh state at once.
- ``cleanup`` / ``shutdown`` / ``error``: the hold command if one was ever sent, then every subscription,
  publisher, timer and the model are released.

Its default name is ``policy_node``, so the parameter YAML's ``policy_node`` section applies to it.
``ros2 lifecycle set /policy_node configure`` (then ``activate``) drives it by hand; the launch file
(``lifecycle:=true``) and ``python -m rfo_ros.bringup quadruped --lifecycle`` drive it to active.
"""

from __future__ import annotations

import sys

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from rfo_ros.nodes.policy_ports import PolicyNodeError, PolicyPorts
from rfo_ros.nodes.spin import run_node
from rfo_ros.runtime import InferenceError


class PolicyLifecycleNode(LifecycleNode):
    """The policy node as a managed node; see the module docstring for the transitions."""

    def __init__(self, node_name: str = "policy_node", **node_kwargs) -> None:
        super().__init__(node_name, **node_kwargs)
        #: Why the last ``configure`` failed (None after a success), for callers driving the transitions.
        self.configure_error: str | None = None
        self.ports: PolicyPorts | None = None
        try:
            self.ports = PolicyPorts(self)
            self.params = self.ports.params  # the declared values, as every node of this package has
        except Exception:
            super().destroy_node()
            raise

    @property
    def lifecycle_state(self) -> str:
        """The current state's label: "unconfigured", "inactive", "active" or "finalized"."""
        return self._state_machine.current_state[1]

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.ports.setup(active=False)
        except PolicyNodeError as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self.ports.teardown()
            return TransitionCallbackReturn.FAILURE
        try:
            self._warm_up()
        except InferenceError as exc:
            self.configure_error = f"the model cannot infer: {exc}"
            self.get_logger().error(f"configure: {self.configure_error}")
            return TransitionCallbackReturn.ERROR
        self.configure_error = None
        return TransitionCallbackReturn.SUCCESS

    def _warm_up(self) -> None:
        """One inference on a neutral observation: first-call provider costs happen here, not at the
        first control step, and a model that cannot produce a finite chunk is caught before it commands."""
        controller = self.ports.controller
        meta = controller.metadata
        image = None if meta.image is None else np.zeros(meta.image.shape, dtype=np.float32)
        noise = None if meta.zero_noise else np.zeros((meta.chunk, meta.action_dim))
        controller.policy.infer(controller.observation(), noise=noise, image=image)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.ports.lock:
            self.ports.controller.restart()  # any plan and observation history from before is out of date
            self.ports.controller.active = True
        self.get_logger().info("active: commanding")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self.ports.lock:
            self.ports.controller.active = False
        self.ports.publish_hold()
        self.get_logger().info("inactive: holding the last command")
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> TransitionCallbackReturn:
        with self.ports.lock:
            if self.ports.controller is not None:
                self.ports.controller.active = False
        self.ports.publish_hold()
        self.ports.teardown()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._release()

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._release()

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error("error: releasing the model (configure again once it is fixed)")
        return self._release()

    def destroy_node(self) -> None:
        try:
            if self.ports is not None and self.ports.entities:
                self._release()
        finally:
            super().destroy_node()


def main(args=None) -> int:
    """``ros2 run rfo_ros policy_lifecycle_node``: a managed node, unconfigured until told otherwise."""
    return run_node(PolicyLifecycleNode, "policy_node", (PolicyNodeError,), args)


__all__ = ["PolicyLifecycleNode", "main"]

if __name__ == "__main__":
    sys.exit(main())
