"""A parcel's life: created through the API, its grant delivered to the locker, its code collected.

The code is shown once, in the creation response; the database holds only its keyed hash.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dispatch import OutboundDispatcher
from cloud.ingest import IngestWorker
from cloud.models import Locker, OutboundMessage, Parcel
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import decode, encode
from protocol.codes import derive_locker_key, hash_code
from protocol.messages import DeviceStatus, Grant, LockerEvent
from protocol.topics import Channel, locker_topic
from tests.cloud.helpers import (
    MASTER_SECRET,
    auth,
    dump_database,
    eventually,
    hub_settings,
    mqtt_client,
    running,
)


def _client(app: object, role: Role = Role.INTEGRATION) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://hub",
        headers=auth(role),
    )


def _add_locker(session_factory: sessionmaker[Session], locker_id: str, compartments: int) -> None:
    with session_factory() as session, session.begin():
        session.add(Locker(id=locker_id, compartments=compartments, online=True, version=""))


def test_a_parcel_code_reaches_the_locker_only_as_a_hash_and_its_pickup_is_recorded(
    mqtt_settings: MqttSettings, session_factory: sessionmaker[Session], database_url: str
) -> None:
    settings = hub_settings(database_url=database_url, mqtt=mqtt_settings)
    wakeup = asyncio.Event()
    ingest = IngestWorker(
        settings=mqtt_settings, session_factory=session_factory, client_id="hub-ingest"
    )
    dispatcher = OutboundDispatcher(
        settings=mqtt_settings,
        session_factory=session_factory,
        client_id="hub-dispatch",
        wakeup=wakeup,
        poll_interval_s=30,
    )  # only the API's signal can be this fast
    app = create_app(settings=settings, session_factory=session_factory, dispatcher_wakeup=wakeup)

    async def story() -> tuple[dict[str, object], Grant, dict[str, object]]:
        async with (
            running(ingest.run(), dispatcher.run()),
            _client(app) as api,
            mqtt_client(mqtt_settings, "locker-1") as locker,
        ):
            await ingest.wait_ready()
            await locker.subscribe(locker_topic("locker-1", Channel.GRANTS), qos=1)
            await locker.publish(
                locker_topic("locker-1", Channel.STATUS),
                encode(
                    DeviceStatus(device_id="locker-1", kind="locker", online=True, compartments=4)
                ),
                qos=1,
            )
            await eventually(
                lambda: _compartments(session_factory, "locker-1") == 4, what="locker status"
            )

            created = await api.post("/api/v1/parcels", json={"locker_id": "locker-1"})
            assert created.status_code == 201, created.text
            parcel = created.json()

            async with asyncio.timeout(10):
                message = await anext(locker.messages)
            grant = decode(message.payload, Grant)  # type: ignore[arg-type]

            await locker.publish(
                locker_topic("locker-1", Channel.EVENTS),
                encode(
                    LockerEvent(
                        locker_id="locker-1",
                        seq=1,
                        kind="picked_up",
                        at=datetime(2026, 11, 23, 17, 5, tzinfo=UTC),
                        compartment=grant.compartment,
                        grant_id=grant.grant_id,
                    )
                ),
                qos=1,
            )

            async def collected() -> dict[str, object] | None:
                r = await api.get(f"/api/v1/parcels/{parcel['id']}")
                return r.json() if r.json()["status"] == "picked_up" else None

            return parcel, grant, await eventually(collected, what="pickup recorded")

    parcel, grant, after = asyncio.run(story())

    code = parcel["code"]
    assert isinstance(code, str) and len(code) == 8 and code.isdigit()
    assert parcel["compartment"] == 1
    assert parcel["status"] == "awaiting_pickup"
    key = derive_locker_key(MASTER_SECRET.encode(), "locker-1")
    assert grant.code_hash == hash_code(key, code)
    assert (grant.locker_id, grant.compartment, grant.kind, grant.single_use) == (
        "locker-1",
        1,
        "pickup",
        True,
    )
    assert grant.valid_until - grant.valid_from == timedelta(hours=72)

    assert after["picked_up_at"] == "2026-11-23T17:05:00Z"
    assert "code" not in after and "code_hash" not in after and "grant_id" not in after
    assert code not in dump_database(session_factory)
    with session_factory() as session:
        stored = session.scalars(select(Parcel)).one()
        assert stored.code_hash == grant.code_hash
        assert stored.grant_id == grant.grant_id
        assert session.scalars(select(OutboundMessage.sent_at)).one() is not None


def _compartments(session_factory: sessionmaker[Session], locker_id: str) -> int:
    with session_factory() as session:
        locker = session.get(Locker, locker_id)
        return locker.compartments if locker else 0


def test_compartments_are_chosen_free_and_a_full_locker_says_409(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _add_locker(session_factory, "locker-1", compartments=2)
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )

    async def story() -> list[httpx.Response]:
        async with _client(app) as api:
            return [
                await api.post("/api/v1/parcels", json={"locker_id": "locker-1", "compartment": 2}),
                await api.post("/api/v1/parcels", json={"locker_id": "locker-1"}),
                await api.post("/api/v1/parcels", json={"locker_id": "locker-1"}),
                await api.post("/api/v1/parcels", json={"locker_id": "locker-1", "compartment": 1}),
            ]

    second, first, full, taken = asyncio.run(story())
    assert (second.status_code, second.json()["compartment"]) == (201, 2)
    assert (first.status_code, first.json()["compartment"]) == (201, 1)
    for r in (full, taken):
        assert r.status_code == 409
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["title"] == "Conflict"
    with session_factory() as session:
        assert len(session.scalars(select(OutboundMessage)).all()) == 2


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"locker_id": "nowhere"}, 404, "locker nowhere not found"),
        ({"locker_id": "locker-1", "compartment": 5}, 422, "compartments 1..4, not 5"),
        ({"locker_id": "locker-1", "compartment": 0}, 422, "not valid"),
        ({"locker_id": "lock/er"}, 422, "not valid"),
        ({"locker_id": "locker-1", "colour": "red"}, 422, "not valid"),
    ],
)
def test_impossible_parcels_are_refused_as_problems(
    session_factory: sessionmaker[Session],
    database_url: str,
    body: dict[str, object],
    status: int,
    detail: str,
) -> None:
    _add_locker(session_factory, "locker-1", compartments=4)
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )

    async def story() -> httpx.Response:
        async with _client(app) as api:
            return await api.post("/api/v1/parcels", json=body)

    r = asyncio.run(story())
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    assert detail in problem["detail"]
    with session_factory() as session:
        assert session.scalars(select(Parcel)).all() == []
        assert session.scalars(select(OutboundMessage)).all() == []


def test_an_unknown_parcel_is_404(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )

    async def story() -> httpx.Response:
        async with _client(app) as api:
            return await api.get(f"/api/v1/parcels/{uuid.uuid4()}")

    r = asyncio.run(story())
    assert r.status_code == 404
    assert r.json()["title"] == "Not Found"
