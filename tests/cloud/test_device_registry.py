"""The device registry: ingest dead-letters what a revoked device sends (counted, with its reason),
takes it again once re-provisioned, and ``GET /api/v1/devices`` lists the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.ingest import IngestWorker
from cloud.models import DeadLetter, IngestedMessage, PositionRow
from cloud.registry import record_provisioned, record_revoked, record_rotated
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import DeviceStatus, Position, TelemetryBatch
from protocol.topics import Channel, DeviceKind, vehicle_topic
from tests.cloud.helpers import auth, count, eventually, hub_settings, mqtt_client, running

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _batch(vehicle_id: str, seq: int) -> TelemetryBatch:
    return TelemetryBatch(
        vehicle_id=vehicle_id,
        seq=seq,
        points=(Position(t=T0 + timedelta(seconds=seq), lat=52.37, lon=4.89, fix="3d"),),
    )


@pytest.fixture
def worker(
    mqtt_settings: MqttSettings, session_factory: sessionmaker[Session]
) -> Iterator[IngestWorker]:
    yield IngestWorker(
        settings=mqtt_settings, session_factory=session_factory, client_id="hub-test-registry"
    )


def _register(session_factory: sessionmaker[Session], *actions: tuple[object, str]) -> None:
    with session_factory() as session, session.begin():
        for action, device_id in actions:
            kind = DeviceKind.LOCKER if device_id.startswith("locker") else DeviceKind.VEHICLE
            action(session, kind=kind, device_id=device_id, now=datetime.now(UTC))  # type: ignore[operator]


def test_a_revoked_van_is_dead_lettered_and_counted_until_provisioned_again(
    worker: IngestWorker, mqtt_settings: MqttSettings, session_factory: sessionmaker[Session]
) -> None:
    _register(session_factory, (record_provisioned, "van-1"), (record_revoked, "van-2"))
    status = DeviceStatus(kind="vehicle", device_id="van-2", online=True, sent_at=T0)
    refused = encode(_batch("van-2", 1))

    async def publish(*messages: tuple[str, bytes]) -> None:
        async with mqtt_client(mqtt_settings, "vans") as vans:
            for topic, payload in messages:
                await vans.publish(topic, payload, qos=1)

    async def story() -> None:
        async with running(worker.run()):
            await worker.wait_ready()
            await publish(
                (vehicle_topic("van-1", Channel.TELEMETRY), encode(_batch("van-1", 1))),
                (vehicle_topic("van-2", Channel.TELEMETRY), refused),
                (vehicle_topic("van-2", Channel.STATUS), encode(status)),
            )
            await eventually(lambda: worker.stats.received == 3, what="three messages")
            _register(session_factory, (record_provisioned, "van-2"))
            await publish((vehicle_topic("van-2", Channel.TELEMETRY), encode(_batch("van-2", 2))))
            await eventually(lambda: worker.stats.received == 4, what="the fourth")

    asyncio.run(story())

    with session_factory() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        stored = session.scalars(select(PositionRow.vehicle_id).order_by(PositionRow.id)).all()
    assert [(d.topic, d.reason) for d in letters] == [
        ("fleet/van-2/telemetry", "device_revoked"),
        ("fleet/van-2/status", "device_revoked"),
    ]
    assert letters[0].payload == refused  # verbatim, for the inquiry
    assert worker.stats.dead_letters[("vehicle/telemetry", "device_revoked")] == 1
    assert worker.stats.dead_letters[("vehicle/status", "device_revoked")] == 1
    assert stored == ["van-1", "van-2"]  # van-2's only after it was provisioned again
    assert count(session_factory, IngestedMessage) == 2
    assert worker.stats.stored == 2


def test_the_registry_lists_kind_state_and_credential_dates_for_ops_only(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _register(
        session_factory,
        (record_provisioned, "van-1"),
        (record_provisioned, "locker-1"),
        (record_rotated, "locker-1"),
        (record_rotated, "van-7"),  # provisioned before the registry existed
        (record_revoked, "van-1"),
    )
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )

    async def story() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
            return [
                await api.get("/api/v1/devices", headers=auth(Role.OPS)),
                await api.get("/api/v1/devices?state=revoked", headers=auth(Role.OPS)),
                await api.get("/api/v1/devices?kind=locker", headers=auth(Role.OPS)),
                await api.get("/api/v1/devices?state=lost", headers=auth(Role.OPS)),
                await api.get("/api/v1/devices", headers=auth(Role.VIEWER)),
            ]

    every, revoked, lockers, bad, viewer = asyncio.run(story())
    assert every.status_code == 200, every.text
    devices = {d["id"]: d for d in every.json()["data"]}
    assert every.json()["count"] == 3
    assert (devices["van-1"]["state"], devices["van-1"]["kind"]) == ("revoked", "vehicle")
    assert devices["van-1"]["revoked_at"] is not None and devices["van-1"]["rotated_at"] is None
    assert devices["locker-1"]["state"] == "active" and devices["locker-1"]["rotated_at"]
    assert devices["van-7"]["rotated_at"] is not None
    assert [d["id"] for d in revoked.json()["data"]] == ["van-1"]
    assert [d["id"] for d in lockers.json()["data"]] == ["locker-1"]
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert viewer.status_code == 403
