"""Trips, stops and distance as pure functions: generated days whose answer is known by
construction, and real receiver recordings checked against the receiver's own Doppler speed."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from cloud.services.trips import (
    IgnitionChange,
    Track,
    TrackPoint,
    TripEnd,
    TripRules,
    analyse,
    haversine_m,
    path_distance_m,
)
from tests.cloud.track_rigs import T0, TrackBuilder, recorded_speeds, recorded_track

RULES = TripRules()  # stop 5 min within 50 m, gaps over 10 min split, jitter 10 m


def _doppler_m(log: str, *, since: datetime | None = None) -> float:
    """Distance by integrating the receiver's own speed over time (trapezoids, gaps < 5 s; a fix
    without a speed takes its neighbour's)."""
    speeds = sorted(s for s in recorded_speeds(log) if since is None or s[0] >= since)
    return sum(
        (b - a).total_seconds() * ((va if va is not None else vb or 0.0) + (vb or va or 0.0)) / 2
        for (a, va), (b, vb) in itertools.pairwise(speeds)
        if (b - a).total_seconds() < 5
    )


def test_haversine_knows_a_degree_of_latitude_and_a_symmetric_road() -> None:
    assert haversine_m(52.0, 4.9, 53.0, 4.9) == pytest.approx(111_195.08, abs=0.1)
    assert haversine_m(52.0, 4.9, 52.0, 4.9) == 0.0
    assert haversine_m(-27.2, 153.0, 55.8, 23.6) == pytest.approx(
        haversine_m(55.8, 23.6, -27.2, 153.0)
    )


def test_a_delivery_day_has_its_trips_and_stops_where_they_were_driven() -> None:
    van = TrackBuilder(noise_m=3.0).start()
    van.park(600)  # at the depot, loading
    van.drive(600, speed_mps=10)  # 6 km out
    kerb = (van.lat, van.lon)
    van.park(900)  # 15 min delivery
    van.drive(300, speed_mps=8, heading_deg=0)  # 2.4 km
    van.park(120)  # a 2-minute red light: too short to be a stop
    van.drive(300, speed_mps=8, heading_deg=0)  # 2.4 km
    van.park(1200)  # 20 min delivery, end of the recording

    day = analyse(van.points, rules=RULES)

    assert [round(s.duration_s / 60) for s in day.stops] == [10, 15, 20]
    assert [t.ended_by for t in day.trips] == [TripEnd.STOP, TripEnd.STOP]
    assert [t.distance_m for t in day.trips] == [
        pytest.approx(6000, rel=0.01),
        pytest.approx(4800, rel=0.01),
    ]
    assert day.distance_m == pytest.approx(10_800, rel=0.01)
    assert day.gaps == 0
    first, second = day.trips
    # A trip runs from the last fix of one stop to the first of the next; they never overlap.
    assert day.stops[0].end == first.start and first.end == day.stops[1].start
    assert second.duration_s == pytest.approx(720, abs=5)
    # The stop's place is where the van stood, not where its noise wandered.
    assert haversine_m(day.stops[1].lat, day.stops[1].lon, *kerb) < 3


def test_noise_around_a_parked_van_is_one_stop_and_no_distance() -> None:
    van = TrackBuilder(noise_m=6.0, correlation=0.0, rng=random.Random(11)).start().park(3600)

    hour = analyse(van.points, rules=RULES)

    assert hour.trips == () and hour.distance_m == 0.0
    assert len(hour.stops) == 1 and hour.stops[0].duration_s == 3600
    # The fixes alone would add up to kilometres of "driving": it is the stop that keeps them out.
    # The jitter threshold alone takes most of receiver-like (correlated) noise, not all of it.
    assert path_distance_m(van.points, jitter_m=0) > 5_000
    real = TrackBuilder(noise_m=6.0, rng=random.Random(11)).start().park(3600)
    assert path_distance_m(real.points, jitter_m=RULES.jitter_m) < 0.5 * path_distance_m(
        real.points, jitter_m=0
    )


def test_a_long_gap_while_moving_splits_the_trip_and_a_gap_while_parked_stays_a_stop() -> None:
    van = TrackBuilder(noise_m=2.0).start()
    van.drive(300, speed_mps=10)
    van.gap(1200, metres=9000)  # 20 min tunnel-and-garage blackout, 9 km further
    van.drive(300, speed_mps=10)
    van.park(300)
    van.gap(1800)  # GNSS dark for 30 min while parked in the same spot
    van.park(300)
    van.drive(120, speed_mps=10)
    van.gap(300, metres=3000)  # a 5-minute gap is bridged: no split
    van.drive(120, speed_mps=10)

    found = analyse(van.points, rules=RULES)

    assert found.gaps == 1
    assert [t.ended_by for t in found.trips] == [TripEnd.GAP, TripEnd.STOP, TripEnd.END_OF_TRACK]
    assert [t.distance_m for t in found.trips] == [
        pytest.approx(3000, rel=0.01),  # the unseen 9 km are not invented
        pytest.approx(3000, rel=0.01),
        pytest.approx(1200 + 3000 + 1200, rel=0.01),  # the short gap in a straight line
    ]
    assert len(found.stops) == 1
    assert found.stops[0].duration_s == pytest.approx(300 + 1800 + 300, abs=10)


def test_ignition_off_is_a_stop_even_when_the_fixes_drift_or_stop() -> None:
    van = TrackBuilder().start()
    van.drive(600, speed_mps=10)
    off_at = van.t
    van.park(400)  # parked in a street canyon: multipath throws the fix 80 m down the street...
    van.gap(1, metres=80).start().park(400)
    van.gap(1, metres=80, heading_deg=270).start().park(400)  # ...and back
    on_at = van.t
    van.drive(300, speed_mps=10)
    off2 = van.t
    van.gap(3600)  # the Pi sleeps with the engine: no fixes at all for an hour
    on2 = van.t
    van.start().drive(300, speed_mps=10)
    short_off, short_on = van.t, van.t + timedelta(seconds=40)  # start-stop at a light
    van.park(40).drive(300, speed_mps=10)
    ignition = [
        IgnitionChange(off_at, False),
        IgnitionChange(on_at, True),
        IgnitionChange(off2, False),
        IgnitionChange(on2, True),
        IgnitionChange(short_off, False),
        IgnitionChange(short_on, True),
    ]

    by_motion = analyse(van.points, rules=RULES)
    by_ignition = analyse(van.points, rules=RULES, ignition=ignition, ignition_on_at_start=True)

    # Motion alone takes the jumps for two 80 m trips between three stops.
    assert [round(t.distance_m) for t in by_motion.trips[1:3]] == [80, 80]
    assert len(by_motion.stops) == 3 + 1
    assert [(s.start, s.end, s.ignition_off) for s in by_ignition.stops] == [
        (off_at, on_at, True),
        (off2, on2, True),
    ]
    # Nobody saw the hour but the fixes as the engine went off and on: the engine said "parked".
    assert by_ignition.stops[1].points == 2
    assert [t.ended_by for t in by_ignition.trips] == [
        TripEnd.IGNITION_OFF,
        TripEnd.IGNITION_OFF,
        TripEnd.END_OF_TRACK,
    ]
    assert [round(t.distance_m) for t in by_ignition.trips] == [
        pytest.approx(6000, rel=0.01),
        pytest.approx(3000, rel=0.01),
        pytest.approx(6000, rel=0.01),
    ]


def test_ignition_state_before_the_window_counts() -> None:
    van = TrackBuilder(noise_m=1.0).start().park(900).drive(300, speed_mps=10)
    switched_on = T0 + timedelta(seconds=900)

    found = analyse(
        van.points,
        rules=RULES,
        ignition=[IgnitionChange(switched_on, True)],
        ignition_on_at_start=False,
    )

    assert [(s.start, s.end, s.ignition_off) for s in found.stops] == [(T0, switched_on, True)]
    assert len(found.trips) == 1 and found.trips[0].start == switched_on


def test_order_duplicates_and_naive_times() -> None:
    van = TrackBuilder().start().drive(300, speed_mps=10).park(400)
    shuffled = van.points[::-1] + van.points[:50]
    assert analyse(shuffled, rules=RULES) == analyse(van.points, rules=RULES)
    assert analyse([], rules=RULES).trips == ()
    columns = Track.of_points(shuffled)
    assert (
        Track.of_columns(
            ts=columns.ts[::-1] + columns.ts[:3],
            lat=columns.lat[::-1] + columns.lat[:3],
            lon=columns.lon[::-1] + columns.lon[:3],
        )
        == columns
    )
    with pytest.raises(ValueError, match="columns of 2, 1 and 1 values"):
        Track.of_columns(ts=[1.0, 2.0], lat=[52.0], lon=[4.9])
    with pytest.raises(ValueError, match="naive datetime"):
        analyse([TrackPoint(datetime(2026, 1, 1), 52.0, 4.9)], rules=RULES)


def test_a_recorded_car_drive_matches_the_receivers_doppler_speed() -> None:
    """bt451.log: 3 s of a car at ~31 knots, 52 min of silence, then the receiver indoors."""
    track = recorded_track("bt451.log")
    assert track != sorted(track)  # the recording is out of time order; analyse sorts it
    rules = TripRules(stop_min_s=3, stop_radius_m=5, gap_split_s=60, jitter_m=1)

    found = analyse(track, rules=rules)

    (drive,) = found.trips
    assert drive.ended_by is TripEnd.GAP and found.gaps == 1
    assert drive.distance_m == pytest.approx(_doppler_m("bt451.log"), rel=0.05)
    (indoors,) = found.stops
    assert indoors.points == 8 and indoors.start.isoformat() == "2009-12-09T15:25:05+00:00"
    # With the default rules the 41 m drive is shuffling, and 3.5 s of standing is no stop.
    assert analyse(track, rules=RULES).trips == ()


def test_a_recorded_walk_adds_up_to_its_doppler_distance_where_the_fix_is_good() -> None:
    """haicom-305N.log: a walk; its first 30 s have HDOP 7-21 (fixes tens of metres off)."""
    track = sorted(recorded_track("haicom-305N.log"))
    clean_from = datetime(2026 - 19, 4, 8, 9, 53, 36, tzinfo=UTC)
    clean = [p for p in track if p.t >= clean_from]

    assert path_distance_m(clean, jitter_m=2) == pytest.approx(
        _doppler_m("haicom-305N.log", since=clean_from), rel=0.05
    )
    # Over the noisy start the threshold removes much of the wander, never adds any.
    assert path_distance_m(track, jitter_m=10) < 0.85 * path_distance_m(track, jitter_m=0)
    walk = analyse(track, rules=RULES)
    assert walk.stops == () and len(walk.trips) == 1


def test_a_recorded_receiver_on_a_desk_is_one_stop() -> None:
    """bu353-glonass.log: a receiver standing still, its fix drifting about 4 m in 8 s."""
    track = recorded_track("bu353-glonass.log")

    found = analyse(track, rules=TripRules(stop_min_s=5, stop_radius_m=10, jitter_m=10))

    assert found.trips == ()
    assert [(s.points, s.duration_s) for s in found.stops] == [(9, 8.0)]
    assert found.distance_m == 0.0
