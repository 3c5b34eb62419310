"""Outgoing messages serialized once, whose numbers are then rewritten in the serialized bytes.

rclpy converts a Python message to its C form on every ``publish``: for an 8-point ``JointTrajectory``
that is tens of microseconds per control step, more than the controller's own work. The policy node's
outgoing messages never change shape (C points of m positions, m commands), so they are serialized once,
the bytes of each float64 field and of the header stamp are located (by writing marker values and
finding them), and each publish writes the new numbers through numpy views and sends the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rclpy.serialization import serialize_message

_STAMP = np.array([0x5A17C0DE, 0x3C0FFEE5], dtype=np.uint32)  # marker (sec, nanosec)


class SerializedMessage:
    """``msg`` as CDR bytes with writable views: ``rows`` (n, k) float64 on the n given float64 fields
    (each a numpy view of length k on the message, see ``ros_conversions.float_field_view``) and, with
    ``header``, the stamp. ``payload()`` is what ``Publisher.publish`` takes.

    Raises ``ValueError`` when a field cannot be found once in the bytes (so a caller can publish the
    message itself instead).
    """

    def __init__(self, msg, fields: Sequence[np.ndarray], header=None) -> None:
        n, k = len(fields), len(fields[0])
        markers = 1e5 + np.arange(n * k, dtype=np.float64).reshape(n, k) / 7  # distinct, exact in bytes
        for view, marker in zip(fields, markers, strict=True):
            view[:] = marker
        if header is not None:
            header.stamp.sec, header.stamp.nanosec = int(_STAMP[0]), int(_STAMP[1])
        self._buffer = bytearray(serialize_message(msg))
        for view in fields:
            view[:] = 0.0
        offsets = [_find(self._buffer, marker.tobytes()) for marker in markers]
        stride = offsets[1] - offsets[0] if n > 1 else 8 * k
        if any(b - a != stride for a, b in zip(offsets, offsets[1:], strict=False)):
            raise ValueError("the fields are not evenly spaced in the serialized message")
        self.rows = np.ndarray(
            (n, k), np.float64, buffer=self._buffer, offset=offsets[0], strides=(stride, 8)
        )
        self.rows[:] = 0.0
        self._stamp = None
        if header is not None:
            at = _find(self._buffer, _STAMP.tobytes())
            self._stamp = np.ndarray(2, np.uint32, buffer=self._buffer, offset=at)
            self._stamp[:] = 0
            header.stamp.sec, header.stamp.nanosec = 0, 0

    def set_stamp(self, stamp) -> None:
        """Write a ``builtin_interfaces/Time`` into the header."""
        self._stamp[0], self._stamp[1] = stamp.sec, stamp.nanosec

    def payload(self) -> bytes:
        """The serialized message as it stands."""
        return bytes(self._buffer)


def _find(buffer: bytearray, pattern: bytes) -> int:
    at = buffer.find(pattern)
    if at < 0 or buffer.find(pattern, at + 1) >= 0:
        raise ValueError("a marker is not found exactly once in the serialized message")
    return at
