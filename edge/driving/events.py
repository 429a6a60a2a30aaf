"""What a detector reports: one driving event, with the evidence a fleet manager (or a dispute) needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.messages import Evidence, Position


@dataclass(frozen=True, slots=True)
class DrivingEvent:
    """``kind`` is a :class:`~protocol.messages.VehicleEvent` kind (``harsh_braking``, ``overspeed``,
    ...); ``t`` (seconds since the epoch, the samples' own time) is when the episode *began*.

    ``evidence`` always holds the thresholds that were crossed next to the measured values, so an
    event stays interpretable after the fleet changes its settings. ``position`` is the last good
    fix when the event was detected (``None`` before the first one); the monitor fills it in.
    """

    kind: str
    t: float
    evidence: Evidence = field(default_factory=dict)
    position: Position | None = None


def r(x: float, digits: int = 2) -> float:
    """Evidence values are rounded: three significant decimals of a noisy sensor are noise."""
    return round(x, digits)
