"""``/plans`` end to end on SQLite and PostgreSQL: a job solved on the worker thread, its plan,
dispatch through the outbox, progress from stored positions, a re-plan, and garbage refused."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import OutboundMessage, PlanJob, PositionRow, Vehicle
from cloud.services.plan_jobs import PlanRunner
from cloud.services.route_alerts import check_late
from cloud.settings import Role
from protocol.codec import decode
from protocol.messages import Route
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, hub_settings

DAY = dt.date(2026, 12, 1)
ORIGIN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
async def api(
    session_factory: sessionmaker[Session], database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    with session_factory() as session, session.begin():
        for vid in ("van-1", "van-2"):
            session.add(Vehicle(id=vid, online=True, version=""))
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub", headers=auth(Role.OPS)
    ) as client:
        yield client
    app.state.plan_runner.close()


async def _plan(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    r = await api.post("/api/v1/plans", json=plan_rigs.request(day=DAY.isoformat(), **overrides))
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["status"] in ("queued", "running") and queued["plan"] is None, queued
    return await plan_rigs.finished(api, queued["id"])


def _stops(plan: dict[str, Any]) -> dict[str, list[str]]:
    return {
        r["van_id"]: [v["stop_id"] for v in r["visits"] if v["kind"] == "stop"]
        for r in plan["routes"]
    }


async def test_a_job_is_solved_off_the_request_and_returns_its_plan(
    api: httpx.AsyncClient,
) -> None:
    done = await _plan(api)
    assert done["status"] == "done" and done["progress"] == 1.0, done
    plan = done["plan"]
    served = sorted(s for stops in _stops(plan).values() for s in stops)
    assert served == ["s1", "s2", "s3", "s4"]
    # Capacity 3 per van: four parcels need both vans.
    assert len(plan["routes"]) == 2
    assert [d["stop_id"] for d in plan["dropped"]] == ["early"]
    assert plan["dropped"][0]["reason"]
    assert plan["distance_m"] > 0 and plan["co2_kg"] > 0
    for route in plan["routes"]:
        starts = [v["start"] for v in route["visits"]]
        assert starts == sorted(starts) and starts[0] >= 8 * 3600
    listed = (await api.get("/api/v1/plans")).json()
    assert listed["count"] == 1 and listed["data"][0]["id"] == done["id"]


async def test_an_unsolvable_job_fails_with_the_reason_and_cannot_be_dispatched(
    api: httpx.AsyncClient,
) -> None:
    problem = plan_rigs.problem()
    problem["stops"][-1]["required"] = True  # 'early' must be served, and cannot be
    done = await _plan(api, problem=problem)
    assert done["status"] == "failed" and done["error"], done
    r = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    assert "failed" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"problem": {"depots": []}}, '"problem","vans"'),
        ({**plan_rigs.request(), "time_limit_s": 0}, '"time_limit_s"'),
        ({**plan_rigs.request(), "time_limit_s": 3600}, '"time_limit_s"'),
        ({**plan_rigs.request(), "surprise": 1}, '"surprise"'),
        (
            {"problem": {**plan_rigs.problem(), "stops": [plan_rigs.PROBLEM["stops"][0]] * 2}},
            "s1",
        ),
    ],
)
async def test_garbage_requests_are_refused_with_a_problem(
    api: httpx.AsyncClient, body: dict[str, Any], words: str
) -> None:
    r = await api.post("/api/v1/plans", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert words in r.text
    assert (await api.get("/api/v1/plans")).json()["count"] == 0


async def test_a_problem_that_cannot_be_built_is_refused_before_it_is_queued(
    api: httpx.AsyncClient,
) -> None:
    problem = plan_rigs.problem()
    problem["vans"][0]["depot"] = "nowhere"
    r = await api.post("/api/v1/plans", json={"problem": problem})
    assert r.status_code == 422 and "nowhere" in r.json()["detail"], r.text
    r = await api.get(f"/api/v1/plans/{uuid.uuid4()}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await api.post("/api/v1/plans/not-a-uuid/dispatch")
    assert r.status_code == 422


def _position(vid: str, t: dt.datetime, lat: float, lon: float) -> PositionRow:
    return PositionRow(
        vehicle_id=vid,
        t=t,
        lat=lat,
        lon=lon,
        speed_mps=None,
        heading_deg=None,
        alt_m=None,
        hdop=None,
        sats=None,
        fix=None,
        message_id=uuid.uuid4(),
    )


async def test_dispatch_queues_retained_routes_progress_follows_positions_and_replan_keeps_them(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    done = await _plan(api)
    routes = _stops(done["plan"])
    r = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
    assert r.status_code == 202, r.text
    dispatched = r.json()
    assert {x["vehicle_id"]: x["state"] for x in dispatched["routes"]} == {
        v: "sent" for v in routes
    }
    again = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
    assert again.status_code == 409, again.text
    with session_factory() as session:
        queued = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).all()
    assert sorted(m.topic for m in queued) == sorted(f"fleet/{v}/route" for v in routes)
    assert all(m.retain and m.qos == 1 for m in queued)
    message = decode(queued[0].payload, Route)
    assert [s.stop_id for s in message.stops] == routes[message.device_id]
    assert message.stops[0].eta.date() == DAY

    # van-1 drives to its first stop and waits there (two fixes inside the geofence).
    van1 = "van-1"
    first = next(s for s in done["plan"]["routes"] if s["van_id"] == van1)["visits"][0]["stop_id"]
    loc = next(s["location"] for s in plan_rigs.PROBLEM["stops"] if s["id"] == first)
    nine = ORIGIN + dt.timedelta(hours=9)
    with session_factory() as session, session.begin():
        for k in range(3):
            session.add(_position(van1, nine + dt.timedelta(seconds=10 + k), loc[0], loc[1]))
        # van-2 has left the depot and stops on the road, where it will break down.
        session.add(_position("van-2", nine, 52.3750, 4.9050))
    seen = (await api.get(f"/api/v1/plans/{done['id']}")).json()
    state = {x["vehicle_id"]: x for x in seen["routes"]}
    assert state[van1]["completed"] == [first]
    assert {e["stop_id"] for e in seen["etas"]} == (
        set(routes[van1]) - {first} | set(routes["van-2"])
    ), "ETAs are refreshed for the stops still to do of the vans with a position"

    # A new order, a cancelled stop, and van-2 broken down: re-plan what remains.
    cancelled = next(s for s in routes[van1] if s != first) if len(routes[van1]) > 1 else None
    body: dict[str, Any] = {
        "new_stops": [{"id": "new-1", "location": [52.3900, 4.9000], "kind": "pickup"}],
        "cancelled": [cancelled] if cancelled else [],
        "broken": ["van-2"],
        "time_limit_s": 0.5,
        "at": (nine + dt.timedelta(minutes=1)).isoformat(),
    }
    r = await api.post(f"/api/v1/plans/{done['id']}/replan", json=body)
    assert r.status_code == 202, r.text
    again_done = await plan_rigs.finished(api, r.json()["id"])
    assert again_done["status"] == "done", again_done
    assert again_done["parent_id"] == done["id"]
    new_routes = _stops(again_done["plan"])
    assert set(new_routes) <= {van1}, "the broken-down van has no route"
    assert first not in new_routes.get(van1, []), "the completed stop is not planned again"
    assert "new-1" in new_routes.get(van1, []), "the new pickup goes on the van still running"
    if cancelled:
        assert cancelled not in new_routes.get(van1, [])
    dropped = {d["stop_id"] for d in again_done["plan"]["dropped"]}
    assert set(routes["van-2"]) <= dropped, "van-2's parcels are on board: stranded, reported"
    r = await api.post(f"/api/v1/plans/{again_done['id']}/dispatch")
    assert r.status_code == 202, r.text

    bad = await api.post(f"/api/v1/plans/{done['id']}/replan", json={"broken": ["van-9"]})
    assert bad.status_code == 422 and "van-9" in bad.json()["detail"]
    bad = await api.post(f"/api/v1/plans/{done['id']}/replan", json={"cancelled": ["nope"]})
    assert bad.status_code == 422 and "nope" in bad.json()["detail"]


async def test_a_stop_predicted_late_raises_one_alert_in_the_event_feed(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    done = await _plan(api)
    owner = next(v for v, stops in _stops(done["plan"]).items() if "s1" in stops)
    assert (await api.post(f"/api/v1/plans/{done['id']}/dispatch")).status_code == 202
    # At 11:58 the van is still at the depot; s1's window closes at 12:00, so it will be late.
    late_at = ORIGIN + dt.timedelta(hours=11, minutes=58)
    with session_factory() as session, session.begin():
        session.add(_position(owner, late_at, 52.3700, 4.9000))
    with session_factory() as session:
        assert check_late(session, now=lambda: late_at) >= 1
        assert check_late(session, now=lambda: late_at) == 0, "each late stop alerts once"
    seen = (await api.get(f"/api/v1/plans/{done['id']}")).json()
    assert seen["late"][0]["stop_id"] == "s1" and seen["late"][0]["late_by_s"] > 0
    feed = (await api.get("/api/v1/events", params={"alerts_only": "true"})).json()["data"]
    alerts = [e for e in feed if e["kind"] == "route_late"]
    assert [
        (e["device_id"], e["severity"]) for e in alerts if e["evidence"]["stop_id"] == "s1"
    ] == [(owner, "warning")]


async def test_after_a_restart_running_jobs_fail_and_queued_ones_are_solved(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    done = await _plan(api)
    with session_factory() as session, session.begin():
        for status, job_id in (("running", uuid.uuid4()), ("queued", uuid.uuid4())):
            row = session.get(PlanJob, uuid.UUID(done["id"]))
            assert row is not None
            session.add(
                PlanJob(
                    id=job_id,
                    status=status,
                    progress=0.0,
                    spec=row.spec,
                    broken=[],
                    options=row.options,
                    result=None,
                    error="",
                    parent_id=None,
                    created_by="ops",
                    created_at=row.created_at,
                    finished_at=None,
                    dispatched_at=None,
                )
            )
    runner = PlanRunner(session_factory=session_factory)
    try:
        assert runner.recover() == 1
    finally:
        runner.close()  # waits for the queued one
    listed = (await api.get("/api/v1/plans")).json()["data"]
    assert sorted(p["status"] for p in listed) == ["done", "done", "failed"]
    assert any("restarted" in p["error"] for p in listed)
