"""A parcel's lifecycle through the API: created, at the depot, out for delivery, delivered at the
door with a proof or sent to a locker with a code that leaves the hub only as a keyed hash.

Every illegal move is a 409 problem naming both states; every change leaves a history line."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import Locker, OutboundMessage, Parcel, Vehicle
from cloud.settings import Role
from protocol.codec import decode
from protocol.codes import derive_locker_key, hash_code
from protocol.messages import Grant
from tests.cloud.helpers import MASTER_SECRET, auth, dump_database, hub_settings

HOME = {"address": "Keizersgracht 1, Amsterdam", "lat": 52.3745, "lon": 4.8897}


def _seed(session_factory: sessionmaker[Session], compartments: int = 2) -> None:
    with session_factory() as session, session.begin():
        session.add(Locker(id="locker-1", compartments=compartments, online=True, version=""))
        session.add(Vehicle(id="van-1", online=True, version=""))


def _api(session_factory: sessionmaker[Session], database_url: str) -> httpx.AsyncClient:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


async def _call(
    api: httpx.AsyncClient, method: str, path: str, json: Any = None, role: Role = Role.OPS
) -> httpx.Response:
    return await api.request(method, f"/api/v1{path}", json=json, headers=auth(role))


def test_a_home_parcel_goes_out_fails_once_and_is_delivered_with_a_proof(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    window = {"window_start": "2026-12-02T09:00:00Z", "window_end": "2026-12-02T11:00:00Z"}

    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            made = await _call(
                api, "POST", "/parcels", {**HOME, **window, "reference": "H-1"}, Role.INTEGRATION
            )
            pid = made.json()["id"]
            steps = [made]
            for body in (
                {"to": "at_depot"},
                {"to": "out_for_delivery", "vehicle_id": "van-1"},
            ):
                steps.append(await _call(api, "POST", f"/parcels/{pid}/transitions", body))
            steps.append(
                await _call(api, "POST", f"/parcels/{pid}/attempts", {"reason": "nobody home"})
            )
            steps.append(
                await _call(api, "POST", f"/parcels/{pid}/transitions", {"to": "out_for_delivery"})
            )
            steps.append(
                await _call(
                    api,
                    "POST",
                    f"/parcels/{pid}/delivery",
                    {"lat": 52.37451, "lon": 4.88972, "note": "handed to neighbour"},
                )
            )
            steps.append(await _call(api, "GET", f"/parcels/{pid}", role=Role.INTEGRATION))
            steps.append(await _call(api, "GET", f"/parcels/{pid}/events", role=Role.VIEWER))
            steps.append(await _call(api, "GET", f"/parcels/{pid}/proofs", role=Role.VIEWER))
            return steps

    made, depot, out, failed, again, proof, final, events, proofs = asyncio.run(story())
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["status"] == "created"
    assert created["window_start"] == "2026-12-02T09:00:00Z"
    assert created["tracking_path"] == f"/track/{created['tracking_token']}"
    assert len(created["tracking_token"]) >= 43  # 32 random bytes, URL-safe base64
    for r in (depot, out, failed, again):
        assert r.status_code == 200, r.text
    assert out.json()["vehicle_id"] == "van-1"
    assert (failed.json()["status"], failed.json()["attempts"]) == ("at_depot", 1)
    assert proof.status_code == 201, proof.text
    assert proof.json()["kind"] == "driver_scan"
    assert proof.json()["vehicle_id"] == "van-1"
    assert final.json()["status"] == "delivered"
    assert final.json()["delivered_at"] is not None
    history = events.json()["data"]
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in history] == [
        ("created", None, "created"),
        ("at_depot", "created", "at_depot"),
        ("out_for_delivery", "at_depot", "out_for_delivery"),
        ("attempt_failed", "out_for_delivery", "at_depot"),
        ("out_for_delivery", "at_depot", "out_for_delivery"),
        ("delivered", "out_for_delivery", "delivered"),
    ]
    assert history[3]["reason"] == "nobody home"
    assert proofs.json()["count"] == 1
    assert created["tracking_token"] not in dump_database(session_factory)


@pytest.mark.parametrize(
    ("steps", "wanted", "current"),
    [
        ([], "out_for_delivery", "created"),
        (["at_depot"], "at_depot", "at_depot"),
        (["at_depot", "out_for_delivery"], "at_depot", "out_for_delivery"),  # only as an attempt
    ],
)
def test_an_illegal_transition_is_a_409_naming_both_states(
    session_factory: sessionmaker[Session],
    database_url: str,
    steps: list[str],
    wanted: str,
    current: str,
) -> None:
    _seed(session_factory)

    async def story() -> tuple[httpx.Response, httpx.Response]:
        async with _api(session_factory, database_url) as api:
            pid = (await _call(api, "POST", "/parcels", HOME)).json()["id"]
            for to in steps:
                assert (
                    await _call(api, "POST", f"/parcels/{pid}/transitions", {"to": to})
                ).status_code == 200
            refused = await _call(api, "POST", f"/parcels/{pid}/transitions", {"to": wanted})
            return refused, await _call(api, "GET", f"/parcels/{pid}/events")

    refused, events = asyncio.run(story())
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    detail = refused.json()["detail"]
    assert current in detail and wanted in detail, detail
    assert events.json()["count"] == 1 + len(steps)  # nothing recorded for the refusal


def test_locker_statuses_and_delivery_are_refused_out_of_turn(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)

    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            home = (await _call(api, "POST", "/parcels", HOME)).json()["id"]
            box = (await _call(api, "POST", "/parcels", {"locker_id": "locker-1"})).json()["id"]
            return [
                await _call(api, "POST", f"/parcels/{home}/delivery", {"lat": 1, "lon": 2}),
                await _call(api, "POST", f"/parcels/{home}/attempts", {"reason": "x"}),
                await _call(api, "POST", f"/parcels/{box}/codes", {"kind": "courier"}),
                await _call(api, "POST", f"/parcels/{home}/codes", {"kind": "pickup"}),
                await _call(api, "POST", f"/parcels/{box}/transitions", {"to": "deposited"}),
            ]

    early_delivery, early_attempt, early_code, home_code, deposited = asyncio.run(story())
    assert "created to delivered" in early_delivery.json()["detail"]
    assert "created to at_depot" in early_attempt.json()["detail"]
    assert "needs it out_for_delivery" in early_code.json()["detail"]
    assert "address" in home_code.json()["detail"]
    for r in (early_delivery, early_attempt, early_code, home_code):
        assert r.status_code == 409, r.text
    assert deposited.status_code == 422  # not a status the API can ask for


def test_a_courier_code_reaches_the_locker_only_as_a_hash_and_reserves_a_compartment(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory, compartments=2)

    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            out: list[httpx.Response] = []
            for compartment in (2, None, None):
                pid = (await _call(api, "POST", "/parcels", {"locker_id": "locker-1"})).json()["id"]
                for to in ("at_depot", "out_for_delivery"):
                    await _call(api, "POST", f"/parcels/{pid}/transitions", {"to": to})
                body: dict[str, Any] = {"kind": "courier"}
                if compartment:
                    body["compartment"] = compartment
                out.append(await _call(api, "POST", f"/parcels/{pid}/codes", body))
            return out

    second, first, full = asyncio.run(story())
    assert (second.status_code, second.json()["compartment"]) == (201, 2)
    assert (first.status_code, first.json()["compartment"]) == (201, 1)
    assert full.status_code == 409 and "no free compartment" in full.json()["detail"]
    key = derive_locker_key(MASTER_SECRET.encode(), "locker-1")
    with session_factory() as session:
        grants = [decode(m.payload, Grant) for m in session.scalars(select(OutboundMessage))]
    assert [(g.kind, g.compartment) for g in grants] == [("courier", 2), ("courier", 1)]
    assert grants[0].code_hash == hash_code(key, second.json()["code"])
    dump = dump_database(session_factory)
    assert second.json()["code"] not in dump and first.json()["code"] not in dump


def test_parcels_are_listed_newest_first_in_pages_with_time_and_status_filters(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    base = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with session_factory() as session, session.begin():
        for i in range(5):
            t = base + timedelta(hours=i)
            session.add(
                Parcel(
                    id=uuid.uuid4(),
                    reference=f"P{i}",
                    status="created" if i % 2 else "at_depot",
                    size="M",
                    locker_id=None,
                    compartment=None,
                    address="a",
                    lat=1.0,
                    lon=2.0,
                    attempts=0,
                    created_at=t,
                    updated_at=t,
                )
            )

    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            return [
                await _call(api, "GET", "/parcels?limit=2&offset=1", role=Role.VIEWER),
                await _call(
                    api,
                    "GET",
                    "/parcels?since=2026-12-01T09:00:00Z&until=2026-12-01T11:00:00Z",
                    role=Role.INTEGRATION,
                ),
                await _call(api, "GET", "/parcels?status=at_depot", role=Role.VIEWER),
                await _call(api, "GET", "/parcels?since=2026-12-01T09:00:00", role=Role.VIEWER),
                await _call(api, "GET", "/parcels?status=lost", role=Role.VIEWER),
            ]

    page, window, depot, naive, bad_status = asyncio.run(story())
    assert page.json()["count"] == 5
    assert [p["reference"] for p in page.json()["data"]] == ["P3", "P2"]
    assert [p["reference"] for p in window.json()["data"]] == ["P2", "P1"]
    assert [p["reference"] for p in depot.json()["data"]] == ["P4", "P2", "P0"]
    for r in (naive, bad_status):
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"locker_id": "nowhere"}, 404, "locker nowhere not found"),
        ({"locker_id": "locker-1", **HOME}, 422, "exactly one of locker_id and address"),
        ({"address": "somewhere"}, 422, "needs lat and lon"),
        ({"locker_id": "lock/er"}, 422, "not valid"),
        ({"locker_id": "locker-1", "colour": "red"}, 422, "not valid"),
        ({"locker_id": "locker-1", "size": "XL"}, 422, "not valid"),
        (
            {**HOME, "window_start": "2026-12-02T11:00:00Z", "window_end": "2026-12-02T09:00:00Z"},
            422,
            "window_end must be after",
        ),
    ],
)
def test_impossible_parcels_are_refused_as_problems(
    session_factory: sessionmaker[Session],
    database_url: str,
    body: dict[str, object],
    status: int,
    detail: str,
) -> None:
    _seed(session_factory)

    async def story() -> httpx.Response:
        async with _api(session_factory, database_url) as api:
            return await _call(api, "POST", "/parcels", body, Role.INTEGRATION)

    r = asyncio.run(story())
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    text = problem["detail"] + " ".join(e["msg"] for e in problem.get("errors", []))
    assert detail in text, problem
    with session_factory() as session:
        assert session.scalars(select(Parcel)).all() == []


def test_an_unknown_parcel_is_404(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            missing = uuid.uuid4()
            return [
                await _call(api, "GET", f"/parcels/{missing}"),
                await _call(api, "GET", f"/parcels/{missing}/events"),
                await _call(api, "POST", f"/parcels/{missing}/transitions", {"to": "at_depot"}),
            ]

    for r in asyncio.run(story()):
        assert r.status_code == 404
        assert r.json()["title"] == "Not Found"


def test_the_hub_reserves_the_snuggest_free_compartment_once_the_locker_reported_sizes(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    with session_factory() as session, session.begin():
        session.add(
            Locker(id="locker-1", compartments=3, online=True, version="", sizes=["S", "L", "M"])
        )

    async def story() -> list[httpx.Response]:
        async with _api(session_factory, database_url) as api:
            out = []
            for size in ("M", "S", "M", "L"):
                pid = (
                    await _call(api, "POST", "/parcels", {"locker_id": "locker-1", "size": size})
                ).json()["id"]
                for to in ("at_depot", "out_for_delivery"):
                    await _call(api, "POST", f"/parcels/{pid}/transitions", {"to": to})
                out.append(await _call(api, "POST", f"/parcels/{pid}/codes", {"kind": "courier"}))
            return out

    m, s, m_bigger, l_none = asyncio.run(story())
    assert [r.json()["compartment"] for r in (m, s, m_bigger)] == [3, 1, 2]  # M fits L when no M
    assert l_none.status_code == 409
    assert "no free compartment of size L or up" in l_none.json()["detail"]
