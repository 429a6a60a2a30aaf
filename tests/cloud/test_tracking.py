"""The customer's tracking link: no API key, an unguessable token kept only as a hash, an expiry,
a small page and a JSON twin, and an ETA: the dispatched route's for the parcel's stop (refreshed
from the van's positions, with the stops before it), else a straight line from the van."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import PlanDispatch, PositionRow, TrackingToken, Vehicle
from cloud.services.tracking import haversine_km
from cloud.settings import Role
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, hub_settings

DEST = (52.3745, 4.8897)
VAN = (52.3600, 4.8897)  # due south, 1.61 km


def _api(session_factory: sessionmaker[Session], database_url: str) -> httpx.AsyncClient:
    app = create_app(
        settings=hub_settings(database_url=database_url, eta_speed_kmh=20.0),
        session_factory=session_factory,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def test_the_link_shows_status_history_and_an_eta_while_out_for_delivery(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
    ops = auth(Role.OPS)

    async def story() -> tuple[dict[str, object], httpx.Response, httpx.Response, str]:
        async with _api(session_factory, database_url) as api:
            made = await api.post(
                "/api/v1/parcels",
                json={"address": "Dam 1", "lat": DEST[0], "lon": DEST[1], "reference": "T-1"},
                headers=ops,
            )
            token = made.json()["tracking_token"]
            pid = made.json()["id"]
            before = (await api.get(f"/track/{token}/json")).json()
            for body in ({"to": "at_depot"}, {"to": "out_for_delivery", "vehicle_id": "van-1"}):
                await api.post(f"/api/v1/parcels/{pid}/transitions", json=body, headers=ops)
            with session_factory() as session, session.begin():
                session.add(
                    PositionRow(
                        vehicle_id="van-1",
                        t=datetime.now(UTC) - timedelta(seconds=5),
                        lat=VAN[0],
                        lon=VAN[1],
                        message_id=uuid.uuid4(),
                    )
                )
            return (
                before,
                await api.get(f"/track/{token}/json"),
                await api.get(f"/track/{token}"),
                token,
            )

    before, after, page, token = asyncio.run(story())
    assert before["status"] == "created" and before["eta"] is None
    body = after.json()
    assert after.status_code == 200
    assert body["status"] == "out_for_delivery"
    assert body["destination"] == "address"
    assert [e["kind"] for e in body["history"]] == ["created", "at_depot", "out_for_delivery"]
    eta = body["eta"]
    km = haversine_km(*VAN, *DEST)
    assert abs(eta["distance_km"] - km) < 0.01 and 1.5 < km < 1.7
    assert eta["speed_kmh"] == 20.0
    assert eta["source"] == "estimate" and eta["stops_before"] is None
    assert "on no dispatched route" in eta["method"]
    at = datetime.fromisoformat(eta["at"])
    expected = datetime.now(UTC) + timedelta(hours=km / 20.0)
    assert abs((at - expected).total_seconds()) < 60
    assert "van-1" not in after.text and "grant" not in after.text

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "out for delivery" in page.text and "T-1" in page.text and "Expected around" in page.text

    with session_factory() as session:
        stored = session.scalars(select(TrackingToken.token_hash)).one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()


def test_an_unknown_or_expired_link_shows_nothing(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            made = await api.post(
                "/api/v1/parcels",
                json={"address": "Dam 1", "lat": 1.0, "lon": 2.0, "reference": "secret-ref"},
                headers=auth(Role.INTEGRATION),
            )
            token = made.json()["tracking_token"]
            with session_factory() as session, session.begin():
                session.execute(
                    update(TrackingToken).values(expires_at=datetime.now(UTC) - timedelta(1))
                )
            return [
                await api.get(f"/track/{token}/json"),
                await api.get(f"/track/{token}"),
                await api.get(f"/track/{token[:-1]}x/json"),
                await api.get("/track/x"),
            ]

    expired_json, expired_page, wrong, short = asyncio.run(story())
    for r in (expired_json, expired_page):
        assert r.status_code == 410, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert "expired" in r.json()["detail"]
    for r in (wrong, short):
        assert r.status_code == 404
        assert "secret-ref" not in r.text


def _fix(van: str, at: datetime, where: tuple[float, float]) -> PositionRow:
    return PositionRow(vehicle_id=van, t=at, lat=where[0], lon=where[1], message_id=uuid.uuid4())


def test_a_parcel_on_a_dispatched_route_shows_the_planners_eta_and_the_stops_before_it(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    """Plan the rig's day through the API, dispatch it, and track a parcel whose reference is
    the second stop of a route: first the ETA as dispatched (no fix yet), then, once the van's
    fixes show it at the first stop, the ETA the planner refreshes from them, one stop fewer."""
    today = datetime.now(UTC).date()
    with session_factory() as session, session.begin():
        session.add_all([Vehicle(id=v, online=True, version="") for v in ("van-1", "van-2")])
    ops = auth(Role.OPS)

    async def story() -> dict[str, Any]:
        async with _api(session_factory, database_url) as api:
            r = await api.post(
                "/api/v1/plans", json=plan_rigs.request(day=today.isoformat()), headers=ops
            )
            assert r.status_code == 202, r.text
            done = await plan_rigs.finished(api, r.json()["id"], headers=ops)
            assert done["status"] == "done", done
            r = await api.post(f"/api/v1/plans/{done['id']}/dispatch", headers=ops)
            assert r.status_code == 202, r.text
            with session_factory() as session:
                route = next(d for d in session.scalars(select(PlanDispatch)) if len(d.stops) >= 2)
                van, first, target = route.vehicle_id, route.stops[0], route.stops[1]
            made = await api.post(
                "/api/v1/parcels",
                json={
                    "address": "Keizersgracht 1",
                    "lat": target["lat"],
                    "lon": target["lon"],
                    "reference": target["stop_id"],
                },
                headers=ops,
            )
            token, pid = made.json()["tracking_token"], made.json()["id"]
            for body in ({"to": "at_depot"}, {"to": "out_for_delivery", "vehicle_id": van}):
                r = await api.post(f"/api/v1/parcels/{pid}/transitions", json=body, headers=ops)
                assert r.status_code == 200, r.text
            as_dispatched = (await api.get(f"/track/{token}/json")).json()
            now = datetime.now(UTC)
            with session_factory() as session, session.begin():
                session.add_all(
                    _fix(van, now - timedelta(seconds=s), (first["lat"], first["lon"]))
                    for s in (8, 6, 4)
                )
            refreshed = (await api.get(f"/track/{token}/json")).json()
            page = (await api.get(f"/track/{token}")).text
            plan = (await api.get(f"/api/v1/plans/{done['id']}", headers=ops)).json()
            return {
                "first": first,
                "target": target,
                "as_dispatched": as_dispatched["eta"],
                "refreshed": refreshed["eta"],
                "page": page,
                "plan_etas": {e["stop_id"]: e["eta"] for e in plan["etas"]},
            }

    seen = asyncio.run(story())
    before, after = seen["as_dispatched"], seen["refreshed"]
    assert before["source"] == "route" and before["stops_before"] == 1
    assert "as dispatched" in before["method"] and before["from_position_at"] is None
    assert datetime.fromisoformat(before["at"]) == datetime.fromisoformat(seen["target"]["eta"])
    assert after["source"] == "route" and after["stops_before"] == 0
    assert "refreshed from its latest position" in after["method"]
    assert after["from_position_at"] is not None and after["distance_km"] is None
    # The same arrival the planner's own progress report gives for that stop.
    plan_eta = datetime.fromisoformat(seen["plan_etas"][seen["target"]["stop_id"]])
    # (each read projects from its own "now": a loaded machine may put a second between them)
    assert abs((datetime.fromisoformat(after["at"]) - plan_eta).total_seconds()) <= 5
    assert seen["first"]["stop_id"] not in seen["plan_etas"]  # the van was seen there
    assert "the van's next stop" in seen["page"]
