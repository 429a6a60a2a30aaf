"""A closed day's trips and stops, stored by the KPI rebuild, answer ``/trips``, ``/stops`` and
``/distance`` exactly as derived on read, on SQLite and PostgreSQL; other windows, stale days and
other trip rules are derived as before."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import insert, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import PositionRow, StoredTrip
from cloud.services.kpi_rebuild import rebuild_day
from cloud.services.trips import TripRules
from cloud.settings import Role
from tests.cloud.helpers import auth, hub_settings
from tests.cloud.test_kpis_api import DAY, FLEET, _seed

START = f"{DAY}T00:00:00+00:00"
END = "2026-11-24T00:00:00+00:00"
PATHS = (
    ("/api/v1/vehicles/van-1/trips", {"from": START, "to": END}),
    ("/api/v1/vehicles/van-1/stops", {"from": START, "to": END}),
    ("/api/v1/vehicles/van-1/distance", {"from": DAY}),
    ("/api/v1/vehicles/van-1/trips", {"from": START, "to": "2026-11-23T09:00:00+00:00"}),
)


def _bodies(
    session_factory: sessionmaker[Session], database_url: str, rules: TripRules | None = None
) -> list[Any]:
    settings = hub_settings(database_url=database_url, fleet=FLEET, trips=rules or TripRules())
    app = create_app(settings=settings, session_factory=session_factory)

    async def story() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            out = []
            for path, params in PATHS:
                r = await api.get(path, params=params, headers=auth(Role.VIEWER))
                assert r.status_code == 200, r.text
                out.append(r.json())
            return out

    return asyncio.run(story())


def _rebuild(session_factory: sessionmaker[Session]) -> None:
    rebuild_day(
        session_factory,
        day=datetime.fromisoformat(START).date(),
        fleet=FLEET,
        rules=TripRules(),
        now=datetime.fromisoformat(END) + timedelta(hours=1),
    )


def test_a_stored_day_answers_as_the_derivation_and_is_what_answers(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    derived = _bodies(session_factory, database_url)
    assert derived[0]["count"] == 2 and derived[1]["count"] == 2
    _rebuild(session_factory)
    assert _bodies(session_factory, database_url) == derived

    with session_factory() as session, session.begin():
        session.execute(update(StoredTrip).values(distance_m=1.5))
    tampered = _bodies(session_factory, database_url)
    assert tampered[0]["distance_m"] == 3.0  # the whole day: from the table
    assert tampered[2]["data"][0]["distance_m"] == 3.0
    assert tampered[3] == derived[3]  # a part of the day: derived from the fixes
    # other trip rules than the day was built with: derived again
    other = TripRules(stop_min_s=240)
    assert _bodies(session_factory, database_url, other)[0]["distance_m"] != 3.0


def test_late_fixes_of_a_stored_day_are_derived_until_it_is_rebuilt(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    van = _seed(session_factory)
    _rebuild(session_factory)
    with session_factory() as session, session.begin():
        session.execute(update(StoredTrip).values(distance_m=1.5))
        last = van.points[-1]
        # a late batch: the van drove on after the last fix the hub had seen (1 km north)
        session.execute(
            insert(PositionRow),
            [
                {
                    "vehicle_id": "van-1",
                    "t": last.t + timedelta(seconds=k + 1),
                    "lat": last.lat + 0.0001 * (k + 1),
                    "lon": last.lon,
                    "message_id": uuid.uuid4(),
                }
                for k in range(90)
            ],
        )
    late = _bodies(session_factory, database_url)
    assert late[0]["count"] == 3 and late[0]["distance_m"] > 1000  # derived, with the late trip
    _rebuild(session_factory)
    assert _bodies(session_factory, database_url) == late
    assert datetime.fromisoformat(late[0]["data"][-1]["end"]) < datetime.fromisoformat(END)
    assert datetime.fromisoformat(late[0]["data"][-1]["end"]).tzinfo is not None


def test_a_day_of_fixes_comes_as_columns(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    van = _seed(session_factory)
    app = create_app(
        settings=hub_settings(database_url=database_url, fleet=FLEET),
        session_factory=session_factory,
    )

    async def story() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            return [
                await api.get(path, params=params, headers=auth(Role.VIEWER))
                for path, params in (
                    ("/api/v1/vehicles/van-1/track", {"from": START, "to": END}),
                    ("/api/v1/vehicles/van-1/track", {"from": START, "to": "2026-11-25T00:00Z"}),
                    ("/api/v1/vehicles/van-9/track", {"from": START, "to": END}),
                )
            ]

    day, too_long, nobody = asyncio.run(story())
    assert day.status_code == 200, day.text
    body = day.json()
    assert body["count"] == len(van.points) == len(body["t"]) == len(body["lon"])
    assert body["t"] == [p.t.timestamp() for p in van.points]
    assert (body["lat"], body["lon"]) == ([p.lat for p in van.points], [p.lon for p in van.points])
    assert too_long.status_code == 422 and "at most 1 day" in too_long.text
    assert nobody.status_code == 404
