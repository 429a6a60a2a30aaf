"""The late-stop watcher tells the live feed of each alert it stored, once, after the commit; a
publisher that fails loses the push (the page still reads the alert from ``/events``), never the
watcher."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import Vehicle, VehicleEventRow
from cloud.services.route_alerts import LATE_KIND, LateStop, LateStopWatcher
from cloud.settings import Role
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, eventually, hub_settings
from tests.cloud.test_plans_api import _position


async def _dispatched_yesterday(session_factory: sessionmaker[Session], database_url: str) -> str:
    """Yesterday's plan, dispatched: s1's window (until 12:00) closed undone, so it is late."""
    with session_factory() as session, session.begin():
        for vid in ("van-1", "van-2"):
            session.add(Vehicle(id=vid, online=True, version=""))
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub", headers=auth(Role.OPS)
        ) as api:
            r = await api.post("/api/v1/plans", json=plan_rigs.request(day=day.isoformat()))
            assert r.status_code == 202, r.text
            done = await plan_rigs.finished(api, r.json()["id"])
            assert done["status"] == "done", done
            r = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
            assert r.status_code == 202, r.text
    finally:
        app.state.plan_runner.close()
    # Both vans report from the depot that evening: the hub predicts their stops from there.
    depot = plan_rigs.PROBLEM["depots"][0]["location"]
    evening = dt.datetime(day.year, day.month, day.day, 23, 50, tzinfo=dt.UTC)
    with session_factory() as session, session.begin():
        for vid in ("van-1", "van-2"):
            session.add(_position(vid, evening, depot[0], depot[1]))
    return str(done["id"])


def _stored(session_factory: sessionmaker[Session]) -> list[VehicleEventRow]:
    with session_factory() as session:
        return list(
            session.scalars(select(VehicleEventRow).where(VehicleEventRow.kind == LATE_KIND))
        )


@contextlib.asynccontextmanager
async def _running(watcher: LateStopWatcher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(watcher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_each_stored_late_stop_is_published_once_as_it_was_stored(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    plan_id = await _dispatched_yesterday(session_factory, database_url)
    heard: list[LateStop] = []
    watcher = LateStopWatcher(
        session_factory=session_factory, interval_s=0.05, publish=heard.append
    )
    async with _running(watcher):
        await eventually(lambda: watcher.alerts or None, timeout=20, what="a late-stop alert")
        await asyncio.sleep(0.3)  # several more passes: nothing is told twice
    rows = _stored(session_factory)
    assert len(heard) == len(rows) == watcher.alerts
    told = {(a.vehicle_id, a.stop_id, a.late_by_s, a.plan_id, a.at) for a in heard}
    assert told == {
        (r.vehicle_id, r.evidence["stop_id"], r.evidence["late_by_s"], r.evidence["plan_id"], r.at)
        for r in rows
    }
    assert "s1" in {a.stop_id for a in heard}
    assert {a.plan_id for a in heard} == {plan_id}


async def test_a_failing_publisher_loses_the_push_not_the_watcher(
    session_factory: sessionmaker[Session], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _dispatched_yesterday(session_factory, database_url)

    def broken(alert: LateStop) -> None:
        raise RuntimeError("no page to tell")

    watcher = LateStopWatcher(session_factory=session_factory, interval_s=0.05, publish=broken)
    with caplog.at_level(logging.ERROR, logger="cloud.services.route_alerts"):
        async with _running(watcher) as task:
            await eventually(lambda: watcher.alerts or None, timeout=20, what="a late-stop alert")
            await asyncio.sleep(0.2)
            assert not task.done(), "the watcher keeps running"
    assert "could not publish the late stop" in caplog.text
    assert len(_stored(session_factory)) == watcher.alerts, "stored all the same"
