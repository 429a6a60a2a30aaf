"""``GET /api/v1/kpis`` over stored positions and parcel histories, on SQLite and PostgreSQL: the
reads feed the definitions what the hand-worked tests (``test_kpis.py``) assume."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.fleet import FleetSettings, VehicleProfile
from cloud.models import Locker, Parcel, ParcelEvent, PositionRow, Vehicle
from cloud.services.trips import TripRules, analyse
from cloud.settings import Role
from tests.cloud.helpers import auth, hub_settings
from tests.cloud.track_rigs import T0, TrackBuilder

DAY = "2026-11-23"
FLEET = FleetSettings(
    vehicles={"van-1": VehicleProfile(type="e_van", depot="north")},
    lockers={"locker-1": "north"},
)


def _history(
    session: Session,
    *,
    vehicle_id: str | None,
    locker_id: str | None,
    steps: list[tuple[datetime, str | None, str]],
    window: tuple[datetime, datetime] | None = None,
) -> None:
    pid = uuid.uuid4()
    session.add(
        Parcel(
            id=pid,
            status=steps[-1][2],
            vehicle_id=vehicle_id,
            locker_id=locker_id,
            compartment=1 if locker_id else None,
            address=None if locker_id else "Dam 1",
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            created_at=steps[0][0],
            updated_at=steps[-1][0],
        )
    )
    session.flush()
    for at, frm, to in steps:
        session.add(
            ParcelEvent(
                parcel_id=pid,
                at=at,
                kind=to,
                from_status=frm,
                to_status=to,
                source="test",
                detail={},
            )
        )
    # a code issued leaves a history line without a status change: not a transition
    session.add(ParcelEvent(parcel_id=pid, at=steps[-1][0], kind="code_issued", detail={}))


def _seed(session_factory: sessionmaker[Session]) -> TrackBuilder:
    van = TrackBuilder(noise_m=2.0).start().drive(1800, speed_mps=10).park(900)
    van.drive(1200, speed_mps=8).park(600)
    h = timedelta(hours=1)
    ofd = "out_for_delivery"
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
        session.add(Vehicle(id="van-2", online=True, version=""))  # default depot, no drive
        session.add(Locker(id="locker-1", compartments=10, online=True, version=""))
        session.flush()
        session.execute(
            insert(PositionRow),
            [
                {
                    "vehicle_id": "van-1",
                    "t": p.t,
                    "lat": p.lat,
                    "lon": p.lon,
                    "message_id": uuid.uuid4(),
                }
                for p in van.points
            ],
        )
        start = [
            (T0 - 2 * h, None, "created"),
            (T0 - h, "created", "at_depot"),
            (T0, "at_depot", ofd),
        ]
        # home, on time
        _history(
            session,
            vehicle_id="van-1",
            locker_id=None,
            steps=[*start, (T0 + h, ofd, "delivered")],
            window=(T0, T0 + 2 * h),
        )
        # home, failed first attempt
        _history(
            session, vehicle_id="van-1", locker_id=None, steps=[*start, (T0 + h, ofd, "at_depot")]
        )
        # locker: deposited the day before at 19:00, picked up at 09:00 today (14 h dwell)
        _history(
            session,
            vehicle_id="van-1",
            locker_id="locker-1",
            steps=[
                *[(t - 24 * h, f, s) for t, f, s in start],
                (T0 + 12 * h - 24 * h, ofd, "deposited"),
                (T0 + 2 * h, "deposited", "picked_up"),
            ],
        )
        # locker, deposited at 08:00 and still inside
        _history(
            session,
            vehicle_id="van-1",
            locker_id="locker-1",
            steps=[*start, (T0 + h, ofd, "deposited")],
        )
    return van


def _get(
    session_factory: sessionmaker[Session], database_url: str, *params: dict[str, Any]
) -> list[httpx.Response]:
    app = create_app(
        settings=hub_settings(database_url=database_url, fleet=FLEET),
        session_factory=session_factory,
    )

    async def story() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            return [
                await api.get("/api/v1/kpis", params=p, headers=auth(Role.VIEWER)) for p in params
            ]

    return asyncio.run(story())


def test_a_stored_day_gives_each_depot_and_van_its_kpis_on_both_databases(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    van = _seed(session_factory)
    every, north, one = _get(
        session_factory,
        database_url,
        {"from": DAY},
        {"from": DAY, "to": DAY, "depot": "north"},
        {"from": DAY, "vehicle_id": "van-1"},
    )
    assert every.status_code == 200, every.text
    body = every.json()
    assert (body["from"], body["to"]) == (DAY, DAY)
    rows = {(r["depot"], r["vehicle_id"]): r for r in body["data"]}
    assert set(rows) == {("north", None), ("north", "van-1"), ("main", None), ("main", "van-2")}
    row = rows[("north", "van-1")]
    journey = analyse(van.points, rules=TripRules())
    road_s = (journey.trips[-1].end - journey.trips[0].start).total_seconds()
    assert len(journey.trips) == 2 and road_s == pytest.approx(1800 + 900 + 1200, abs=5)
    assert row["handovers"] == 2  # the home delivery and this morning's deposit
    assert (row["on_time"], row["on_time_eligible"], row["on_time_pct"]) == (1, 1, 100.0)
    assert (row["first_attempt_successes"], row["first_attempts"]) == (2, 3)
    assert row["distance_m"] == pytest.approx(journey.distance_m, abs=1e-6)
    assert row["road_s"] == pytest.approx(road_s)
    assert row["deliveries_per_hour"] == pytest.approx(2 / (road_s / 3600))
    assert row["km_per_parcel"] == pytest.approx(journey.distance_m / 1000 / 2)
    assert row["co2_g_per_parcel"] == pytest.approx(journey.distance_m / 1000 * 50 / 2)
    assert (row["pickups"], row["dwell_median_s"]) == (1, 14 * 3600)
    idle = rows[("main", "van-2")]
    assert (idle["distance_m"], idle["deliveries_per_hour"], idle["handovers"]) == (0, None, 0)
    (locker,) = body["lockers"]
    # yesterday's parcel 00:00-09:00, this morning's 08:00-24:00: 25 of 240 compartment-hours
    assert locker["occupied_s"] == pytest.approx(25 * 3600)
    assert locker["utilisation_pct"] == pytest.approx(100 * 25 / 240)
    assert rows[("north", None)]["locker_utilisation_pct"] == pytest.approx(100 * 25 / 240)
    assert {(r["depot"], r["vehicle_id"]) for r in north.json()["data"]} == {
        ("north", None),
        ("north", "van-1"),
    }
    assert one.json()["data"] == [row] and one.json()["lockers"] == []


def test_bad_ranges_and_unknown_names_are_problems(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    backwards, too_long, no_van, no_depot, no_day = _get(
        session_factory,
        database_url,
        {"from": "2026-11-23", "to": "2026-11-22"},
        {"from": "2026-11-01", "to": "2026-12-31"},
        {"from": DAY, "vehicle_id": "van-9"},
        {"from": DAY, "depot": "atlantis"},
        {"to": DAY},
    )
    for r, status, words in (
        (backwards, 422, "'from' is after 'to'"),
        (too_long, 422, "at most 31 days"),
        (no_van, 404, "vehicle van-9 not found"),
        (no_depot, 404, "depot atlantis not found"),
        (no_day, 422, "from"),
    ):
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert words in r.text


def test_a_parcel_delivered_through_the_api_today_counts_today(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
    app = create_app(
        settings=hub_settings(database_url=database_url, fleet=FLEET),
        session_factory=session_factory,
    )
    ops = auth(Role.OPS)
    now = datetime.now(UTC)

    async def story() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            window = {
                "window_start": (now - timedelta(hours=1)).isoformat(),
                "window_end": (now + timedelta(hours=1)).isoformat(),
            }
            made = await api.post(
                "/api/v1/parcels",
                json={"address": "Dam 1", "lat": 52.37, "lon": 4.89, **window},
                headers=ops,
            )
            assert made.status_code == 201, made.text
            pid = made.json()["id"]
            for body in ({"to": "at_depot"}, {"to": "out_for_delivery", "vehicle_id": "van-1"}):
                r = await api.post(f"/api/v1/parcels/{pid}/transitions", json=body, headers=ops)
                assert r.status_code == 200, r.text
            r = await api.post(
                f"/api/v1/parcels/{pid}/delivery", json={"lat": 52.37, "lon": 4.89}, headers=ops
            )
            assert r.status_code == 201, r.text
            return await api.get(
                "/api/v1/kpis", params={"from": now.date().isoformat()}, headers=ops
            )

    r = asyncio.run(story())
    assert r.status_code == 200, r.text
    (van,) = [row for row in r.json()["data"] if row["vehicle_id"] == "van-1"]
    assert (van["handovers"], van["on_time_pct"], van["first_attempt_success_pct"]) == (
        1,
        100.0,
        100.0,
    )


def test_a_parcel_left_in_a_locker_occupies_it_on_days_it_did_not_move(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    (next_day,) = _get(session_factory, database_url, {"from": "2026-11-24"})
    assert next_day.status_code == 200, next_day.text
    (locker,) = next_day.json()["lockers"]
    # only this morning's deposit is still inside: 24 of 240 compartment-hours; the parcel
    # picked up on the 23rd is not counted again
    assert locker["occupied_s"] == pytest.approx(24 * 3600)
    assert locker["pickups"] == 0
    assert all(r["handovers"] == 0 for r in next_day.json()["data"])
