"""Idling: the engine runs (RPM above ``rpm_above``, from CAN or OBD-II) while the van stands still.

Needs the vehicle bus: GNSS alone cannot tell a running engine from a parked van. The episode starts
when both hold and ends when either stops holding (the engine stops or the van moves off); the event
is sent then, with the duration, if that exceeded ``after_s``. Engine and speed samples may come from
different feeds (CAN RPM with GNSS speed): their times are both UTC (GNSS time, and the Pi's clock
that gpsd or NTP keeps), and a sample older than the newest already seen only updates the state.
A source that falls silent leaves its last state standing until it speaks again (the CAN and OBD
sources' heartbeats make that seconds, unless the source itself is gone, which the status shows).
"""

from __future__ import annotations

from collections import Counter

from edge.driving.events import DrivingEvent, r
from edge.driving.settings import IdlingSettings


class Idling:
    """Pure: feed RPM and speed samples as they come, get events back."""

    def __init__(self, *, settings: IdlingSettings) -> None:
        self._s = settings
        self._engine_on: bool | None = None
        self._stationary: bool | None = None
        self._since: float | None = None
        self._now = float("-inf")
        self._rpm = 0.0
        self.counters: Counter[str] = Counter()

    @property
    def idling_since(self) -> float | None:
        """When the current idle began (engine on and standing), or ``None``."""
        return self._since

    def offer_rpm(self, *, t: float, rpm: float) -> list[DrivingEvent]:
        on = rpm > self._s.rpm_above
        if on:
            self._rpm = rpm
        self._engine_on = on
        return self._update(t)

    def offer_speed(self, *, t: float, speed_mps: float) -> list[DrivingEvent]:
        self._stationary = speed_mps < self._s.stationary_below_mps
        return self._update(t)

    def _update(self, t: float) -> list[DrivingEvent]:
        self._now = max(self._now, t)
        both = bool(self._engine_on and self._stationary)
        if both and self._since is None:
            self._since = self._now
        elif not both and self._since is not None:
            since, self._since = self._since, None
            duration = self._now - since
            if duration > self._s.after_s:
                self.counters["idling"] += 1
                return [
                    DrivingEvent(
                        kind="idling",
                        t=since,
                        evidence={
                            "duration_s": r(duration, 1),
                            "threshold_s": self._s.after_s,
                            "rpm": r(self._rpm, 0),
                            "ended_by": "moving" if self._engine_on else "engine_off",
                        },
                    )
                ]
        return []
