"""Tracks for the trip tests: generated ones whose trips and stops are known by construction, and
the real receiver logs of ``tests/data/nmea`` decoded by the van's own NMEA decoder."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cloud.services.trips import EARTH_RADIUS_M, TrackPoint
from edge.gnss.nmea import NmeaDecoder
from tests.edge.gnss_rigs import nmea_lines

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@dataclass
class TrackBuilder:
    """A van at 1 Hz: ``drive`` moves it in a straight line, ``park`` keeps it still, ``gap``
    lets time (and optionally the van) pass without fixes.

    Noise is what a receiver does: an error of ``noise_m`` (standard deviation per axis) that is
    correlated from one fix to the next (AR(1), ``correlation`` per second), since the satellites
    and the multipath change slowly; ``correlation=0`` is white noise, the worst case.
    """

    lat: float = 52.37
    lon: float = 4.89
    t: datetime = T0
    noise_m: float = 0.0
    correlation: float = 0.9
    rng: random.Random = field(default_factory=lambda: random.Random(5))
    points: list[TrackPoint] = field(default_factory=list)
    _err: tuple[float, float] = (0.0, 0.0)

    def _move(self, metres: float, heading_deg: float) -> None:
        h = math.radians(heading_deg)
        self.lat += math.degrees(metres * math.cos(h) / EARTH_RADIUS_M)
        self.lon += math.degrees(
            metres * math.sin(h) / (EARTH_RADIUS_M * math.cos(math.radians(self.lat)))
        )

    def _fix(self) -> None:
        rho = self.correlation
        fresh = math.sqrt(1 - rho * rho) * self.noise_m
        dn, de = (rho * e + self.rng.gauss(0, fresh) for e in self._err)
        if not self.points:
            dn, de = self.rng.gauss(0, self.noise_m), self.rng.gauss(0, self.noise_m)
        self._err = (dn, de)
        lat = self.lat + math.degrees(dn / EARTH_RADIUS_M)
        lon = self.lon + math.degrees(de / (EARTH_RADIUS_M * math.cos(math.radians(self.lat))))
        self.points.append(TrackPoint(self.t, lat, lon))

    def drive(self, seconds: int, *, speed_mps: float, heading_deg: float = 90.0) -> TrackBuilder:
        for _ in range(seconds):
            self.t += timedelta(seconds=1)
            self._move(speed_mps, heading_deg)
            self._fix()
        return self

    def park(self, seconds: int) -> TrackBuilder:
        for _ in range(seconds):
            self.t += timedelta(seconds=1)
            self._fix()
        return self

    def gap(self, seconds: int, *, metres: float = 0.0, heading_deg: float = 90.0) -> TrackBuilder:
        self.t += timedelta(seconds=seconds)
        self._move(metres, heading_deg)
        return self

    def start(self) -> TrackBuilder:
        self._fix()
        return self


def recorded_track(log: str) -> list[TrackPoint]:
    """The fixes of one receiver log, as the van would have sent them."""
    decoder = NmeaDecoder()
    fixes = decoder.feed(b"\r\n".join(nmea_lines(log)) + b"\r\n") + decoder.flush()
    return [TrackPoint(f.t, f.lat, f.lon) for f in fixes]


def recorded_speeds(log: str) -> list[tuple[datetime, float | None]]:
    decoder = NmeaDecoder()
    fixes = decoder.feed(b"\r\n".join(nmea_lines(log)) + b"\r\n") + decoder.flush()
    return [(f.t, f.speed_mps) for f in fixes]


def shifted(points: Iterable[TrackPoint], by: timedelta) -> list[TrackPoint]:
    return [TrackPoint(p.t + by, p.lat, p.lon) for p in points]
