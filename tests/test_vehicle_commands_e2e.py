"""Remote commands end to end through a real Mosquitto: hub API → transactional outbox → broker →
van agent → ack → hub ingest → API. The van runs in-process with the simulated receiver, a real
ELM327-emulator behind its OBD-II source, and a config file to reload."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import sqlalchemy as sa

from cloud.broker import MosquittoBroker
from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import VehicleSettings
from edge.nonces import DurableNonces
from edge.obd import ObdSettings, ObdSource, PidSpec
from edge.outbox import Outbox
from edge.settings import MqttSettings, load_settings
from protocol.codec import encode
from protocol.commands import sign_command
from protocol.topics import Channel, vehicle_topic
from tests import test_end_to_end as e2e
from tests.edge import test_obd
from tests.locker.story import until
from tests.test_end_to_end import Hub
from tests.van_rig import sim_van_config

hub = e2e.hub  # the end-to-end tests' hub fixture: run_hub on SQLite, a real uvicorn
elm = test_obd.elm  # ELM327-emulator with P0143 and P0196 stored

VAN = "van-cmd"


def _config(tmp_path: Path, mqtt: MqttSettings) -> Path:
    return sim_van_config(
        tmp_path, mqtt, VAN, time_scale=10, seed=5, batch_age_s=2, status_interval_s=1
    )


@contextlib.asynccontextmanager
async def van(config: Path, elm: Any) -> AsyncIterator[VehicleAgent]:
    settings = load_settings(VehicleSettings, config)
    outbox = Outbox(settings.state_dir / "outbox.db", limits=settings.outbox)
    nonces = DurableNonces(settings.state_dir / "nonces.db", clock=_utcnow)
    obd = ObdSource(settings=ObdSettings(port=elm.port, pids=[PidSpec(name="RPM", interval_s=1)]))
    agent = VehicleAgent(
        settings=settings,
        gnss=build_gnss(settings),
        outbox=outbox,
        signal_sources={"obd": obd},
        nonces=nonces,
        reload_settings=functools.partial(load_settings, VehicleSettings, config),
    )
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        nonces.close()
        outbox.close()


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def _answered(client: httpx.AsyncClient, command_id: str) -> dict[str, Any]:
    url = f"/api/v1/vehicles/{VAN}/commands/{command_id}"
    async with asyncio.timeout(30):
        while True:
            resp = await client.get(url)
            assert resp.status_code == 200, resp.text
            body: dict[str, Any] = resp.json()
            if body["status"] != "pending":
                return body
            await asyncio.sleep(0.05)


async def _command(client: httpx.AsyncClient, name: str, **args: object) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/vehicles/{VAN}/commands", json={"name": name, "args": args})
    assert resp.status_code == 202, resp.text
    queued = resp.json()
    assert queued["status"] == "pending" and queued["ack"] is None
    return await _answered(client, queued["command_id"])


async def test_each_command_goes_from_the_api_to_the_van_and_its_answer_back(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings, elm: Any
) -> None:
    async with (
        van(_config(tmp_path, mqtt_settings), elm) as agent,
        httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client,
    ):

        async def known() -> bool:
            return (await client.get(f"/api/v1/vehicles/{VAN}/positions")).status_code == 200

        async with asyncio.timeout(30):
            while not await known():
                await asyncio.sleep(0.05)

        profile = await _command(client, "set_reporting_profile", profile="moving", interval_s=1)
        assert profile["status"] == "done", profile
        assert profile["ack"]["result"]["interval_s"] == 1.0
        assert agent.reporter.settings.moving.interval_s == 1.0

        position = await _command(client, "send_position")
        assert position["status"] == "done", position
        t = position["ack"]["result"]["t"]

        async def stored() -> bool:
            resp = await client.get(
                f"/api/v1/vehicles/{VAN}/positions", params={"since": t, "limit": 1}
            )
            data = resp.json()["data"]
            return bool(data) and data[0]["lat"] == position["ack"]["result"]["lat"]

        async with asyncio.timeout(30):
            while not await stored():
                await asyncio.sleep(0.05)

        await until(lambda: agent.health()["obd"] == "ok", timeout=30, what="OBD-II connected")
        dtcs = await _command(client, "read_dtcs")
        assert dtcs["status"] == "done", dtcs
        assert dtcs["ack"]["result"]["codes"] == ["P0143", "P0196"]

        reload = await _command(client, "reload_settings")
        assert reload["status"] == "done", reload
        assert reload["ack"]["result"] == {"applied": ["reporting"], "restart_needed": []}
        assert agent.reporter.settings.moving.interval_s == 5.0, "the file's profile is back"

        refused = await _command(client, "set_reporting_profile", profile="moving", interval_s=-1)
        assert refused["status"] == "refused"
        assert refused["ack"]["reason"] == "bad_args"
        assert "interval_s" in refused["ack"]["detail"]

        listed = (await client.get(f"/api/v1/vehicles/{VAN}/commands")).json()
        assert [c["name"] for c in listed["data"]] == [
            "set_reporting_profile",
            "reload_settings",
            "read_dtcs",
            "send_position",
            "set_reporting_profile",
        ]
        assert listed["count"] == 5
        missing = await client.post(
            "/api/v1/vehicles/van-404/commands", json={"name": "send_position"}
        )
        assert missing.status_code == 404
        unknown = await client.post(f"/api/v1/vehicles/{VAN}/commands", json={"name": "explode"})
        assert unknown.status_code == 422
    assert agent.commands.stats.executed == {
        "set_reporting_profile": 1,
        "send_position": 1,
        "read_dtcs": 1,
        "reload_settings": 1,
    }


async def test_garbage_and_forgeries_on_the_broker_are_refused_and_the_van_keeps_going(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings, broker: MosquittoBroker, elm: Any
) -> None:
    """Whoever manages to publish on the van's command topic: every payload is answered with a
    refusal the hub stores, the van's session never drops, and a real command still works."""
    topic = vehicle_topic(VAN, Channel.CMD)
    forged = sign_command(
        key=b"not-the-van-key-" * 2,
        device_id=VAN,
        name="reload_settings",
        issued_at=_utcnow(),
    )
    garbage = [
        b"",
        b"\x00\x01\x02",
        b"{",
        b"[]",
        json.dumps({"v": 1, "type": "command"}).encode(),
        json.dumps({"v": 2, "command_id": "7d3c9f1e-0000-4000-8000-000000000001"}).encode(),
        b"x" * 100_000,
        encode(forged),
    ]
    async with (
        van(_config(tmp_path, mqtt_settings), elm) as agent,
        httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client,
    ):
        await asyncio.wait_for(agent.uplink.wait_connected(), 15)
        async with aiomqtt.Client(broker.host, broker.port, identifier="intruder") as intruder:
            for payload in garbage:
                await intruder.publish(topic, payload, qos=1)
        await until(
            lambda: sum(agent.commands.stats.refused.values()) == len(garbage),
            timeout=15,
            what="every payload refused",
        )
        assert agent.commands.stats.refused == {"malformed": 7, "bad_signature": 1}

        async with asyncio.timeout(30):
            while (await client.get(f"/api/v1/vehicles/{VAN}/positions")).status_code != 200:
                await asyncio.sleep(0.05)
        answer = await _command(client, "send_position")
        assert answer["status"] == "done", answer
        assert agent.uplink.stats.connects == 1, "no payload took the session down"

    def stored_refusals() -> list[tuple[str, str]]:
        with hub.engine().connect() as db:
            rows = db.execute(
                sa.text(
                    "SELECT command_id, reason FROM vehicle_command_acks"
                    " WHERE vehicle_id = :v AND NOT ok"
                ),
                {"v": VAN},
            )
            return [(str(c), str(r)) for c, r in rows]

    await until(lambda: len(stored_refusals()) == len(garbage), timeout=15, what="acks stored")
    reasons = sorted(r for _, r in stored_refusals())
    assert reasons == ["bad_signature"] + ["malformed"] * 7
    ids = {c.replace("-", "") for c, _ in stored_refusals()}
    assert forged.command_id.hex in ids and "7d3c9f1e000040008000000000000001" in ids
