"""The hub's half of van commands, on SQLite and PostgreSQL: what the API queues is signed for that
van only, and what vans answer (and report in their status) is stored once, through a real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.ingest import IngestWorker
from cloud.models import DeadLetter, OutboundMessage, Vehicle, VehicleCommandAck
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import decode, encode
from protocol.commands import (
    BadSignature,
    Command,
    MemoryNonces,
    derive_command_key,
    verify_command,
)
from protocol.messages import CommandAck, DeviceStatus
from protocol.topics import Channel, DeviceKind, vehicle_topic
from tests.cloud.helpers import MASTER_SECRET, auth, eventually, hub_settings, mqtt_client, running


def _api(database_url: str, session_factory: sessionmaker[Session]) -> httpx.AsyncClient:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def test_a_command_is_queued_signed_with_that_vans_key_only(
    database_url: str, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))

    async def story() -> httpx.Response:
        async with _api(database_url, session_factory) as api:
            return await api.post(
                "/api/v1/vehicles/van-1/commands",
                json={
                    "name": "set_reporting_profile",
                    "args": {"profile": "moving", "interval_s": 2},
                    "ttl_s": 60,
                },
                headers=auth(Role.OPS),
            )

    resp = asyncio.run(story())
    assert resp.status_code == 202, resp.text
    body = resp.json()
    with session_factory() as session:
        (row,) = session.scalars(select(OutboundMessage)).all()
    assert row.topic == vehicle_topic("van-1", Channel.CMD) and row.qos == 1 and row.sent_at is None
    command = decode(row.payload, Command)
    assert str(command.command_id) == body["command_id"]
    assert command.args == {"profile": "moving", "interval_s": 2}
    assert command.expires_at - command.issued_at == timedelta(seconds=60)
    master = MASTER_SECRET.encode()
    now = datetime.now(UTC)
    van_key = derive_command_key(master, "van-1", kind=DeviceKind.VEHICLE)
    verify_command(command, key=van_key, device_id="van-1", now=now, nonces=MemoryNonces())
    # A locker named van-1 (same id, the locker label) could not have signed or replayed it.
    with pytest.raises(BadSignature):
        verify_command(
            command,
            key=derive_command_key(master, "van-1"),
            device_id="van-1",
            now=now,
            nonces=MemoryNonces(),
        )


def test_acks_and_status_are_stored_once_and_shown_with_their_command(
    mqtt_settings: MqttSettings, database_url: str, session_factory: sessionmaker[Session]
) -> None:
    worker = IngestWorker(
        settings=mqtt_settings, session_factory=session_factory, client_id="hub-test-ingest"
    )
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))

    async def story() -> dict[str, object]:
        async with running(worker.run()), _api(database_url, session_factory) as api:
            sent = await api.post(
                "/api/v1/vehicles/van-1/commands",
                json={"name": "read_dtcs"},
                headers=auth(Role.OPS),
            )
            command_id = sent.json()["command_id"]
            done = CommandAck(
                device_id="van-1",
                command_id=command_id,
                ok=True,
                name="read_dtcs",
                result={"count": 2, "codes": ["P0143", "P0196"], "descriptions": ["a", "b"]},
                seq=7,
            )
            replay = CommandAck(
                device_id="van-1", command_id=command_id, ok=False, reason="replayed", seq=8
            )
            status = DeviceStatus(
                device_id="van-1",
                kind="vehicle",
                online=True,
                version="1.2",
                uptime_s=12.5,
                outbox_depth=3,
                outbox_bytes=2048,
                outbox_dropped={"rows": 40},
                health={"gnss": "gpsd", "gnss_state": "disconnected", "obd": "ok"},
            )
            await worker.wait_ready()
            ack_topic = vehicle_topic("van-1", Channel.CMD_ACK)
            async with mqtt_client(mqtt_settings, "van-1") as van:
                await van.publish(ack_topic, encode(done), qos=1)
                await van.publish(ack_topic, encode(done), qos=1)  # a redelivery
                await van.publish(
                    ack_topic, encode(replay), qos=1
                )  # the broker redelivered the command
                # A van speaking for another: its ack must not land on van-1's command.
                forged = CommandAck(device_id="van-1", command_id=command_id, ok=False, seq=9)
                await van.publish(vehicle_topic("van-2", Channel.CMD_ACK), encode(forged), qos=1)
                await van.publish(
                    vehicle_topic("van-1", Channel.STATUS), encode(status), qos=1, retain=True
                )

            def stored() -> bool:
                with session_factory() as session:
                    acks = session.scalars(select(VehicleCommandAck)).all()
                    letters = session.scalars(select(DeadLetter)).all()
                return len(acks) == 2 and len(letters) == 1

            await eventually(stored, what="two acks and one dead letter")

            async def answered() -> dict[str, object] | None:
                got = await api.get(
                    f"/api/v1/vehicles/van-1/commands/{command_id}", headers=auth(Role.VIEWER)
                )
                return got.json() if got.json()["status"] != "pending" else None

            outcome = await eventually(answered, what="the command answered")
            fleet = (await api.get("/api/v1/vehicles", headers=auth(Role.VIEWER))).json()
            return {"outcome": outcome, "van": fleet["data"][0]}

    got = asyncio.run(story())
    outcome = got["outcome"]
    assert isinstance(outcome, dict)
    assert outcome["status"] == "done", "the first answer is the outcome, not the later replay"
    assert outcome["ack"]["result"]["codes"] == ["P0143", "P0196"]
    with session_factory() as session:
        letter = session.scalars(select(DeadLetter)).one()
    assert letter.reason == "device id mismatch"
    van = got["van"]
    assert isinstance(van, dict)
    assert van["status"]["health"]["gnss_state"] == "disconnected"
    assert van["status"]["outbox_dropped"] == {"rows": 40}
    assert (van["status"]["outbox_depth"], van["status"]["outbox_bytes"]) == (3, 2048)
