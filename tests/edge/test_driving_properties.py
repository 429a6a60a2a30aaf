"""Properties of the driving detectors over arbitrary input (hypothesis)."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.driving import DrivingMonitor, DrivingSettings
from edge.signals import SignalUpdate
from protocol.messages import Position
from tests.edge.driving_traces import T0, Sample, run

T0_S = T0.timestamp()


@st.composite
def parked_traces(draw: st.DrawFn) -> list[Position]:
    """A parked van's receiver at its worst that still passes the quality gate: speed up to
    0.8 m/s, any course, the position jumping by metres, fixes 0.2-3 s apart, HDOP up to 5."""
    n = draw(st.integers(min_value=1, max_value=150))
    t = 0.0
    out = []
    for _ in range(n):
        t += draw(st.floats(min_value=0.2, max_value=3.0))
        out.append(
            Position(
                t=T0 + timedelta(seconds=t),
                lat=52.37 + draw(st.floats(-30, 30)) / 111_320,
                lon=4.89 + draw(st.floats(-30, 30)) / 68_000,
                speed_mps=draw(st.floats(min_value=0.0, max_value=0.8)),
                heading_deg=draw(st.none() | st.floats(min_value=0, max_value=359.99)),
                hdop=draw(st.none() | st.floats(min_value=0.5, max_value=5.0)),
                fix=draw(st.sampled_from(["3d", None])),
            )
        )
    return out


@given(trace=parked_traces())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_event_ever_comes_from_a_parked_van(trace: list[Position]) -> None:
    assert run(trace, infer_ignition=True) == []


NAMES = ["SPEED", "speed", "ENGINE_RPM", "RPM", "vehicle_speed", "GEAR", "DOOR_OPEN_FR"]
UNITS = ["mph", "kph", "km/h", "m/s", "rpm", "", "°C"]
values = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-10, 300)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    t = draw(st.floats(min_value=-1e5, max_value=1e5))
    if draw(st.booleans()):
        return SignalUpdate(
            draw(st.sampled_from(NAMES)), draw(values), draw(st.sampled_from(UNITS)), T0_S + t
        )
    return Position(
        t=T0 + timedelta(seconds=t),
        lat=draw(st.floats(-90, 90)),
        lon=draw(st.floats(-180, 180)),
        speed_mps=draw(st.none() | st.floats(0, 150)),
        heading_deg=draw(st.none() | st.floats(0, 359.999)),
        hdop=draw(st.none() | st.floats(0, 100)),
        fix=draw(st.sampled_from(["2d", "3d", None])),
    )


@given(trace=st.lists(samples(), max_size=200), infer=st.booleans())
@settings(max_examples=200, deadline=None)
def test_any_sequence_of_samples_is_taken_without_a_crash(trace: list[Sample], infer: bool) -> None:
    """Out of order, duplicated, NaN and infinite bus values, any unit: the monitor never raises,
    and whatever it reports is a well-formed event whose evidence holds finite numbers."""
    m = DrivingMonitor(settings=DrivingSettings(), infer_ignition=infer)
    for event in run(trace, monitor=m):
        assert event.kind in {
            "harsh_acceleration",
            "harsh_braking",
            "harsh_cornering",
            "overspeed",
            "idling",
            "ignition_on",
            "ignition_off",
        }
        for v in event.evidence.values():
            assert not isinstance(v, float) or math.isfinite(v), event
        if "duration_s" in event.evidence and "min_duration_s" in event.evidence:
            assert float(event.evidence["duration_s"]) >= float(event.evidence["min_duration_s"])
    assert all(v >= 0 for v in m.all_counters().values())
