"""A simulated receiver in a delivery van driving a street grid. It ships, because the demo and the
tests need a van that moves like one.

The van follows blocks of 80-180 m, turns at intersections (biased back towards its depot when it
strays), accelerates at ~1.5 m/s^2, brakes at ~2.5 m/s^2 for corners (to ~4 m/s) and stops, cruises at
30-50 km/h, waits at traffic lights, and dwells 20-90 s at delivery stops. Reported fixes carry a
little noise, as a real receiver's do, plus HDOP and a satellite count.

So the demo shows driving events, the driver has habits (drawn from their own random stream, so the
street grid of a seed is the same up to the first of them): now and then a block is a long arterial
road taken at 94-101 km/h (``overspeed``), and now and then the van brakes late and hard, at
4-5 m/s^2, for a light or a stop (``harsh_braking``).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.gnss.health import GnssState, HealthCell, SourceHealth
from protocol.messages import Position

EARTH_M_PER_DEG = 111_320.0
ACCEL = 1.5
DECEL = 2.5
CORNER_SPEED = 4.0
ARTERIAL_P = 0.06  # share of blocks that are an arterial road, taken too fast
ARTERIAL_LENGTH = 6.0  # times a street block
ARTERIAL_SPEED = (26.0, 28.0)  # m/s: 94-101 km/h
HARD_BRAKE_P = 0.2  # share of lights and stops braked for late
HARD_DECEL = (4.0, 5.0)

WaypointKind = Literal["straight", "turn", "light", "stop"]


class SimGnssSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    origin_lat: float = Field(default=52.3702, ge=-85, le=85)
    origin_lon: float = Field(default=4.8952, ge=-180, le=180)
    seed: int = 0
    interval_s: float = Field(default=1.0, gt=0, description="Simulated seconds between fixes.")
    time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="Simulated seconds per real second (tests run fast).",
    )
    noise_m: float = Field(default=1.5, ge=0)
    route_dwell_s: float | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="Seconds the van stands at each stop of a dispatched route; None: 40-90 s at "
        "random. The demo holds one van up for minutes, so it really falls behind its plan.",
    )


@dataclass(frozen=True, slots=True)
class _Waypoint:
    x: float
    y: float
    kind: WaypointKind
    dwell_s: float = 0.0
    cruise: float | None = None  # the speed to approach it at, if not the van's usual
    decel: float = DECEL


def _streets(
    rng: random.Random, max_radius_m: float = 2500.0, *, habits: random.Random | None = None
) -> Iterator[_Waypoint]:
    """Endless intersections of a street grid, each labelled with what the van does there."""
    x = y = 0.0
    dx, dy = 0, 1  # start heading north
    blocks_since_stop = 0
    while True:
        length = rng.uniform(80, 180)
        fast = habits is not None and habits.random() < ARTERIAL_P
        if fast:
            length *= ARTERIAL_LENGTH
        cruise = habits.uniform(*ARTERIAL_SPEED) if habits is not None and fast else None
        x, y = x + dx * length, y + dy * length
        blocks_since_stop += 1
        if blocks_since_stop >= rng.randint(2, 6):
            blocks_since_stop = 0
            yield _Waypoint(x, y, "stop", rng.uniform(20, 90), cruise, _decel(habits))
            cruise = None
        elif rng.random() < 0.15:
            yield _Waypoint(x, y, "light", rng.uniform(10, 40), cruise, _decel(habits))
            cruise = None
        # Choose the next direction; head home when far out.
        options = [(dx, dy), (-dy, dx), (dy, -dx)]
        if math.hypot(x, y) > max_radius_m:
            options.sort(key=lambda d: (x + d[0] * 100) ** 2 + (y + d[1] * 100) ** 2)
            ndx, ndy = options[0]
        else:
            ndx, ndy = rng.choices(options, weights=[0.5, 0.25, 0.25])[0]
        if (ndx, ndy) != (dx, dy):
            yield _Waypoint(x, y, "turn", cruise=cruise)
        elif blocks_since_stop or cruise is not None:
            yield _Waypoint(x, y, "straight", cruise=cruise)
        dx, dy = ndx, ndy


def _decel(habits: random.Random | None) -> float:
    """How hard the driver brakes for the next light or stop."""
    if habits is None or habits.random() >= HARD_BRAKE_P:
        return DECEL
    return habits.uniform(*HARD_DECEL)


class VanMotion:
    """The van's true state, advanced one step at a time; deterministic for a seed."""

    def __init__(self, *, seed: int, rng: random.Random | None = None, habits: bool = True) -> None:
        """``habits=False`` drives without the arterial speeding and the late hard braking."""
        self._rng = rng or random.Random(seed)
        self._route = _streets(self._rng, habits=random.Random(seed + 7919) if habits else None)
        self.x = self.y = 0.0
        self.speed = 0.0
        self.heading = 0.0
        self._cruise = self._rng.uniform(8.3, 13.9)
        self._target = next(self._route)
        self._dwell = 5.0  # start parked at the depot

    def step(self, dt: float) -> None:
        if self._dwell > 0:
            self._dwell -= dt
            self.speed = 0.0
            return
        wp = self._target
        dist = math.hypot(wp.x - self.x, wp.y - self.y)
        end_speed = {"straight": self._cruise, "turn": CORNER_SPEED, "light": 0.0, "stop": 0.0}[
            wp.kind
        ]
        # The fastest speed from which the van can still slow to end_speed by the waypoint, given that
        # it travels a whole step at that speed first (a discrete-time stopping distance).
        decel = wp.decel
        bd = decel * dt
        allowed = -bd + math.sqrt(bd * bd + end_speed**2 + 2 * decel * max(dist - 1.0, 0.0))
        goal = min(wp.cruise or self._cruise, allowed)
        if goal > self.speed:
            self.speed = min(goal, self.speed + ACCEL * dt)
        else:
            self.speed = max(goal, self.speed - decel * dt)
        if end_speed == 0.0 and dist < 3.0:
            self.speed = 0.0  # creep the last metres
            self.x, self.y = wp.x, wp.y
            self._arrive(wp)
            return
        travel = max(self.speed, 0.5 if end_speed == 0.0 else 0.0) * dt
        if dist > 0:
            self.heading = math.degrees(math.atan2(wp.x - self.x, wp.y - self.y)) % 360
        if travel >= dist:
            self.x, self.y = wp.x, wp.y
            self._arrive(wp)
        else:
            self.x += (wp.x - self.x) / dist * travel
            self.y += (wp.y - self.y) / dist * travel

    def _arrive(self, wp: _Waypoint) -> None:
        if wp.kind in ("light", "stop"):
            self._dwell = wp.dwell_s
            self.speed = 0.0
            self._cruise = self._rng.uniform(8.3, 13.9)
        self._target = next(self._route)

    def follow(self, targets: list[tuple[float, float]], *, dwell_s: float | None = None) -> None:
        """Drive to ``targets`` (metres east, north of the depot) from here, then roam again;
        stand ``dwell_s`` at each (None: 40-90 s)."""
        self._route = _follow_then_roam(targets, (self.x, self.y), self._rng, dwell_s=dwell_s)
        self._target = next(self._route)


class SimulatedGnss:
    """A :class:`~edge.gnss.source.GnssSource` backed by :class:`VanMotion`."""

    def __init__(self, settings: SimGnssSettings, *, start: datetime | None = None) -> None:
        self._s = settings
        self._motion = VanMotion(seed=settings.seed)
        self._noise = random.Random(settings.seed + 1)
        self._start = start
        self._health = HealthCell(SourceHealth(GnssState.OK))
        self._fixes = 0

    @property
    def health(self) -> SourceHealth:
        return self._health.value

    def health_changes(self) -> AsyncIterator[SourceHealth]:
        return self._health.changes()

    def counters(self) -> Mapping[str, int]:
        return {"fixes": self._fixes}

    def _fix(self, t: datetime) -> Position:
        m, s, n = self._motion, self._s, self._noise
        lat0 = s.origin_lat
        ex, ey = n.gauss(0, s.noise_m), n.gauss(0, s.noise_m)
        lat = lat0 + (m.y + ey) / EARTH_M_PER_DEG
        lon = s.origin_lon + (m.x + ex) / (EARTH_M_PER_DEG * math.cos(math.radians(lat0)))
        moving = m.speed > 0.3
        return Position(
            t=t,
            lat=round(lat, 7),
            lon=round(lon, 7),
            speed_mps=round(max(0.0, m.speed + n.gauss(0, 0.1)) if moving else 0.0, 2),
            heading_deg=round(m.heading, 1) % 360 if moving else None,
            alt_m=round(2.0 + n.gauss(0, 1.0), 1),
            hdop=round(n.uniform(0.7, 1.6), 2),
            sats=n.randint(7, 12),
            fix="3d",
        )

    def follow_route(self, stops: list[tuple[float, float]]) -> None:
        """Drive to ``stops`` (lat, lon) in order, then roam again: the demo's vans drive the
        route the hub dispatched, so the hub's geofence sees them arrive."""
        s = self._s
        k = EARTH_M_PER_DEG * math.cos(math.radians(s.origin_lat))
        self._motion.follow(
            [
                ((lon - s.origin_lon) * k, (lat - s.origin_lat) * EARTH_M_PER_DEG)
                for lat, lon in stops
            ],
            dwell_s=s.route_dwell_s,
        )

    async def fixes(self) -> AsyncIterator[Position]:
        s = self._s
        start = self._start or datetime.now(UTC)
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        k = 0
        while True:
            sim_elapsed = k * s.interval_s
            await asyncio.sleep(max(0.0, wall0 + sim_elapsed / s.time_scale - loop.time()))
            self._fixes += 1
            yield self._fix(start + timedelta(seconds=sim_elapsed))
            self._motion.step(s.interval_s)
            k += 1


def _to_stops(
    targets: list[tuple[float, float]], start: tuple[float, float], dwell_s: float
) -> Iterator[_Waypoint]:
    """Drive the grid to each target in turn (east-west first, then north-south, as a street
    grid allows), stop there, and come back to the depot."""
    x, y = start
    for tx, ty in [*targets, (0.0, 0.0)]:
        if abs(tx - x) > 1.0 and abs(ty - y) > 1.0:
            yield _Waypoint(tx, y, "turn")
        yield _Waypoint(tx, ty, "stop", dwell_s)
        x, y = tx, ty


def _follow_then_roam(
    targets: list[tuple[float, float]],
    start: tuple[float, float],
    rng: random.Random,
    *,
    dwell_s: float | None = None,
) -> Iterator[_Waypoint]:
    dwell = rng.uniform(40, 90)  # drawn even when overridden: the rest of the day stays the same
    yield from _to_stops(targets, start, dwell_s=dwell if dwell_s is None else dwell_s)
    yield from _streets(rng)
