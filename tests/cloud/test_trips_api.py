"""Trips, stops and daily distance through the API, from stored positions and ignition events, on
SQLite and PostgreSQL alike (the answers must be the same, to the metre)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import PositionRow, Vehicle, VehicleEventRow
from cloud.services.trips import IgnitionChange, TrackPoint, TripRules, analyse
from cloud.settings import Role
from tests.cloud.helpers import auth, hub_settings
from tests.cloud.track_rigs import T0, TrackBuilder, recorded_track

VIEWER = auth(Role.VIEWER)
DAY = "2026-11-23"


def _store(
    session_factory: sessionmaker[Session],
    points: Sequence[TrackPoint],
    *,
    vehicle_id: str = "van-1",
    ignition: Sequence[IgnitionChange] = (),
) -> None:
    message_id = uuid.uuid4()
    with session_factory() as session, session.begin():
        if session.get(Vehicle, vehicle_id) is None:
            session.add(Vehicle(id=vehicle_id, online=True, version=""))
            session.flush()
        session.execute(
            insert(PositionRow),
            [
                {
                    "vehicle_id": vehicle_id,
                    "t": p.t,
                    "lat": p.lat,
                    "lon": p.lon,
                    "message_id": message_id,
                }
                for p in points
            ],
        )
        for seq, change in enumerate(ignition):
            session.add(
                VehicleEventRow(
                    vehicle_id=vehicle_id,
                    seq=seq,
                    kind="ignition_on" if change.on else "ignition_off",
                    at=change.at,
                    evidence={},
                    message_id=uuid.uuid4(),
                )
            )


def _get(
    session_factory: sessionmaker[Session],
    database_url: str,
    requests: list[tuple[str, dict[str, Any]]],
    **settings: Any,
) -> list[httpx.Response]:
    app = create_app(
        settings=hub_settings(database_url=database_url, **settings),
        session_factory=session_factory,
    )

    async def story() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            return [await api.get(path, params=params, headers=VIEWER) for path, params in requests]

    return asyncio.run(story())


def _day() -> tuple[TrackBuilder, list[IgnitionChange]]:
    van = TrackBuilder(noise_m=3.0).start().park(900)
    on = van.t
    van.drive(600, speed_mps=10).park(120).drive(300, speed_mps=8, heading_deg=0)
    off = van.t
    van.park(1200)
    return van, [IgnitionChange(on, True), IgnitionChange(off, False)]


def test_a_stored_day_gives_the_same_trips_and_stops_as_the_analysis_on_both_databases(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    van, ignition = _day()
    _store(session_factory, van.points, ignition=ignition)
    window = {"from": f"{DAY}T00:00:00Z", "to": f"{DAY}T23:59:59Z"}

    trips, stops, page, distance = _get(
        session_factory,
        database_url,
        [
            ("/api/v1/vehicles/van-1/trips", window),
            ("/api/v1/vehicles/van-1/stops", window),
            ("/api/v1/vehicles/van-1/stops", {**window, "offset": 1, "limit": 1}),
            ("/api/v1/vehicles/van-1/distance", {"from": DAY}),
        ],
    )

    expected = analyse(van.points, rules=TripRules(), ignition=ignition)
    assert trips.status_code == 200, trips.text
    body = trips.json()
    assert body["count"] == 1 and len(body["data"]) == 1
    (trip,) = body["data"]
    assert trip["ended_by"] == "ignition_off"
    assert trip["distance_m"] == pytest.approx(6000 + 2400, rel=0.01)
    assert trip["distance_m"] == pytest.approx(expected.trips[0].distance_m, abs=1e-6)
    assert datetime.fromisoformat(trip["start"]) == ignition[0].at
    assert [datetime.fromisoformat(s["start"]) for s in stops.json()["data"]] == [
        s.start for s in expected.stops
    ]
    assert [s["ignition_off"] for s in stops.json()["data"]] == [True, True]
    assert page.json()["count"] == 2 and len(page.json()["data"]) == 1
    assert page.json()["data"][0] == stops.json()["data"][1]
    assert distance.json() == {
        "data": [
            {
                "day": DAY,
                "distance_m": trip["distance_m"],
                "trips": 1,
                "driving_s": trip["duration_s"],
            }
        ],
        "count": 1,
    }


def test_a_recorded_drive_through_the_api_with_the_hubs_rules(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    track = recorded_track("bt451.log")
    _store(session_factory, track)
    _store(session_factory, track[:5])  # a batch sent twice under new message ids counts once
    rules = TripRules(stop_min_s=3, stop_radius_m=5, gap_split_s=60, jitter_m=1)
    window = {"from": "2009-12-09T00:00:00Z", "to": "2009-12-10T00:00:00Z"}

    trips, stops = _get(
        session_factory,
        database_url,
        [("/api/v1/vehicles/van-1/trips", window), ("/api/v1/vehicles/van-1/stops", window)],
        trips=rules,
    )

    expected = analyse(track, rules=rules)
    assert [t["distance_m"] for t in trips.json()["data"]] == [
        pytest.approx(t.distance_m, abs=1e-6) for t in expected.trips
    ]
    assert [t["ended_by"] for t in trips.json()["data"]] == ["gap"]
    assert [s["points"] for s in stops.json()["data"]] == [8]


def test_a_trip_across_midnight_counts_on_both_days_and_windows_cut_trips(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    late = TrackBuilder(t=T0.replace(hour=23, minute=50)).start()
    late.park(400).drive(1200, speed_mps=10).park(400)  # 23:56:40 -> 00:16:40, 12 km
    _store(session_factory, late.points)

    days, whole, cut = _get(
        session_factory,
        database_url,
        [
            ("/api/v1/vehicles/van-1/distance", {"from": DAY, "to": "2026-11-25"}),
            (
                "/api/v1/vehicles/van-1/trips",
                {"from": f"{DAY}T23:00:00Z", "to": "2026-11-24T01:00:00Z"},
            ),
            (
                "/api/v1/vehicles/van-1/trips",
                {"from": f"{DAY}T23:00:00Z", "to": "2026-11-24T00:06:40Z"},
            ),
        ],
    )

    per_day = {d["day"]: d["distance_m"] for d in days.json()["data"]}
    assert set(per_day) == {DAY, "2026-11-24", "2026-11-25"}
    assert per_day[DAY] == pytest.approx(2000, rel=0.02)
    assert per_day["2026-11-24"] == pytest.approx(10_000, rel=0.02)
    assert per_day["2026-11-25"] == 0
    assert whole.json()["distance_m"] == pytest.approx(12_000, rel=0.01)
    assert cut.json()["data"][0]["ended_by"] == "end_of_track"
    assert cut.json()["distance_m"] == pytest.approx(6000, rel=0.01)


def test_bad_windows_and_unknown_vehicles_are_problems(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _store(session_factory, TrackBuilder().start().points)
    trips = "/api/v1/vehicles/van-1/trips"
    responses = _get(
        session_factory,
        database_url,
        [
            (
                "/api/v1/vehicles/van-404/trips",
                {"from": f"{DAY}T00:00:00Z", "to": f"{DAY}T01:00:00Z"},
            ),
            (trips, {"from": f"{DAY}T02:00:00Z", "to": f"{DAY}T01:00:00Z"}),
            (trips, {"from": f"{DAY}T00:00:00Z", "to": "2026-12-23T00:00:00Z"}),
            (trips, {"from": f"{DAY}T00:00:00", "to": f"{DAY}T01:00:00Z"}),
            (trips, {"to": f"{DAY}T01:00:00Z"}),
            (
                "/api/v1/vehicles/van-1/stops",
                {"from": f"{DAY}T00:00:00Z", "to": f"{DAY}T01:00:00Z", "limit": 0},
            ),
            ("/api/v1/vehicles/van-1/distance", {"from": DAY, "to": "2027-01-01"}),
            ("/api/v1/vehicles/van-1/distance", {"from": DAY, "to": "2026-11-01"}),
        ],
    )
    missing, backwards, too_long, naive, no_from, no_page, too_many_days, days_backwards = responses
    assert (missing.status_code, missing.json()["detail"]) == (404, "vehicle van-404 not found")
    for r in responses[1:]:
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
    assert backwards.json()["errors"][0]["loc"] == ["query", "from"]
    assert too_long.json()["detail"] == "the window may span at most 7 days"
    assert naive.json()["errors"][0]["loc"] == ["query", "from"]
    assert no_from.json()["errors"][0]["loc"] == ["query", "from"]
    assert no_page.json()["errors"][0]["loc"] == ["query", "limit"]
    assert too_many_days.json()["detail"] == "at most 31 days per request"
    assert days_backwards.json()["errors"][0]["loc"] == ["query", "from"]
