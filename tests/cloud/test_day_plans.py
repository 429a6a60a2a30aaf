"""Planning a depot's day from the hub's own parcels (``/depots`` + ``POST /plans/from-hub``), on
SQLite and PostgreSQL: home parcels become stops, locker parcels one stop per locker within its
free compartments, parcels that cannot be planned are listed with the reason, and the dispatch
puts each parcel on its van, out for delivery."""

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
from cloud.fleet import FleetSettings
from cloud.models import Locker, Parcel, ParcelEvent, Vehicle
from cloud.settings import Role
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, hub_settings

DEPOT = (52.3700, 4.9000)


@pytest.fixture
async def api(
    session_factory: sessionmaker[Session], database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
        # Four compartments: S, S, M, L.
        session.add(
            Locker(
                id="locker-1", compartments=4, online=True, version="", sizes=["S", "S", "M", "L"]
            )
        )
    settings = hub_settings(database_url=database_url, fleet=FleetSettings(default_depot="north"))
    app = create_app(settings=settings, session_factory=session_factory)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub", headers=auth(Role.OPS)
    ) as client:
        yield client
    app.state.plan_runner.close()


async def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


async def _sites(api: httpx.AsyncClient) -> None:
    await _ok(
        await api.put(
            "/api/v1/depots/north", json={"lat": DEPOT[0], "lon": DEPOT[1], "closes_s": 172_800}
        )
    )
    for van in ("van-1", "van-2"):
        await _ok(
            await api.put(
                f"/api/v1/depots/north/vans/{van}",
                json={
                    "capacity_parcels": 3,
                    "shift_start_s": 0,
                    "shift_end_s": 172_800,
                    "type": "e_van",
                },
            )
        )
    await _ok(
        await api.put("/api/v1/depots/north/lockers/locker-1", json={"lat": 52.372, "lon": 4.905})
    )


async def _at_depot(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    made = await _ok(await api.post("/api/v1/parcels", json=body), 201)
    await _ok(await api.post(f"/api/v1/parcels/{made['id']}/transitions", json={"to": "at_depot"}))
    return str(made["id"])


async def test_a_depots_day_is_planned_from_its_parcels_and_the_dispatch_loads_the_vans(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    await _sites(api)
    depot = await _ok(await api.get("/api/v1/depots/north"))
    assert [v["vehicle_id"] for v in depot["vans"]] == ["van-1", "van-2"]
    assert depot["lockers"][0]["locker_id"] == "locker-1"
    end = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    start = dt.datetime.now(dt.UTC).isoformat()
    homes = [
        await _at_depot(
            api,
            {
                "address": f"Street {k}",
                "lat": DEPOT[0] + 0.003 * k,
                "lon": DEPOT[1] - 0.002 * k,
                "window_start": start,
                "window_end": end,
            },
        )
        for k in (1, 2, 3)
    ]
    not_yet = await _ok(
        await api.post("/api/v1/parcels", json={"address": "X 1", "lat": 52.36, "lon": 4.9}), 201
    )
    small, medium, large = [
        await _at_depot(api, {"locker_id": "locker-1", "size": s}) for s in "SML"
    ]
    with session_factory() as session, session.begin():
        # An older row (imported before the API insisted on coordinates) with no position, and a
        # parcel already in the L compartment, so the large one has nowhere to go.
        lost = Parcel(
            id=uuid.uuid4(),
            status="at_depot",
            address="Somewhere 9",
            created_at=dt.datetime.now(dt.UTC),
            updated_at=dt.datetime.now(dt.UTC),
            size="M",
            attempts=0,
            reference="",
        )
        session.add(lost)
        session.add(
            Parcel(
                id=uuid.uuid4(),
                status="deposited",
                locker_id="locker-1",
                compartment=4,
                size="L",
                created_at=dt.datetime.now(dt.UTC),
                updated_at=dt.datetime.now(dt.UTC),
                attempts=0,
                reference="",
            )
        )

    queued = await _ok(
        await api.post(
            "/api/v1/plans/from-hub", json={"depot": "north", "time_limit_s": 0.5, "seed": 1}
        ),
        202,
    )
    done = await plan_rigs.finished(api, queued["id"])
    assert done["status"] == "done", done
    assert done["depot"] == "north"
    stops = {k: set(v) for k, v in done["parcels"].items()}
    assert stops == {
        **{f"parcel-{h}": {h} for h in homes},
        "locker-1": {small, medium},  # one locker stop; the L parcel does not fit
    }
    assert str(not_yet["id"]) not in {p for v in stops.values() for p in v}  # still "created"
    dropped = {d["parcel_id"]: d["reason"] for d in done["dropped_parcels"]}
    assert dropped.keys() == {str(lost.id), large}
    assert "no coordinates" in dropped[str(lost.id)]
    assert "locker locker-1 is full" in dropped[large] and "size L" in dropped[large]
    routed = {
        v["stop_id"]: r["van_id"]
        for r in done["plan"]["routes"]
        for v in r["visits"]
        if v["kind"] == "stop"
    }
    assert set(routed) == set(stops)  # 5 parcels in 4 stops, 3 + 3 places: all fit

    await _ok(await api.post(f"/api/v1/plans/{done['id']}/dispatch"), 202)
    with session_factory() as session:
        for stop_id, parcel_ids in stops.items():
            for pid in parcel_ids:
                parcel = session.get(Parcel, uuid.UUID(pid))
                assert parcel is not None
                assert (parcel.status, parcel.vehicle_id) == ("out_for_delivery", routed[stop_id])
                event = session.scalars(
                    select(ParcelEvent)
                    .where(ParcelEvent.parcel_id == parcel.id)
                    .order_by(ParcelEvent.id.desc())
                ).first()
                assert event is not None and event.source == "plan"
                assert event.detail["plan_id"] == done["id"]
        assert session.get(Parcel, uuid.UUID(large)).status == "at_depot"  # type: ignore[union-attr]
    # Dispatched once: a second dispatch is refused and moves no parcel.
    assert (await api.post(f"/api/v1/plans/{done['id']}/dispatch")).status_code == 409

    # van-1 breaks down: the depot is planned again without it. Its parcels (out for delivery
    # now) go onto van-2 as far as van-2's three places allow; the rest are listed as dropped.
    body = {"depot": "north", "exclude_vans": ["van-1"], "time_limit_s": 0.5, "seed": 1}
    queued = await _ok(await api.post("/api/v1/plans/from-hub", json=body), 202)
    again = await plan_rigs.finished(api, queued["id"])
    assert {r["van_id"] for r in again["plan"]["routes"]} == {"van-2"}
    moved = {
        p
        for r in again["plan"]["routes"]
        for v in r["visits"]
        if v["kind"] == "stop"
        for p in again["parcels"][v["stop_id"]]
    }
    assert 1 <= len(moved) <= 3
    left_out = {d["parcel_id"] for d in again["dropped_parcels"]}
    assert left_out == ({*homes, small, medium, str(lost.id), large} - moved)
    was_on_van_1 = {p for s, ps in stops.items() if routed[s] == "van-1" for p in ps}
    await _ok(await api.post(f"/api/v1/plans/{again['id']}/dispatch"), 202)
    with session_factory() as session:
        for pid in moved:
            parcel = session.get(Parcel, uuid.UUID(pid))
            assert parcel is not None and parcel.vehicle_id == "van-2"
            kinds = list(
                session.scalars(select(ParcelEvent.kind).where(ParcelEvent.parcel_id == parcel.id))
            )
            assert ("vehicle_assigned" in kinds) == (pid in was_on_van_1), kinds


async def test_a_plan_from_the_hub_refuses_a_depot_it_cannot_plan(api: httpx.AsyncClient) -> None:
    r = await api.post("/api/v1/plans/from-hub", json={"depot": "nowhere"})
    assert r.status_code == 422 and "has no site" in r.text
    await _ok(
        await api.put("/api/v1/depots/north", json={"lat": 52.37, "lon": 4.9, "closes_s": 172_800})
    )
    r = await api.post("/api/v1/plans/from-hub", json={"depot": "north"})
    assert r.status_code == 422 and "no van on shift" in r.text
    r = await api.put(
        "/api/v1/depots/north", json={"lat": 52.37, "lon": 4.9, "opens_s": 600, "closes_s": 60}
    )
    assert r.status_code == 422 and "closes_s" in r.text
    r = await api.put(
        "/api/v1/depots/elsewhere/vans/van-1",
        json={"capacity_parcels": 3, "shift_start_s": 0, "shift_end_s": 3600},
    )
    assert r.status_code == 404 and "depot elsewhere" in r.text
    r = await api.put(
        "/api/v1/depots/north/vans/van-1",
        json={"capacity_parcels": 0, "shift_start_s": 0, "shift_end_s": 3600},
    )
    assert r.status_code == 422
    assert (await api.delete("/api/v1/depots/north/vans/van-9")).status_code == 404
