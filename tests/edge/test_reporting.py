"""Smart reporting on generated traces: what a parked van, a corner and a stop look like."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from edge.gnss.sim import SimGnssSettings, SimulatedGnss
from edge.reporting import (
    Reason,
    Reporter,
    ReportingSettings,
    ReportProfile,
    distance_m,
    heading_change_deg,
)
from protocol.messages import Position

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
M_PER_DEG = 111_320.0
LAT0, LON0 = 52.37, 4.89


def _fix(s: float, x: float, y: float, speed: float, heading: float | None) -> Position:
    """A fix ``s`` seconds after T0 at (x east, y north) metres from the origin."""
    return Position(
        t=T0 + timedelta(seconds=s),
        lat=LAT0 + y / M_PER_DEG,
        lon=LON0 + x / (M_PER_DEG * math.cos(math.radians(LAT0))),
        speed_mps=speed,
        heading_deg=None if heading is None else heading % 360,
    )


def _run(reporter: Reporter, fixes: list[Position]) -> list[tuple[float, Reason]]:
    out = []
    for f in fixes:
        reason = reporter.offer(f)
        if reason is not None:
            out.append(((f.t - T0).total_seconds(), reason))
    return out


def _parked(seconds: int, *, seed: int = 1, start: float = 0) -> list[Position]:
    """GNSS noise of a parked van: +-3 m of wander, random headings at 0.2 m/s."""
    rng = random.Random(seed)
    return [
        _fix(start + s, rng.uniform(-3, 3), rng.uniform(-3, 3), 0.2, rng.uniform(0, 360))
        for s in range(seconds)
    ]


def test_a_parked_van_reports_only_its_heartbeat() -> None:
    reporter = Reporter(settings=ReportingSettings())
    reports = _run(reporter, _parked(1200))
    assert reports == [
        (0, Reason.FIRST),
        (300, Reason.INTERVAL),
        (600, Reason.INTERVAL),
        (900, Reason.INTERVAL),
    ]
    assert not reporter.moving


def test_gnss_jitter_never_triggers_distance_or_heading_even_with_a_moving_profile() -> None:
    """The harsher case: a 1 s stopped profile with distance and heading rules switched on."""
    tight = ReportProfile(interval_s=10_000, distance_m=10, heading_deg=5)
    reporter = Reporter(settings=ReportingSettings(stopped=tight, moving=tight))
    reports = _run(reporter, _parked(600, seed=7))
    assert reports == [(0, Reason.FIRST)]


def _drive(
    seconds: int, *, speed: float, heading: float, start: float = 0, x: float = 0, y: float = 0
) -> list[Position]:
    out = []
    for s in range(seconds):
        d = speed * s
        out.append(
            _fix(
                start + s,
                x + d * math.sin(math.radians(heading)),
                y + d * math.cos(math.radians(heading)),
                speed,
                heading,
            )
        )
    return out


def test_a_right_angle_turn_at_speed_triggers_exactly_one_heading_report() -> None:
    only_heading = ReportProfile(interval_s=10_000, heading_deg=10)
    reporter = Reporter(settings=ReportingSettings(moving=only_heading))
    north = _drive(8, speed=10, heading=0)
    east = _drive(8, speed=10, heading=90, start=8, y=80)
    reports = _run(reporter, north + east)
    assert reports == [(0, Reason.FIRST), (8, Reason.HEADING)]


def test_a_gentle_curve_is_reported_every_ten_degrees() -> None:
    only_heading = ReportProfile(interval_s=10_000, heading_deg=10)
    reporter = Reporter(settings=ReportingSettings(moving=only_heading))
    curve = [_fix(s, s * 8.0, 0, 8.0, s * 4.0) for s in range(24)]  # 4 degrees a second to 92
    reports = _run(reporter, curve)
    assert [r for _, r in reports] == [Reason.FIRST] + [Reason.HEADING] * 7
    assert [t for t, _ in reports][1:4] == [
        3,
        6,
        9,
    ]  # 12, 24, 36 degrees: each past 10 from the last


def test_distance_interval_and_speed_change_rules_when_moving() -> None:
    reporter = Reporter(settings=ReportingSettings())  # moving: 5 s / 100 m / 10 deg / 3 m/s
    slow = _drive(30, speed=4, heading=0)
    # Already moving at the first fix: that one is reported as the first, then every 5 s.
    assert _run(reporter, slow)[:3] == [
        (0, Reason.FIRST),
        (5, Reason.INTERVAL),
        (10, Reason.INTERVAL),
    ]
    fast = Reporter(settings=ReportingSettings(moving=ReportProfile(interval_s=60, distance_m=100)))
    # 26 m/s: past 100 m every 4 s.
    assert [t for t, _ in _run(fast, _drive(40, speed=26, heading=0))] == list(range(0, 40, 4))
    accel = Reporter(
        settings=ReportingSettings(moving=ReportProfile(interval_s=60, speed_change_mps=3))
    )
    ramp = [_fix(s, 0, s * s / 2, 3.0 + s, 0) for s in range(10)]
    assert _run(accel, ramp) == [
        (0, Reason.FIRST),
        (3, Reason.SPEED),
        (6, Reason.SPEED),
        (9, Reason.SPEED),
    ]


def test_profiles_switch_when_the_van_stops_and_moves_off() -> None:
    reporter = Reporter(settings=ReportingSettings())
    trace = (
        _parked(60) + _drive(60, speed=10, heading=0, start=60) + _parked(400, start=120, seed=3)
    )
    reports = _run(reporter, trace)
    assert (60, Reason.START) in reports
    moving = [t for t, _ in reports if 60 <= t < 120]
    assert max(b - a for a, b in itertools.pairwise(moving)) <= 5
    # Stopped once slower than 1 m/s for 5 s; then back to a 300 s heartbeat.
    assert (125, Reason.STOP) in reports
    assert [r for t, r in reports if t > 125] == [Reason.INTERVAL]
    assert not reporter.moving


def test_creeping_in_traffic_does_not_flap_between_profiles() -> None:
    reporter = Reporter(settings=ReportingSettings())
    rng = random.Random(5)
    creep = [_fix(s, 0, s * 1.5, rng.choice([0.5, 1.5, 2.5]), 0) for s in range(300)]
    reasons = [r for _, r in _run(reporter, creep)]
    assert reasons.count(Reason.START) - reasons.count(Reason.STOP) in (0, 1)
    assert reasons.count(Reason.STOP) <= 3


def test_force_reports_the_next_fix_whatever_the_thresholds() -> None:
    reporter = Reporter(settings=ReportingSettings())
    parked = _parked(30)
    assert reporter.offer(parked[0]) is Reason.FIRST
    assert reporter.offer(parked[1]) is None
    reporter.force()
    assert reporter.offer(parked[2]) is Reason.FORCED
    assert reporter.offer(parked[3]) is None


def test_a_clock_jumping_back_starts_afresh() -> None:
    reporter = Reporter(settings=ReportingSettings())
    reporter.offer(_fix(100, 0, 0, 0, None))
    assert reporter.offer(_fix(50, 0, 0, 0, None)) is Reason.INTERVAL


def test_the_default_profile_shows_a_simulated_van_moving_at_least_every_5_s() -> None:
    sim = SimulatedGnss(SimGnssSettings(seed=3))
    reporter = Reporter(settings=ReportingSettings())
    reported: list[Position] = []
    moving_gaps = []
    for k in range(900):
        fix = sim._fix(T0 + timedelta(seconds=k))
        sim._motion.step(1.0)
        reason = reporter.offer(fix)
        if reason is not None:
            if reporter.moving and reason is not Reason.START:
                moving_gaps.append((fix.t - reported[-1].t).total_seconds())
            reported.append(fix)
    assert moving_gaps and max(moving_gaps) <= 5
    assert 60 <= len(reported) <= 300, "far fewer points than fixes, still a visible track"


def test_settings_refuse_inverted_hysteresis_and_bad_thresholds() -> None:
    with pytest.raises(ValidationError, match="stopped_below_mps"):
        ReportingSettings(moving_above_mps=1.0, stopped_below_mps=2.0)
    with pytest.raises(ValidationError):
        ReportProfile(interval_s=0)
    with pytest.raises(ValidationError):
        ReportProfile(interval_s=5, heading_deg=200)


def test_geometry_helpers() -> None:
    assert heading_change_deg(350, 10) == 20
    assert heading_change_deg(90, 270) == 180
    a, b = _fix(0, 0, 0, 0, None), _fix(0, 300, 400, 0, None)
    assert distance_m(a, b) == pytest.approx(500, rel=2e-3)
