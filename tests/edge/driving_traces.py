"""Generated drives with known answers: speed profiles, and the GNSS fixes a receiver would give."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from edge.driving import DrivingEvent, DrivingMonitor, DrivingSettings
from edge.signals import SignalUpdate
from protocol.messages import Position

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
M_PER_DEG = 111_320.0


def profile(*legs: tuple[float, float], v0: float = 0.0, dt: float = 1.0) -> list[float]:
    """Speeds every ``dt`` s for legs of ``(accel m/s^2, seconds)``, starting at ``v0``; never < 0."""
    speeds = [v0]
    v = v0
    for accel, seconds in legs:
        for _ in range(round(seconds / dt)):
            v = max(0.0, v + accel * dt)
            speeds.append(v)
    return speeds


def fixes(
    speeds: Sequence[float],
    *,
    dt: float = 1.0,
    headings: Sequence[float | None] | None = None,
    start: datetime = T0,
    hdop: float = 0.9,
    fix: Literal["2d", "3d"] = "3d",
) -> list[Position]:
    """A receiver's fixes for a van driving ``speeds`` (heading north unless ``headings`` say)."""
    out = []
    x = y = 0.0
    for k, v in enumerate(speeds):
        h = headings[k] if headings is not None else 0.0
        if h is not None:
            x += v * dt * math.sin(math.radians(h))
            y += v * dt * math.cos(math.radians(h))
        out.append(
            Position(
                t=start + timedelta(seconds=k * dt),
                lat=52.37 + y / M_PER_DEG,
                lon=4.89 + x / (M_PER_DEG * math.cos(math.radians(52.37))),
                speed_mps=round(v, 3),
                heading_deg=None if h is None else h % 360,
                hdop=hdop,
                sats=9,
                fix=fix,
            )
        )
    return out


def parked_with_noise(seconds: int, *, seed: int, walk_m: float = 0.3) -> list[Position]:
    """A parked van's receiver: the position random-walks (multipath), the speed reads a few tenths
    of a m/s and the course points anywhere, as real receivers do when standing still."""
    rng = random.Random(seed)
    x = y = 0.0
    out = []
    for k in range(seconds):
        x += rng.gauss(0, walk_m)
        y += rng.gauss(0, walk_m)
        out.append(
            Position(
                t=T0 + timedelta(seconds=k),
                lat=52.37 + y / M_PER_DEG,
                lon=4.89 + x / (M_PER_DEG * 0.61),
                speed_mps=round(abs(rng.gauss(0, 0.25)), 3),
                heading_deg=round(rng.uniform(0, 359.9), 1),
                hdop=round(rng.uniform(0.8, 3.0), 2),
                sats=rng.randint(5, 12),
                fix="3d",
            )
        )
    return out


def bus_speeds(
    speeds_mps: Sequence[float], *, dt: float, t0: float, unit: str = "mph", name: str = "SPEED"
) -> list[SignalUpdate]:
    """A vehicle bus's speed signal, quantised as the Prius DBC's 0.0062 mph."""
    factor = {"mph": 1 / 0.44704, "kph": 3.6, "m/s": 1.0}[unit]
    q = 0.0062 if unit == "mph" else 0.01
    return [
        SignalUpdate(name, round(v * factor / q) * q, unit, t0 + k * dt)
        for k, v in enumerate(speeds_mps)
    ]


Sample = Position | SignalUpdate


def merge(*streams: Iterable[Sample]) -> list[Sample]:
    """Fixes and bus updates in time order, as they would reach the agent."""
    every = [s for stream in streams for s in stream]
    return sorted(every, key=lambda s: s.t.timestamp() if isinstance(s, Position) else s.t)


def run(
    samples: Iterable[Sample],
    *,
    settings: DrivingSettings | None = None,
    infer_ignition: bool = False,
    monitor: DrivingMonitor | None = None,
) -> list[DrivingEvent]:
    """Feed samples through a monitor in order, as the agent would; return every event."""
    m = monitor or DrivingMonitor(
        settings=settings or DrivingSettings(), infer_ignition=infer_ignition
    )
    out: list[DrivingEvent] = []
    for s in samples:
        out += m.offer_fix(s) if isinstance(s, Position) else m.offer_signal(s)
    return out


def kinds(events: Iterable[DrivingEvent]) -> list[str]:
    return [e.kind for e in events]
