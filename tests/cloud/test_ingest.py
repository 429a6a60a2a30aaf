"""Ingest through a real Mosquitto into SQLite and PostgreSQL, read back through the API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.broker import MosquittoBroker
from cloud.ingest import IngestWorker
from cloud.models import DeadLetter, IngestedMessage, PositionRow
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import (
    DeviceStatus,
    LockerEvent,
    Position,
    TelemetryBatch,
    VehicleEvent,
)
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import auth, count, eventually, hub_settings, mqtt_client, running

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _batch(vehicle_id: str, seq: int, n: int = 3, start: datetime = T0) -> TelemetryBatch:
    return TelemetryBatch(
        vehicle_id=vehicle_id,
        seq=seq,
        points=tuple(
            Position(
                t=start + timedelta(seconds=i),
                lat=52.37 + i * 1e-4,
                lon=4.89,
                speed_mps=8.5,
                hdop=0.9,
                sats=11,
                fix="3d",
            )
            for i in range(n)
        ),
    )


@pytest.fixture
def worker(
    mqtt_settings: MqttSettings, session_factory: sessionmaker[Session]
) -> Iterator[IngestWorker]:
    yield IngestWorker(
        settings=mqtt_settings, session_factory=session_factory, client_id="hub-test-ingest"
    )


def _api(database_url: str, session_factory: sessionmaker[Session]) -> httpx.AsyncClient:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub", headers=auth(Role.OPS)
    )


def test_a_telemetry_batch_becomes_positions_in_the_api(
    worker: IngestWorker,
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
) -> None:
    batch = _batch("van-1", seq=1, n=3)

    async def story() -> None:
        async with running(worker.run()), _api(database_url, session_factory) as api:
            await worker.wait_ready()
            async with mqtt_client(mqtt_settings, "van-1") as van:
                await van.publish(vehicle_topic("van-1", Channel.TELEMETRY), encode(batch), qos=1)

            async def positions() -> list[dict[str, object]] | None:
                r = await api.get("/api/v1/vehicles/van-1/positions")
                return r.json()["data"] if r.status_code == 200 and r.json()["count"] else None

            data = await eventually(positions, what="positions of van-1")
            assert [p["t"] for p in data] == [
                "2026-11-23T08:00:00Z",
                "2026-11-23T08:00:01Z",
                "2026-11-23T08:00:02Z",
            ]
            assert data[0]["lat"] == pytest.approx(52.37)
            assert data[0]["fix"] == "3d"

            page = await api.get(
                "/api/v1/vehicles/van-1/positions",
                params={"since": "2026-11-23T09:00:01+01:00", "limit": 1},
            )
            assert [p["t"] for p in page.json()["data"]] == ["2026-11-23T08:00:01Z"]

            fleet = (await api.get("/api/v1/vehicles")).json()
            assert fleet["count"] == 1
            assert fleet["data"][0]["id"] == "van-1"
            assert fleet["data"][0]["last_position"]["t"] == "2026-11-23T08:00:02Z"

    asyncio.run(story())


def test_a_redelivered_message_is_stored_once(
    worker: IngestWorker, mqtt_settings: MqttSettings, session_factory: sessionmaker[Session]
) -> None:
    batch = _batch("van-1", seq=1, n=4)
    sentinel = _batch("van-1", seq=2, n=1, start=T0 + timedelta(minutes=1))

    async def story() -> None:
        async with running(worker.run()):
            await worker.wait_ready()
            async with mqtt_client(mqtt_settings, "van-1") as van:
                topic = vehicle_topic("van-1", Channel.TELEMETRY)
                await van.publish(topic, encode(batch), qos=1)
                await van.publish(topic, encode(batch), qos=1)  # as after a lost PUBACK
                await van.publish(topic, encode(sentinel), qos=1)
            await eventually(lambda: worker.stats.received == 3, what="all three deliveries")

    asyncio.run(story())
    assert count(session_factory, PositionRow) == 5
    assert worker.stats.duplicates == 1


def _bad_payloads() -> list[tuple[str, bytes, str]]:
    """(topic, payload, expected reason) for every topic the hub ingests."""
    garbage = b"\x00\xffnot json at all\x80"
    cases: list[tuple[str, bytes, str]] = []
    good: dict[str, bytes] = {
        vehicle_topic("van-1", Channel.TELEMETRY): encode(_batch("van-2", seq=1)),
        vehicle_topic("van-1", Channel.EVENTS): encode(
            VehicleEvent(vehicle_id="van-2", seq=1, kind="harsh_braking", at=T0)
        ),
        vehicle_topic("van-1", Channel.STATUS): encode(
            DeviceStatus(device_id="van-2", kind="vehicle", online=True)
        ),
        locker_topic("locker-1", Channel.EVENTS): encode(
            LockerEvent(locker_id="locker-2", seq=1, kind="door_opened", at=T0)
        ),
        locker_topic("locker-1", Channel.STATUS): encode(
            DeviceStatus(device_id="locker-2", kind="locker", online=True)
        ),
    }
    for topic, other_device in good.items():
        cases += [
            (topic, garbage, "not JSON"),
            (topic, b"[1, 2, 3]", "not a JSON object"),
            (topic, b'{"v": 1, "type": "telemetry"}', "invalid"),
            (topic, other_device.replace(b'"v":1', b'"v":99'), "unsupported schema version"),
            (topic, other_device, "device id mismatch"),
        ]
    return cases


def test_malformed_messages_are_dead_lettered_and_ingest_goes_on(
    worker: IngestWorker, mqtt_settings: MqttSettings, session_factory: sessionmaker[Session]
) -> None:
    cases = _bad_payloads()
    good = _batch("van-1", seq=1, n=2)

    async def story() -> None:
        async with running(worker.run()):
            await worker.wait_ready()
            async with mqtt_client(mqtt_settings, "mallory") as mallory:
                for topic, payload, _reason in cases:
                    await mallory.publish(topic, payload, qos=1)
                await mallory.publish(
                    vehicle_topic("van-1", Channel.TELEMETRY), encode(good), qos=1
                )
            await eventually(lambda: worker.stats.received == len(cases) + 1, what="every message")

    asyncio.run(story())

    with session_factory() as session:
        letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert len(letters) == len(cases)
    for letter, (topic, payload, reason) in zip(letters, cases, strict=True):
        assert (letter.topic, letter.payload) == (topic, payload)
        assert letter.reason.startswith(reason), (letter.reason, reason)
    assert count(session_factory, PositionRow) == 2
    assert sum(worker.stats.dead_letters.values()) == len(cases)
    assert worker.stats.dead_letters[("vehicle/telemetry", "not JSON")] == 1
    assert worker.stats.dead_letters[("locker/status", "device id mismatch")] == 1
    assert count(session_factory, IngestedMessage) == 1


def test_status_messages_tell_the_hub_about_lockers_and_vans(
    worker: IngestWorker,
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
) -> None:
    async def story() -> None:
        async with running(worker.run()), _api(database_url, session_factory) as api:
            await worker.wait_ready()
            async with mqtt_client(mqtt_settings, "devices") as devices:
                await devices.publish(
                    locker_topic("locker-1", Channel.STATUS),
                    encode(
                        DeviceStatus(
                            device_id="locker-1",
                            kind="locker",
                            online=True,
                            version="0.1.0",
                            compartments=12,
                        )
                    ),
                    qos=1,
                )
                await devices.publish(
                    vehicle_topic("van-7", Channel.STATUS),
                    encode(
                        DeviceStatus(
                            device_id="van-7", kind="vehicle", online=True, version="0.1.0"
                        )
                    ),
                    qos=1,
                )
                await devices.publish(
                    vehicle_topic("van-7", Channel.STATUS),
                    encode(
                        DeviceStatus(device_id="van-7", kind="vehicle", online=False, id=uuid4())
                    ),
                    qos=1,
                )

            async def locker() -> dict[str, object] | None:
                r = await api.get("/api/v1/lockers/locker-1")
                return r.json() if r.status_code == 200 else None

            found = await eventually(locker, what="locker-1")
            assert found["compartments"] == 12
            assert found["online"] is True
            assert found["occupied"] == 0

            async def van_offline() -> bool:
                data = (await api.get("/api/v1/vehicles")).json()["data"]
                return bool(data) and data[0]["online"] is False

            await eventually(van_offline, what="van-7 offline")
            van = (await api.get("/api/v1/vehicles")).json()["data"][0]
            assert van["id"] == "van-7"
            assert van["last_position"] is None
            assert van["last_seen"].endswith("Z")

    asyncio.run(story())


def test_ingest_reconnects_after_a_broker_restart_and_keeps_its_session(
    broker: MosquittoBroker,
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
) -> None:
    async def story() -> None:
        def worker() -> IngestWorker:
            return IngestWorker(
                settings=mqtt_settings, session_factory=session_factory, client_id="hub-ingest"
            )

        first = worker()
        async with running(first.run()):
            await first.wait_ready()
            await asyncio.to_thread(broker.restart)
            await eventually(lambda: first.stats.connects == 2, what="a reconnect")
            async with mqtt_client(mqtt_settings, "van-1") as van:
                topic = vehicle_topic("van-1", Channel.TELEMETRY)
                await van.publish(topic, encode(_batch("van-1", seq=1, n=1)), qos=1)
            await eventually(lambda: count(session_factory, PositionRow) == 1, what="1st batch")

        # The hub is away; the broker keeps its session and queues for it.
        async with mqtt_client(mqtt_settings, "van-1") as van:
            await van.publish(topic, encode(_batch("van-1", seq=2, n=2)), qos=1)

        second = worker()
        async with running(second.run()):
            await eventually(lambda: count(session_factory, PositionRow) == 3, what="2nd batch")

    asyncio.run(story())


def test_a_message_the_database_refuses_is_dead_lettered_alone(
    worker: IngestWorker,
    mqtt_settings: MqttSettings,
    session_factory: sessionmaker[Session],
    database_url: str,
) -> None:
    # PostgreSQL text cannot hold NUL; SQLite can. Either way ingest must go on.
    poison = LockerEvent(locker_id="locker-1", seq=1, kind="code_rejected", at=T0, reason="a\x00b")
    good = _batch("van-1", seq=1, n=2)

    async def story() -> None:
        async with running(worker.run()):
            await worker.wait_ready()
            async with mqtt_client(mqtt_settings, "devices") as devices:
                await devices.publish(
                    locker_topic("locker-1", Channel.EVENTS), encode(poison), qos=1
                )
                await devices.publish(
                    vehicle_topic("van-1", Channel.TELEMETRY), encode(good), qos=1
                )
            await eventually(lambda: worker.stats.received == 2, what="both messages")

    asyncio.run(story())
    assert count(session_factory, PositionRow) == 2
    if database_url.startswith("postgresql"):
        with session_factory() as session:
            letter = session.scalars(select(DeadLetter)).one()
        assert (letter.reason, letter.payload) == ("unstorable", encode(poison))
        assert worker.stats.dead_letters == {("locker/events", "unstorable"): 1}
    else:
        assert count(session_factory, DeadLetter) == 0
