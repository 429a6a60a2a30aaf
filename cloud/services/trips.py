"""Trips, stops and distance, derived from one vehicle's positions and, when it has any, ignition.

Pure functions over rows: no database, no clock, no settings lookup. :func:`analyse` is the one
entry point; the API feeds it a window of positions read in one indexed range scan.

The rules (:class:`TripRules`, set in the hub's settings):

- A **stop** is the van staying within ``stop_radius_m`` of where it halted for at least
  ``stop_min_s`` (stay-point detection). A GNSS gap while the van stays put is part of the stop:
  the fixes on both sides are within the radius, whatever the time between them.
- When the vehicle reports ignition (``ignition_on`` / ``ignition_off`` vehicle events), an
  ignition-off period is a stop too, wherever the fixes drift and even when there are none (a Pi
  that sleeps with the engine): engine off is the driver saying "parked", which GNSS drift in a
  street canyon cannot. It obeys the same ``stop_min_s``, so a start-stop engine cutting out at a
  light is not a stop. Without ignition events the motion rule alone decides.
- A **trip** is what lies between two stops: from the last fix of one stop to the first fix of the
  next (so leaving and reaching the kerb count). A GNSS gap longer than ``gap_split_s`` across
  which the van moved more than ``stop_radius_m`` splits a trip in two: nobody knows where it went
  meanwhile. Shorter gaps are bridged in a straight line. A "trip" shorter than ``stop_radius_m``
  is shuffling on the spot, not a trip, and is dropped.
- **Distance** follows the fixes (great-circle) but only counts a step once the van is at least
  ``jitter_m`` from the last counted fix, so a receiver wandering around a standing van adds
  nothing, while slow driving still adds up (it is sampled every ``jitter_m``).

Cost: one pass over the fixes plus the stay-point scan, which looks ahead only while the van stays
inside the radius: O(n) for driving and parking, O(n x points within the radius) for crawling.
The tests every fix needs (is the van still near here ``stop_min_s`` later? is there a long gap
before it?) run as numpy array operations; Python loops visit only the fixes that pass them. Those
array operations are the same IEEE operations as the scalar code (subtraction, products,
comparisons; cosines come from :func:`math.cos`), so the results are bit for bit the same.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG); the error against WGS-84 is below 0.5 %


class TripRules(BaseModel):
    """How stops, trips and distance are cut out of a track (the ``trips`` hub setting)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stop_min_s: float = Field(
        default=300.0, gt=0, description="a stop lasts at least this long (N minutes)"
    )
    stop_radius_m: float = Field(
        default=50.0,
        gt=0,
        description="a stopped van stays within this distance of where it halted",
    )
    gap_split_s: float = Field(
        default=600.0,
        gt=0,
        description="a GNSS gap longer than this (M minutes), moving across it, splits a trip",
    )
    jitter_m: float = Field(
        default=10.0, ge=0, description="steps shorter than this are receiver noise, not distance"
    )


class TrackPoint(NamedTuple):
    """One fix: a tuple, because a day's track is tens of thousands of them."""

    t: datetime
    lat: float
    lon: float


class IgnitionChange(NamedTuple):
    at: datetime
    on: bool


class TripEnd(StrEnum):
    STOP = "stop"
    IGNITION_OFF = "ignition_off"
    GAP = "gap"
    END_OF_TRACK = "end_of_track"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    start: datetime
    end: datetime
    lat: float
    lon: float
    points: int
    ignition_off: bool  # at least part of it with the engine off

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Trip:
    start: datetime
    end: datetime
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: float
    points: int
    ended_by: TripEnd

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Journey:
    """What :func:`analyse` found: trips and stops in time order, and the distance driven."""

    trips: tuple[Trip, ...]
    stops: tuple[Stop, ...]
    gaps: int  # GNSS gaps while moving, longer than gap_split_s: each splits a trip

    @property
    def distance_m(self) -> float:
        return sum(t.distance_m for t in self.trips)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def path_distance_m(points: Sequence[TrackPoint], *, jitter_m: float) -> float:
    """Length of a path of fixes, counting a step only once it reaches ``jitter_m``.

    The last fix is always reached (the residual below ``jitter_m`` is added), so a path's length
    does not depend on where the sampling happened to fall.
    """
    lat = [math.radians(p.lat) for p in points]
    lon = [math.radians(p.lon) for p in points]
    return _path_m(lat, lon, 0, len(points) - 1, jitter_m=jitter_m)


_LONG_STEP = (1000.0 / EARTH_RADIUS_M) ** 2


def _path_m(lat: list[float], lon: list[float], first: int, last: int, *, jitter_m: float) -> float:
    """:func:`path_distance_m` over fixes ``first..last`` given in radians.

    Steps are equirectangular (they differ from the haversine by less than a millimetre per
    kilometre at a track's steps, for a third of the cost); a step beyond 1 km (a bridged gap) is a
    haversine. This loop is most of the cost of a day's analysis, hence the inlining.
    """
    if last <= first:
        return 0.0
    threshold = (jitter_m / EARTH_RADIUS_M) ** 2
    cos, sqrt = math.cos, math.sqrt
    total = 0.0
    a_lat, a_lon = lat[first], lon[first]
    d2 = 0.0
    for i in range(first + 1, last + 1):
        la, lo = lat[i], lon[i]
        dy = la - a_lat
        dx = (lo - a_lon) * cos((la + a_lat) * 0.5)
        d2 = dx * dx + dy * dy
        if d2 >= threshold:
            total += _haversine_rad(a_lat, a_lon, la, lo) if d2 > _LONG_STEP else sqrt(d2)
            a_lat, a_lon = la, lo
    if d2 < threshold:  # the residual to the last fix
        total += sqrt(d2)
    return total * EARTH_RADIUS_M


def _haversine_rad(p1: float, l1: float, p2: float, l2: float) -> float:
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class Track:
    """A track as columns, in strictly increasing time: what the loops read, and what a database
    can hand over without building a Python object per fix.

    ``ts`` are POSIX seconds, ``lat``/``lon`` degrees. Build one with :meth:`of_points` (any
    order, duplicates dropped) or :meth:`of_columns` (columns, ordered as a query returns them).
    """

    ts: list[float]
    lat: list[float]
    lon: list[float]

    @classmethod
    def of_points(cls, points: Iterable[TrackPoint]) -> Track:
        """Raises ValueError for a naive datetime."""
        by_time: dict[datetime, TrackPoint] = {}
        for p in points:
            if p.t.tzinfo is None:
                raise ValueError(f"naive datetime {p.t!r} in a track")
            by_time.setdefault(p.t, p)
        ordered = [by_time[t] for t in sorted(by_time)]
        return cls(
            ts=[p.t.timestamp() for p in ordered],
            lat=[p.lat for p in ordered],
            lon=[p.lon for p in ordered],
        )

    @classmethod
    def of_columns(
        cls, *, ts: Sequence[float], lat: Sequence[float], lon: Sequence[float]
    ) -> Track:
        """Columns in any order; a repeated time keeps its first fix (one fix stored twice).

        Raises ValueError unless the columns have one length.
        """
        if not len(ts) == len(lat) == len(lon):
            raise ValueError(f"columns of {len(ts)}, {len(lat)} and {len(lon)} values")
        times = np.asarray(ts, dtype=np.float64)
        if bool(np.all(times[1:] > times[:-1])):
            return cls(ts=list(ts), lat=list(lat), lon=list(lon))
        first: dict[float, int] = {}
        for i, t in enumerate(ts):
            first.setdefault(t, i)
        order = [first[t] for t in sorted(first)]
        return cls(
            ts=[ts[i] for i in order], lat=[lat[i] for i in order], lon=[lon[i] for i in order]
        )

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True, slots=True)
class _Fixes:
    """A track with the radians the loops need, computed once."""

    track: Track
    ts: list[float]
    lat: list[float]  # radians
    lon: list[float]
    ts_a: npt.NDArray[np.float64]  # the same, as arrays for the per-fix tests
    lat_a: npt.NDArray[np.float64]
    lon_a: npt.NDArray[np.float64]


@dataclass(slots=True)
class _Span:
    """A stop in the making: fixes ``first..last`` (indices) and its times."""

    first: int
    last: int
    start: float
    end: float
    ignition: bool


def analyse(
    points: Iterable[TrackPoint] | Track,
    *,
    rules: TripRules,
    ignition: Sequence[IgnitionChange] = (),
    ignition_on_at_start: bool | None = None,
) -> Journey:
    """Trips and stops of one vehicle's fixes: points in any order (duplicates of one time count
    once), or a :class:`Track`.

    ``ignition`` are the ignition changes within the fixes' time range, and
    ``ignition_on_at_start`` the state before the first of them (from the last change before the
    window); both empty/None means the vehicle reports no ignition and motion alone decides.
    Raises ValueError for naive datetimes.
    """
    track = points if isinstance(points, Track) else Track.of_points(points)
    if not track:
        return Journey(trips=(), stops=(), gaps=0)
    ts = track.ts
    rad = math.pi / 180  # a product, not a call per value: math.radians computes the same
    lat_a = np.asarray(track.lat, dtype=np.float64) * rad
    lon_a = np.asarray(track.lon, dtype=np.float64) * rad
    fixes = _Fixes(
        track=track,
        ts=ts,
        lat=lat_a.tolist(),
        lon=lon_a.tolist(),
        ts_a=np.asarray(ts, dtype=np.float64),
        lat_a=lat_a,
        lon_a=lon_a,
    )
    offs = _ignition_off(ts, sorted(ignition), ignition_on_at_start)
    # With ignition known, the engine decides where a stop begins and ends; motion adds only the
    # stops with the engine running (idling at a drop), outside the off periods.
    stays = [piece for s in _stays(fixes, rules) for piece in _outside(s, offs, ts)]
    stays = [s for s in stays if s.end - s.start >= rules.stop_min_s]
    stops = [s for s in _merged(stays + offs) if s.end - s.start >= rules.stop_min_s]
    trips, gaps = _trips_between(fixes, stops, rules)
    return Journey(trips=tuple(trips), stops=tuple(_stop(fixes, s) for s in stops), gaps=gaps)


def _stays(fixes: _Fixes, rules: TripRules) -> list[_Span]:
    """Stay points: from each fix, look ahead while within the radius; long enough is a stay.

    A stay found from its first fix is then extended while fixes stay within the radius of its
    running centroid (the first fix may be one of the last metres of the approach, and noise around
    the real spot would otherwise cut one stop in two), and trimmed at both ends of fixes farther
    than half the radius from the centroid (the approach and the departure belong to trips). A fix
    is first tested against the fix ``stop_min_s`` later: while driving, that one test rules it out.
    The radius test is equirectangular: exact to well under a metre at stop radii.
    """
    ts, lat, lon = fixes.ts, fixes.lat, fixes.lon
    n = len(ts)
    limit = (rules.stop_radius_m / EARTH_RADIUS_M) ** 2
    min_s = rules.stop_min_s
    cos = math.cos

    def far(a_lat: float, a_lon: float, j: int, lim: float) -> bool:
        dy, dx = lat[j] - a_lat, (lon[j] - a_lon) * cos(a_lat)
        return dx * dx + dy * dy > lim

    candidates = _maybe_stopped(fixes, min_s=min_s, limit=limit)
    out: list[_Span] = []
    i = 0
    while True:
        # Driving fixes (far from where the van is stop_min_s later) cannot start a stay: skip
        # to the next fix that may.
        c = bisect.bisect_left(candidates, i)
        if c == len(candidates):
            break
        i = candidates[c]
        t_i, la, lo = ts[i], lat[i], lon[i]
        j = i + 1
        while j < n and not far(la, lo, j, limit):
            j += 1
        if ts[j - 1] - t_i < min_s:
            i += 1
            continue
        sum_lat, sum_lon = sum(lat[i:j]), sum(lon[i:j])
        while j < n and not far(sum_lat / (j - i), sum_lon / (j - i), j, limit):
            sum_lat += lat[j]
            sum_lon += lon[j]
            j += 1
        c_lat, c_lon = sum_lat / (j - i), sum_lon / (j - i)
        first, last = i, j - 1
        while first < last and far(c_lat, c_lon, first, limit / 4):
            first += 1
        while last > first and far(c_lat, c_lon, last, limit / 4):
            last -= 1
        if ts[last] - ts[first] >= rules.stop_min_s:
            out.append(_Span(first, last, ts[first], ts[last], ignition=False))
            i = last + 1
        else:
            i += 1
    return out


def _maybe_stopped(fixes: _Fixes, *, min_s: float, limit: float) -> list[int]:
    """The fixes from which a stay may start: those within the radius (``limit``, squared
    radians) of the first fix at least ``min_s`` later, in index order (none without one)."""
    ts, lat, lon = fixes.ts_a, fixes.lat_a, fixes.lon_a
    n = len(ts)
    # k: the first fix with ts[k] - ts[i] >= min_s, exactly as a scalar walk finds it
    # (searchsorted on ts + min_s may be one off where that sum rounds).
    k = np.searchsorted(ts, ts + min_s, side="left")
    while True:
        up = (k < n) & (ts[np.minimum(k, n - 1)] - ts < min_s)
        if not up.any():
            break
        k = k + up
    while True:
        down = (k > 0) & (ts[np.maximum(k - 1, 0)] - ts >= min_s)
        if not down.any():
            break
        k = k - down
    within = np.flatnonzero(k < n)
    if len(within) == 0:
        return []
    head = int(within[-1]) + 1  # k only grows: from the first i without such a fix, none has one
    i, k = np.arange(head), k[:head]
    cos_lat = np.fromiter(map(math.cos, fixes.lat[:head]), dtype=np.float64, count=head)
    dy, dx = lat[k] - lat[i], (lon[k] - lon[i]) * cos_lat
    return [int(x) for x in np.flatnonzero(~(dx * dx + dy * dy > limit))]


def _ignition_off(
    ts: list[float], changes: Sequence[IgnitionChange], on_at_start: bool | None
) -> list[_Span]:
    """Ignition-off periods clipped to the track, as spans from the last fix at or before the
    engine went off to the first fix at or after it came on (none inside when the GNSS slept)."""
    if not changes and on_at_start is None:
        return []
    on = on_at_start if on_at_start is not None else not changes[0].on
    periods: list[tuple[float, float]] = []
    off_since: float | None = None if on else ts[0]
    for change in changes:
        at = change.at.timestamp()
        if change.on and off_since is not None:
            periods.append((off_since, at))
            off_since = None
        elif not change.on and off_since is None:
            off_since = at
    if off_since is not None:
        periods.append((off_since, ts[-1]))
    out: list[_Span] = []
    for a, b in periods:
        start, end = max(a, ts[0]), min(b, ts[-1])
        if end <= start:
            continue
        first = max(0, bisect.bisect_right(ts, start) - 1)
        last = min(len(ts) - 1, bisect.bisect_left(ts, end))
        out.append(_Span(first, last, start, end, ignition=True))
    return out


def _outside(span: _Span, offs: list[_Span], ts: list[float]) -> list[_Span]:
    """The parts of a motion stay outside every ignition-off period, as spans of their fixes."""
    pieces = [(span.start, span.end)]
    for off in offs:
        pieces = [
            part
            for a, b in pieces
            for part in ((a, min(b, off.start)), (max(a, off.end), b))
            if part[1] > part[0]
        ]
    out: list[_Span] = []
    for a, b in pieces:
        first, last = bisect.bisect_left(ts, a), bisect.bisect_right(ts, b) - 1
        if first <= last:
            out.append(_Span(first, last, ts[first], ts[last], ignition=False))
    return out


def _merged(spans: list[_Span]) -> list[_Span]:
    """Overlapping spans (a parked van seen both by motion and by ignition) become one."""
    out: list[_Span] = []
    for s in sorted(spans, key=lambda s: (s.first, s.last)):
        if out and s.first <= out[-1].last:
            cur = out[-1]
            cur.last = max(cur.last, s.last)
            cur.start, cur.end = min(cur.start, s.start), max(cur.end, s.end)
            cur.ignition = cur.ignition or s.ignition
        else:
            out.append(_Span(s.first, s.last, s.start, s.end, s.ignition))
    return out


def _trips_between(fixes: _Fixes, stops: list[_Span], rules: TripRules) -> tuple[list[Trip], int]:
    """Trips over the fixes from the end of each stop (or the track's start) to the next stop's
    first fix (or the track's end), split where the van moved across a long gap."""
    segments: list[tuple[int, int, _Span | None]] = []
    begin = 0
    for s in stops:
        segments.append((begin, s.first, s))
        begin = s.last
    track = fixes.track
    segments.append((begin, len(track) - 1, None))
    # Fixes after a GNSS gap longer than gap_split_s: the only places a trip may split.
    long_gaps = (np.flatnonzero(np.diff(fixes.ts_a) > rules.gap_split_s) + 1).tolist()
    trips: list[Trip] = []
    gaps = 0
    for begin, end, nxt in segments:
        piece_start = begin
        lo = bisect.bisect_right(long_gaps, begin)
        hi = bisect.bisect_right(long_gaps, end)
        for i in long_gaps[lo:hi]:
            if _moved(fixes, i - 1, i, rules):
                gaps += 1
                trips += _trip(fixes, piece_start, i - 1, TripEnd.GAP, rules)
                piece_start = i
        if nxt is None:
            ended_by = TripEnd.END_OF_TRACK
        else:
            ended_by = TripEnd.IGNITION_OFF if nxt.ignition else TripEnd.STOP
        trips += _trip(fixes, piece_start, end, ended_by, rules)
    return trips, gaps


def _moved(fixes: _Fixes, a: int, b: int, rules: TripRules) -> bool:
    lat, lon = fixes.lat, fixes.lon
    moved = EARTH_RADIUS_M * _haversine_rad(lat[a], lon[a], lat[b], lon[b])
    return moved > rules.stop_radius_m


def _trip(
    fixes: _Fixes,
    first: int,
    last: int,
    ended_by: TripEnd,
    rules: TripRules,
) -> list[Trip]:
    if last <= first:
        return []
    distance = _path_m(fixes.lat, fixes.lon, first, last, jitter_m=rules.jitter_m)
    if distance < rules.stop_radius_m:
        return []
    track = fixes.track
    return [
        Trip(
            start=_utc(track.ts[first]),
            end=_utc(track.ts[last]),
            start_lat=track.lat[first],
            start_lon=track.lon[first],
            end_lat=track.lat[last],
            end_lon=track.lon[last],
            distance_m=distance,
            points=last - first + 1,
            ended_by=ended_by,
        )
    ]


def _stop(fixes: _Fixes, s: _Span) -> Stop:
    track = fixes.track
    first, end = bisect.bisect_left(track.ts, s.start), bisect.bisect_right(track.ts, s.end)
    where = slice(first, end) if end > first else slice(s.first, s.first + 1)
    lats, lons = track.lat[where], track.lon[where]
    return Stop(
        start=_utc(s.start),
        end=_utc(s.end),
        lat=sum(lats) / len(lats),
        lon=sum(lons) / len(lons),
        points=end - first,
        ignition_off=s.ignition,
    )


def _utc(timestamp: float) -> datetime:
    """Back from POSIX seconds, rounded to the microsecond a timestamp column holds."""
    return datetime.fromtimestamp(round(timestamp, 6), UTC)
