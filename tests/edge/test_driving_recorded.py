"""The detectors on recorded receiver logs and on the demo's simulated van.

The three NMEA logs (tests/data/nmea/, from the GPSD project) hold no harsh driving: a receiver indoors
then parked (bt451, 15:25), 2.5 s of a car cruising at ~16 m/s after the receiver's clock stepped back
to 14:33 (bt451 again), a walk with stops and reversals on 2-D fixes of HDOP 7-21 (haicom-305N), and a
parked receiver drifting (bu353-glonass). The documented expectation is therefore *no event* from any
of them with the fleet defaults, with the reasons visible in the counters.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from edge.driving import DrivingMonitor, DrivingSettings, IgnitionSettings
from edge.gnss.nmea import NmeaDecoder
from edge.gnss.sim import DECEL, SimGnssSettings, SimulatedGnss, VanMotion, _Waypoint
from protocol.messages import Position
from tests.edge.driving_traces import kinds, run
from tests.edge.gnss_rigs import LOGS, NMEA_DIR


def _log_fixes(name: str) -> list[Position]:
    decoder = NmeaDecoder()
    return decoder.feed((NMEA_DIR / name).read_bytes()) + decoder.flush()


@pytest.mark.parametrize("name", LOGS)
def test_no_recorded_log_fires_any_event_with_the_fleet_defaults(name: str) -> None:
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=True)
    fixes = _log_fixes(name)
    assert len(fixes) >= 9
    assert run(fixes, monitor=m) == []
    assert m.counters["fixes"] == len(fixes)


def test_the_walk_on_poor_fixes_is_gated_and_would_not_fire_even_if_trusted() -> None:
    fixes = _log_fixes("haicom-305N.log")
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=True)
    run(fixes, monitor=m)
    assert m.counters["fix_hdop"] >= 25  # the 2-D fixes are all among them too
    # Trust every fix: the walk's speed jumps (0 -> 2.7 m/s in a second) and its course swings
    # (280 -> 335 -> 299 degrees) are below the speeds at which the detectors judge anything.
    trusting = DrivingSettings.model_validate(
        {"quality": {"gnss_max_hdop": 100, "gnss_min_fix": "2d"}}
    )
    assert run(fixes, settings=trusting, infer_ignition=True) == []


def test_the_recorded_car_passes_the_gates_once_the_receiver_clock_steps_back() -> None:
    """bt451's car segment is timestamped ~52 minutes *before* the parked segment. The detectors
    restart on it (instead of ignoring fixes until the clock catches up): with a 1-s motion rule, the
    car is seen driving and the ignition inferred on at its first fix."""
    quick = DrivingSettings(ignition=IgnitionSettings(on_after_s=1.0))
    m = DrivingMonitor(settings=quick, infer_ignition=True)
    (event,) = run(_log_fixes("bt451.log"), monitor=m)
    assert event.kind == "ignition_on" and event.evidence["inferred"] is True
    assert datetime.fromtimestamp(event.t, UTC).strftime("%H:%M:%S.%f") == "14:33:06.500000"
    assert m.harsh_gnss.counters["clock_back"] == 1


T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _sim_hour(seed: int, *, habits: bool) -> tuple[list[str], Counter[str]]:
    sim = SimulatedGnss(SimGnssSettings(seed=seed))
    if not habits:
        sim._motion = VanMotion(seed=seed, habits=False)
    reached: list[_Waypoint] = []
    events = []
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=True)
    for k in range(3600):
        wp = sim._motion._target
        if not reached or reached[-1] is not wp:
            reached.append(wp)
        events += m.offer_fix(sim._fix(T0 + timedelta(seconds=k)))
        sim._motion.step(1.0)
    done = reached[:-1]  # the last one is still ahead
    drove = Counter(hard=sum(w.decel > DECEL for w in done), fast=sum(bool(w.cruise) for w in done))
    return kinds(events), drove


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_simulated_driver_brakes_hard_and_speeds_now_and_then(seed: int) -> None:
    """Each late hard stop is one harsh_braking, each arterial road one overspeed (give or take
    the one in progress when the hour ends); a sober driver does neither."""
    events, drove = _sim_hour(seed, habits=True)
    counts = Counter(events)
    assert counts["harsh_braking"] >= 3 and counts["overspeed"] >= 1, counts
    assert abs(counts["harsh_braking"] - drove["hard"]) <= 1, (counts, drove)
    assert abs(counts["overspeed"] - drove["fast"]) <= 1, (counts, drove)
    assert set(counts) <= {"harsh_braking", "overspeed", "ignition_on"}
    sober, _ = _sim_hour(seed, habits=False)
    assert sober == ["ignition_on"]
