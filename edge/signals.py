"""The value every vehicle-bus source (CAN, OBD-II) emits: one named signal with its unit and time.

A slotted frozen dataclass rather than a pydantic model on purpose: a CAN source may build thousands of
these per second on a Pi, and the values come from our own decoders (DBC scaling, python-OBD's pint
quantities), not from a peer, so there is nothing to validate. Convert at the edge of the contract
(e.g. into ``VehicleEvent.evidence``) where pydantic does validate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Health = Literal["starting", "ok", "bus_off", "disconnected", "stopped"]
"""A source's state as the agent reports it in ``DeviceStatus.health``."""


@dataclass(frozen=True, slots=True)
class SignalUpdate:
    """``name`` changed beyond its deadband, or its heartbeat interval passed.

    ``t`` is wall-clock seconds since the epoch when the value was observed (the CAN frame's receive
    timestamp, or the OBD reply's arrival); ``unit`` is ``""`` for a unitless signal.
    """

    name: str
    value: float
    unit: str
    t: float

    @property
    def at(self) -> datetime:
        """``t`` as an aware datetime, for messages of the contract."""
        return datetime.fromtimestamp(self.t, UTC)


class Deadband:
    """Report-on-change with a heartbeat, for one signal.

    A value is reported when it moved more than ``deadband`` from the last *reported* value (so a slow
    drift is reported once it adds up), when ``max_interval_s`` passed since the last report (so the
    receiver can tell "unchanged" from "silent"), and always the first time.
    """

    __slots__ = ("deadband", "last_t", "last_value", "max_interval_s")

    def __init__(self, *, deadband: float, max_interval_s: float) -> None:
        self.deadband = deadband
        self.max_interval_s = max_interval_s
        self.last_value: float | None = None
        self.last_t = 0.0

    def offer(self, value: float, t: float) -> bool:
        """Whether ``value`` observed at ``t`` should be reported; remembers it if so."""
        last = self.last_value
        if (
            last is None
            or abs(value - last) > self.deadband
            or t - self.last_t >= self.max_interval_s
            or t < self.last_t  # the clock stepped back: do not stay silent until it catches up
        ):
            self.last_value = value
            self.last_t = t
            return True
        return False

    def due(self, t: float) -> bool:
        """Whether a heartbeat is due at ``t`` even if the value did not change."""
        return self.last_value is None or t - self.last_t >= self.max_interval_s or t < self.last_t
