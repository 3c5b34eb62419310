"""Declaring a node's ROS parameters from one table of ``Param`` entries, with descriptors.

Each node lists its parameters once (name, default, description, optional range, read-only); this module
turns the table into ``declare_parameter`` calls with a ``ParameterDescriptor`` and reads the values
back into a plain frozen namespace, so the rest of the node never calls ``get_parameter`` by string.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node


@dataclass(frozen=True)
class Param:
    """One parameter: ``default`` fixes its type; ``low``/``high`` give an inclusive range for numbers.

    A ``rclpy.Parameter.Type`` as ``default`` declares a typed parameter without a default: its value
    is None unless an override sets it.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = True

    def descriptor(self) -> ParameterDescriptor:
        desc = ParameterDescriptor(description=self.description, read_only=self.read_only)
        if self.low is not None and self.high is not None:
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                desc.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=0)]
            elif isinstance(self.default, float):
                desc.floating_point_range = [
                    FloatingPointRange(from_value=float(self.low), to_value=float(self.high))
                ]
        return desc


def declare_params(node: Node, table: tuple[Param, ...]) -> SimpleNamespace:
    """Declare every parameter of ``table`` on ``node`` and return their values by name.

    Values come from overrides (``--ros-args -p``, a parameter YAML) when given; ranges are enforced by
    rclpy, which raises ``InvalidParameterValueException`` naming the parameter.
    """
    node.declare_parameters("", [(p.name, p.default, p.descriptor()) for p in table])
    values = {p.name: _value(node, p.name) for p in table}
    return SimpleNamespace(**values)


def _value(node: Node, name: str) -> Any:
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:  # typed, no default, not set
        return None


def param_names(table: tuple[Param, ...]) -> set[str]:
    """The names a node declares (for checking parameter YAML files against the code)."""
    return {p.name for p in table}
