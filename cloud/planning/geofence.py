"""Arrival and departure at stops, detected from a van's position stream by geofence.

A van has *arrived* at a stop when ``confirm`` consecutive fixes fall within ``radius_m`` of it
(one fix inside could be GNSS jitter while driving past), and has *left* when ``confirm`` fixes
fall outside ``radius_m + hysteresis_m`` again (the hysteresis keeps a van parked at the edge from
flapping). Pure: feed fixes with :meth:`GeofenceDetector.update`, or wrap an async stream with
:func:`arrivals`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from cloud.planning.replan import VanPosition
from cloud.planning.travel import haversine_m


@dataclass(frozen=True, slots=True)
class GeofenceEvent:
    kind: Literal["arrived", "left"]
    van_id: str
    stop_id: str
    at: int


@dataclass
class _Track:
    inside: str | None = None
    candidate: str | None = None
    count: int = 0
    outside_count: int = 0
    visited: set[str] = field(default_factory=set)


class GeofenceDetector:
    """Stops by id -> (lat, lon); one detector follows any number of vans."""

    def __init__(
        self,
        *,
        stops: Mapping[str, tuple[float, float]],
        radius_m: float = 40.0,
        hysteresis_m: float = 20.0,
        confirm: int = 2,
    ) -> None:
        if radius_m <= 0 or hysteresis_m < 0 or confirm < 1:
            raise ValueError("radius_m > 0, hysteresis_m >= 0 and confirm >= 1 are required")
        self._stops = dict(stops)
        self.radius_m = radius_m
        self.hysteresis_m = hysteresis_m
        self.confirm = confirm
        self._tracks: dict[str, _Track] = {}

    def _nearest(self, location: tuple[float, float]) -> tuple[str | None, float]:
        best, best_d = None, float("inf")
        for sid, loc in self._stops.items():
            d = haversine_m(location, loc)
            if d < best_d:
                best, best_d = sid, d
        return best, best_d

    def update(self, fix: VanPosition) -> list[GeofenceEvent]:
        """Feed one fix; returns the events it completes (usually none)."""
        track = self._tracks.setdefault(fix.van_id, _Track())
        events: list[GeofenceEvent] = []
        if track.inside is not None:
            d = haversine_m(fix.location, self._stops[track.inside])
            if d > self.radius_m + self.hysteresis_m:
                track.outside_count += 1
                if track.outside_count >= self.confirm:
                    events.append(GeofenceEvent("left", fix.van_id, track.inside, fix.at))
                    track.inside, track.outside_count = None, 0
            else:
                track.outside_count = 0
            if track.inside is not None:
                return events
        sid, d = self._nearest(fix.location)
        if sid is None or d > self.radius_m:
            track.candidate, track.count = None, 0
            return events
        if sid != track.candidate:
            track.candidate, track.count = sid, 0
        track.count += 1
        if track.count >= self.confirm:
            track.inside, track.candidate, track.count = sid, None, 0
            track.visited.add(sid)
            events.append(GeofenceEvent("arrived", fix.van_id, sid, fix.at))
        return events


async def arrivals(
    detector: GeofenceDetector, fixes: AsyncIterable[VanPosition]
) -> AsyncIterator[GeofenceEvent]:
    """The events of a position stream, in order."""
    async for fix in fixes:
        for event in detector.update(fix):
            yield event
