"""Driving-event detectors on generated traces with known answers, and on GNSS noise that must not fire."""

from __future__ import annotations

import math
import random
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from edge.agent import SignalEvents
from edge.config import VehicleSettings
from edge.driving import (
    CorneringSettings,
    DrivingMonitor,
    DrivingSettings,
    HarshSettings,
    IgnitionSettings,
    OverspeedSettings,
)
from edge.driving.cornering import wrap180
from edge.driving.monitor import RPM_SIGNALS
from edge.reporting import distance_m
from edge.settings import load_settings
from edge.signals import Deadband, SignalUpdate
from protocol.messages import Position
from tests.edge.driving_traces import (
    T0,
    bus_speeds,
    fixes,
    kinds,
    merge,
    parked_with_noise,
    profile,
    run,
)

T0_S = T0.timestamp()
CRUISE = (0.0, 10.0)  # ten seconds at constant speed
PARK = (0.0, 10.0)


# --- harsh braking and acceleration ------------------------------------------------------------


def test_a_4_mps2_stop_seen_by_gnss_fires_once_with_its_peak_and_place() -> None:
    trace = fixes(profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0))
    (event,) = run(trace)
    assert event.kind == "harsh_braking"
    ev = event.evidence
    assert ev["peak_mps2"] == pytest.approx(-4.0, abs=0.01)
    assert ev["speed_from_mps"] == pytest.approx(14.0) and ev["source"] == "gnss"
    assert 2.0 <= float(ev["duration_s"]) <= 4.0  # 14 -> 2 m/s held -4; the last second is -2
    assert ev["threshold_mps2"] == -3.0 and ev["min_duration_s"] == 0.5
    assert event.t == T0_S + 10  # when the braking began, not when it was noticed
    assert event.position is not None and event.position.t > T0 + timedelta(seconds=13)


@pytest.mark.parametrize("decel", [-2.0, -2.9])
def test_an_ordinary_stop_is_not_harsh(decel: float) -> None:
    assert run(fixes(profile(CRUISE, (decel, 14.0 / -decel), PARK, v0=14.0))) == []


def test_a_3_mps2_start_is_harsh_acceleration_and_a_1_5_mps2_start_is_not() -> None:
    (event,) = run(fixes(profile(PARK, (3.0, 4.0), CRUISE)))
    assert event.kind == "harsh_acceleration"
    assert event.evidence["peak_mps2"] == pytest.approx(3.0, abs=0.01)
    assert event.evidence["speed_to_mps"] == pytest.approx(12.0)
    assert run(fixes(profile(PARK, (1.5, 8.0), CRUISE))) == []


def test_a_hard_stop_at_walking_pace_is_not_harsh() -> None:
    """From 3.6 m/s the van stops within a second: -3.6 m/s^2, but below ``min_speed_mps``."""
    assert run(fixes(profile(CRUISE, (-3.6, 1.0), PARK, v0=3.6))) == []


def test_one_wrong_speed_in_a_steady_drive_is_not_a_brake_then_a_start() -> None:
    speeds = profile(CRUISE, CRUISE, v0=12.0)
    speeds[8] = 0.0  # a receiver glitch: -12 m/s^2, then +12 m/s^2
    assert run(fixes(speeds)) == []


def test_a_gap_in_the_fixes_is_not_a_stop() -> None:
    """Fixes stop for 12 s (a tunnel) and resume at standstill: nothing is known about how."""
    before = fixes(profile(CRUISE, v0=14.0))
    after = fixes([0.0] * 10, start=T0 + timedelta(seconds=22))
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=False)
    assert run(before + after, monitor=m) == []


def test_a_stop_measured_by_poor_fixes_is_ignored_and_counted() -> None:
    speeds = profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0)
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=False)
    assert run(fixes(speeds, hdop=8.0), monitor=m) == []
    assert m.counters["fix_hdop"] == len(speeds)
    assert run(fixes(speeds, fix="2d"), monitor=m) == []
    assert m.counters["fix_2d"] == len(speeds)
    loose = DrivingSettings.model_validate({"quality": {"gnss_min_fix": "2d"}})
    assert kinds(run(fixes(speeds, fix="2d"), settings=loose)) == ["harsh_braking"]


# --- the same from the vehicle bus ------------------------------------------------------------


def test_a_4_mps2_stop_on_the_bus_fires_once_with_its_peak() -> None:
    speeds = profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0, dt=0.0125)  # 80 Hz, as the Prius sends
    (event,) = run(bus_speeds(speeds, dt=0.0125, t0=T0_S))
    assert event.kind == "harsh_braking" and event.evidence["source"] == "bus"
    assert event.evidence["peak_mps2"] == pytest.approx(-4.0, abs=0.1)
    # 14 -> 4 m/s takes 2.5 s; below 4 m/s (min_speed_mps) the rate is not judged
    assert event.evidence["duration_s"] == pytest.approx(2.5, abs=0.35)
    assert event.t == pytest.approx(T0_S + 10, abs=0.3)


def test_bus_speed_reported_on_change_still_shows_the_stop() -> None:
    """The CAN source sends speed only beyond a deadband (0.5 mph) or every 5 s."""
    band = Deadband(deadband=0.5, max_interval_s=5.0)
    raw = bus_speeds(profile(CRUISE, (-4.5, 3.2), PARK, v0=14.4, dt=0.0125), dt=0.0125, t0=T0_S)
    sparse = [u for u in raw if band.offer(u.value, u.t)]
    assert len(sparse) < len(raw) / 10
    (event,) = run(sparse)
    assert event.kind == "harsh_braking"
    assert event.evidence["peak_mps2"] == pytest.approx(-4.5, abs=0.3)
    assert float(event.evidence["duration_s"]) < 4.5  # the silent cruise before is not counted


def test_a_one_frame_wheel_speed_glitch_is_not_harsh() -> None:
    updates = bus_speeds(profile(CRUISE, CRUISE, v0=12.0, dt=0.0125), dt=0.0125, t0=T0_S)
    updates[500] = SignalUpdate("SPEED", 0.0, "mph", updates[500].t)
    assert run(updates) == []


def test_obd_speed_in_kph_is_understood_and_an_unknown_unit_is_counted() -> None:
    speeds = profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0, dt=0.1)
    assert kinds(run(bus_speeds(speeds, dt=0.1, t0=T0_S, unit="kph"))) == ["harsh_braking"]
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=False)
    odd = [SignalUpdate("SPEED", 40.0, "furlong/fortnight", T0_S + k) for k in range(3)]
    assert run(odd, monitor=m) == []
    assert m.counters["bus_speed_unit_unknown"] == 3


def test_with_a_bus_speed_the_gnss_speed_is_not_counted_twice_until_the_bus_goes_quiet() -> None:
    speeds_1hz = profile(CRUISE, (-4.0, 3.5), PARK, CRUISE, v0=14.0)
    gnss = fixes(speeds_1hz)
    bus = bus_speeds(profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0, dt=0.1), dt=0.1, t0=T0_S)
    merged = merge(gnss, bus)
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=False)
    events = run(merged, monitor=m)
    assert [(e.kind, e.evidence["source"]) for e in events] == [("harsh_braking", "bus")]
    assert m.bus_speed_present
    # The bus falls silent (unplugged); the receiver keeps going and sees another hard stop.
    later = T0 + timedelta(seconds=60)
    events = run(fixes(profile(CRUISE, (-4.0, 3.5), PARK, v0=14.0), start=later), monitor=m)
    assert not m.bus_speed_present
    assert [(e.kind, e.evidence["source"]) for e in events] == [("harsh_braking", "gnss")]


# --- harsh cornering ---------------------------------------------------------------------------


def _turn(
    speed: float, deg_per_s: float, seconds: int, *, start_heading: float = 0.0
) -> list[Position]:
    headings: list[float | None] = [start_heading] * 10
    headings += [start_heading + deg_per_s * k for k in range(1, seconds + 1)]
    headings += [headings[-1]] * 10
    return fixes([speed] * len(headings), headings=headings)


def test_a_fast_right_turn_is_harsh_cornering_with_its_lateral_acceleration() -> None:
    (event,) = run(_turn(10.0, 30.0, 3))  # 30 deg/s at 10 m/s: 10 * 0.524 = 5.2 m/s^2
    assert event.kind == "harsh_cornering"
    ev = event.evidence
    assert ev["direction"] == "right"
    assert ev["peak_mps2"] == pytest.approx(10 * math.radians(30), abs=0.05)
    assert ev["heading_change_deg"] == pytest.approx(90, abs=1)
    assert float(ev["duration_s"]) >= 1.0 and ev["threshold_mps2"] == 3.0


def test_a_left_turn_through_north_unwraps_the_heading() -> None:
    (event,) = run(_turn(10.0, -30.0, 3, start_heading=45.0))  # 45 -> 315 through 0
    assert event.evidence["direction"] == "left"
    assert event.evidence["peak_mps2"] == pytest.approx(5.24, abs=0.05)
    assert wrap180(350 - 10) == -20 and wrap180(10 - 350) == 20


def test_a_calm_turn_and_a_fast_turn_at_walking_pace_are_not_harsh() -> None:
    assert run(_turn(10.0, 9.0, 10)) == []  # 1.6 m/s^2
    assert run(_turn(4.0, 45.0, 2)) == []  # 3.1 m/s^2 but below 5 m/s: a car park


def test_heading_jitter_at_walking_speed_never_fires() -> None:
    rng = random.Random(4)
    speeds = [abs(rng.gauss(1.2, 0.6)) for _ in range(600)]
    headings = [rng.uniform(0, 359.9) for _ in range(600)]
    assert run(fixes(speeds, headings=headings), infer_ignition=True) == []


def test_one_wrong_course_at_speed_is_not_a_swerve() -> None:
    headings: list[float | None] = [90.0] * 30
    headings[12] = 135.0  # one fix's course 45 degrees off
    assert run(fixes([12.0] * 30, headings=headings)) == []
    assert kinds(run(_turn(12.0, 25.0, 3))) == ["harsh_cornering"]  # but a real swerve is


def test_cornering_needs_the_turn_to_hold() -> None:
    strict = DrivingSettings(cornering=CorneringSettings(min_duration_s=3.5))
    assert run(_turn(10.0, 30.0, 3), settings=strict) == []


# --- overspeed ---------------------------------------------------------------------------------


def _ramped(*speeds: float) -> list[float]:
    """Constant speeds joined by gentle 1 m/s^2 ramps (a step would be harsh acceleration)."""
    out = [speeds[0]]
    for v in speeds[1:]:
        while abs(out[-1] - v) > 1.0:
            out.append(out[-1] + math.copysign(1.0, v - out[-1]))
        out.append(v)
    return out


def test_twenty_seconds_at_100_kmh_is_one_overspeed_with_peak_and_duration() -> None:
    speeds = _ramped(20.0, 20.0, 27.8) + [27.8] * 20 + _ramped(27.8, 20.0, 20.0)
    speeds[15] = 28.4
    (event,) = run(fixes(speeds))
    assert event.kind == "overspeed"
    assert event.evidence["peak_mps"] == pytest.approx(28.4)
    assert event.evidence["limit_mps"] == 25.0
    above = [k for k, v in enumerate(speeds) if v > 25.0]
    below = next(k for k in range(above[0], len(speeds)) if speeds[k] < 23.5)
    assert event.t == T0_S + above[0]  # from the first fix above the limit ...
    assert event.evidence["duration_s"] == pytest.approx(below - above[0])  # ... to back under


def test_hovering_at_the_limit_is_one_overspeed_thanks_to_the_hysteresis() -> None:
    rng = random.Random(1)
    hover = [25.2 + rng.uniform(-1.0, 1.0) for _ in range(60)]
    hover[0] = 25.5
    speeds = _ramped(20.0, 25.0) + hover + _ramped(hover[-1], 20.0, 20.0)
    (event,) = run(fixes(speeds))
    assert event.kind == "overspeed"
    assert float(event.evidence["duration_s"]) == pytest.approx(61, abs=1)


def test_a_brief_or_glitched_excess_is_not_overspeed() -> None:
    assert run(fixes(_ramped(22.0, 26.0, 26.0, 22.0))) == []  # 4 s above 25 < 5 s
    spike = [20.0] * 20
    spike[10] = 60.0
    assert run(fixes(spike)) == []


def test_an_overspeed_cut_by_a_gap_ends_at_the_last_fix_before_it() -> None:
    fast = fixes([27.0] * 11)
    after = fixes([20.0] * 3, start=T0 + timedelta(seconds=40))
    (event,) = run(fast + after)
    assert event.t == T0_S and event.evidence["duration_s"] == pytest.approx(10.0)


def test_the_limit_is_a_setting() -> None:
    town = DrivingSettings(overspeed=OverspeedSettings(limit_mps=13.9, min_duration_s=3))
    trace = fixes(_ramped(12.0, 12.0, 15.0, 15.0, 15.0, 15.0, 15.0, 10.0, 10.0))
    assert kinds(run(trace, settings=town)) == ["overspeed"]
    assert run(trace) == []


# --- idling ------------------------------------------------------------------------------------


def _rpm(value: float, t: float) -> SignalUpdate:
    return SignalUpdate("ENGINE_RPM", value, "rpm", T0_S + t)


def _speed(kph: float, t: float) -> SignalUpdate:
    return SignalUpdate("SPEED", kph, "kph", T0_S + t)


def test_four_minutes_of_engine_on_while_parked_is_one_idling_event() -> None:
    samples = [_rpm(0, 0), _speed(0, 0)]
    samples += [s for k in range(1, 241, 2) for s in (_rpm(780, k), _speed(0, k))]
    samples += [_speed(12, 242), _rpm(1500, 242)]
    (event,) = run(samples)
    assert event.kind == "idling" and event.t == T0_S + 1
    assert event.evidence["duration_s"] == pytest.approx(241, abs=0.1)
    assert event.evidence["ended_by"] == "moving" and event.evidence["threshold_s"] == 180.0
    assert event.evidence["rpm"] == 780


def test_a_short_wait_is_not_idling_and_switching_off_ends_the_idle() -> None:
    short = [_speed(0, 0), _rpm(800, 0), _rpm(800, 60), _speed(15, 61)]
    assert run(short) == []
    off = [_speed(0, 0), _rpm(800, 0), _rpm(800, 200), _rpm(0, 201)]
    (event,) = run(off)
    assert event.evidence["ended_by"] == "engine_off"


def test_idling_with_a_gnss_speed_and_an_obd_rpm() -> None:
    parked = fixes([0.0] * 200)
    rpm = [SignalUpdate("RPM", 750, "rpm", f.t.timestamp() + 0.5) for f in parked]
    moving = fixes(profile((1.0, 5.0)), start=T0 + timedelta(seconds=200))
    (event,) = run(merge(parked, rpm, moving))
    assert event.kind == "idling" and float(event.evidence["duration_s"]) > 180


# --- ignition inferred from motion -------------------------------------------------------------


def test_without_a_bus_ignition_is_inferred_from_motion() -> None:
    drive = profile(PARK, (1.5, 8.0), (0.0, 60.0), (-2.0, 6.0), (0.0, 400.0))
    events = run(fixes(drive), infer_ignition=True)
    assert kinds(events) == ["ignition_on", "ignition_off"]
    on, off = events
    assert on.t == T0_S + 13 and on.evidence["inferred"] is True  # the first fix above 3 m/s
    stopped = T0_S + drive.index(0.0, 20)  # the first fix standing after the drive
    assert off.t == stopped and off.evidence["stationary_s"] == 300.0


def test_a_delivery_stop_does_not_switch_the_inferred_ignition_off() -> None:
    drive = profile(PARK, (1.5, 8.0), CRUISE, (-2.0, 6.0), (0.0, 90.0), (1.5, 8.0))
    assert kinds(run(fixes(drive), infer_ignition=True)) == ["ignition_on"]


def test_once_the_bus_reports_rpm_nothing_is_inferred() -> None:
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=True)
    run([_rpm(800, -1)], monitor=m)
    assert run(fixes(profile(PARK, (1.5, 8.0), CRUISE)), monitor=m) == []
    off = DrivingSettings(ignition=IgnitionSettings(infer=False))
    assert run(fixes(profile(PARK, (1.5, 8.0), CRUISE)), settings=off, infer_ignition=True) == []


def test_the_monitor_takes_rpm_from_the_signals_signal_events_uses() -> None:
    assert RPM_SIGNALS == SignalEvents.RPM_SIGNALS


# --- noise that must not fire ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_parked_van_with_drifting_fixes_fires_nothing(seed: int) -> None:
    """An hour parked: the fixes wander tens of metres, course anywhere, speed a few tenths."""
    trace = parked_with_noise(3600, seed=seed)
    assert max(distance_m(trace[0], f) for f in trace) > 10, "the fixes really do drift"
    assert run(trace, infer_ignition=True) == []


def test_position_noise_on_a_steady_drive_fires_nothing() -> None:
    rng = random.Random(9)
    speeds = [max(0.0, 11.0 + rng.gauss(0, 0.3)) for _ in range(900)]
    headings = [(90 + rng.gauss(0, 2.0)) % 360 for _ in range(900)]
    assert kinds(run(fixes(speeds, headings=headings), infer_ignition=True)) == ["ignition_on"]


def test_settings_refuse_nonsense_with_a_plain_sentence() -> None:
    with pytest.raises(ValueError, match="hysteresis_mps must be smaller"):
        OverspeedSettings(limit_mps=5, hysteresis_mps=6)
    with pytest.raises(ValueError, match="brake_mps2"):
        HarshSettings(brake_mps2=3.0)


def test_the_shipped_van_config_spells_out_the_default_thresholds() -> None:
    """The [driving.*] sections of firmware_configs/van/van.toml document the defaults; they must
    not drift apart."""
    shipped = Path(__file__).resolve().parents[2] / "firmware_configs/van/van.toml"
    s = load_settings(VehicleSettings, shipped)
    assert s.driving == DrivingSettings()
    text = shipped.read_text()
    assert "[driving.harsh]" in text and "[driving.overspeed]" in text
    toml = tomllib.loads(text)["driving"]
    assert toml["harsh"]["brake_mps2"] == -3.0 and toml["overspeed"]["limit_mps"] == 25.0
