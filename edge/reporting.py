"""Which fixes become reported points: the "smart" reporting of fleet trackers (Teltonika and kin).

A receiver gives a fix every second; sending all of them costs data and hub storage while saying little
more than a few well-chosen ones. A point is reported when, since the last reported point,

- ``interval_s`` has passed (a heartbeat, so a parked van is still seen), or
- the van moved ``distance_m``, or
- its heading changed by ``heading_deg`` (so corners keep their shape on the map), or
- its speed changed by ``speed_change_mps``.

Thresholds come in two profiles, ``stopped`` and ``moving``. A stopped receiver's position and heading
wander by metres and degrees, so the heading rule applies only to fixes faster than
``moving_above_mps``, and the default stopped profile has only a heartbeat. The van counts as moving
once a fix is faster than ``moving_above_mps``, and as stopped once fixes stayed below
``stopped_below_mps`` for ``stop_after_s`` (hysteresis, so creeping in traffic does not flap). Both
transitions are reported, so the map shows where a stop began and ended.

Time is the fixes' own time, not the wall clock: decisions are deterministic, and a simulator running
faster than real time is judged by simulated seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.messages import Position

EARTH_RADIUS_M = 6_371_000.0


class ReportProfile(BaseModel):
    """Thresholds for one motion state; ``None`` switches a rule off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(gt=0, description="Report at least this often.")
    distance_m: float | None = Field(default=None, gt=0)
    heading_deg: float | None = Field(default=None, gt=0, le=180)
    speed_change_mps: float | None = Field(default=None, gt=0)


class ReportingSettings(BaseModel):
    """Defaults suit a delivery van in town: a heartbeat every 5 minutes when parked; when moving at
    least every 5 s, plus every 100 m, every 10 degrees of turn and every 3 m/s (~11 km/h) of speed
    change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stopped: ReportProfile = ReportProfile(interval_s=300.0)
    moving: ReportProfile = ReportProfile(
        interval_s=5.0, distance_m=100.0, heading_deg=10.0, speed_change_mps=3.0
    )
    moving_above_mps: float = Field(default=2.0, gt=0, description="~7 km/h: walking pace is not.")
    stopped_below_mps: float = Field(default=1.0, ge=0)
    stop_after_s: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _hysteresis(self) -> ReportingSettings:
        if self.stopped_below_mps > self.moving_above_mps:
            raise ValueError("stopped_below_mps must not exceed moving_above_mps")
        return self


class Reason(StrEnum):
    FIRST = "first"
    FORCED = "forced"
    START = "start"
    STOP = "stop"
    INTERVAL = "interval"
    DISTANCE = "distance"
    HEADING = "heading"
    SPEED = "speed"


def distance_m(a: Position, b: Position) -> float:
    """Great-circle distance (haversine); exact enough at any range a van covers."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def heading_change_deg(a: float, b: float) -> float:
    """The smaller angle between two headings, 0..180 (350 to 10 is 20, not 340)."""
    d = abs(a - b) % 360
    return min(d, 360 - d)


class Reporter:
    """Decides, fix by fix, whether a fix is reported. Not thread-safe; one per source."""

    def __init__(self, *, settings: ReportingSettings) -> None:
        self._s = settings
        self._last: Position | None = None
        self._moving = False
        self._slow_since: datetime | None = None
        self._forced = False
        self.offered = 0
        self.reasons: Counter[Reason] = Counter()

    @property
    def moving(self) -> bool:
        return self._moving

    @property
    def profile(self) -> ReportProfile:
        return self._s.moving if self._moving else self._s.stopped

    @property
    def settings(self) -> ReportingSettings:
        """The thresholds in force (a remote command or a settings reload may change them)."""
        return self._s

    def reconfigure(self, settings: ReportingSettings) -> None:
        """Judge fixes by ``settings`` from the next one on. The motion state and the last reported
        point are kept, so a change of thresholds does not cause a burst of points."""
        self._s = settings

    def force(self) -> None:
        """Report the next fix whatever the thresholds say (a driving event wants its place on the map)."""
        self._forced = True

    def offer(self, fix: Position) -> Reason | None:
        """Return why ``fix`` should be reported, or None to drop it."""
        self.offered += 1
        transition = self._update_motion(fix)
        reason = self._decide(fix, transition)
        if reason is not None:
            self._last = fix
            self._forced = False
            self.reasons[reason] += 1
        return reason

    def _update_motion(self, fix: Position) -> Reason | None:
        s, speed = self._s, fix.speed_mps
        if speed is None:
            return None  # no evidence either way: keep the state
        if not self._moving:
            if speed >= s.moving_above_mps:
                self._moving, self._slow_since = True, None
                return Reason.START
            return None
        if speed >= s.stopped_below_mps:
            self._slow_since = None
            return None
        if self._slow_since is None:
            self._slow_since = fix.t
        if (fix.t - self._slow_since).total_seconds() >= s.stop_after_s:
            self._moving, self._slow_since = False, None
            return Reason.STOP
        return None

    def _decide(self, fix: Position, transition: Reason | None) -> Reason | None:
        last = self._last
        if self._forced:
            return Reason.FORCED
        if last is None:
            return Reason.FIRST
        if transition is not None:
            return transition
        p = self.profile
        elapsed = (fix.t - last.t).total_seconds()
        if elapsed >= p.interval_s or elapsed < 0:  # < 0: the clock jumped back; start afresh
            return Reason.INTERVAL
        if p.distance_m is not None and distance_m(last, fix) >= p.distance_m:
            return Reason.DISTANCE
        if (
            p.heading_deg is not None
            and fix.heading_deg is not None
            and last.heading_deg is not None
            and (fix.speed_mps or 0.0) >= self._s.moving_above_mps
            and heading_change_deg(fix.heading_deg, last.heading_deg) >= p.heading_deg
        ):
            return Reason.HEADING
        if (
            p.speed_change_mps is not None
            and fix.speed_mps is not None
            and last.speed_mps is not None
            and abs(fix.speed_mps - last.speed_mps) >= p.speed_change_mps
        ):
            return Reason.SPEED
        return None
