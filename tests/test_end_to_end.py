"""The walking skeleton, end to end, through a real Mosquitto: van → hub → API; API → locker → door.

The hub runs in-process (ingest, dispatcher and a real uvicorn on a free port); the van runs as its
own process (`lastmile edge run`), so it can be killed with SIGKILL mid-stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.broker import MosquittoBroker, free_port
from cloud.hub import run_hub
from cloud.settings import HubSettings, Role
from edge.settings import MqttSettings
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.settings import LockerSettings
from protocol.codes import derive_locker_key
from tests.locker.story import relay_history, shut_doors, until
from tests.van_rig import MASTER, sim_van_config

OPS_KEY = "ops-key-for-the-end-to-end-tests"


@dataclass
class Hub:
    api: str
    settings: HubSettings
    headers: dict[str, str]

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.settings.database_url)


@pytest.fixture
async def hub(tmp_path: Path, mqtt_settings: MqttSettings) -> AsyncIterator[Hub]:
    port = free_port()
    settings = HubSettings(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        mqtt=mqtt_settings,
        http_port=port,
        code_master_secret=MASTER,
        api_keys={hashlib.sha256(OPS_KEY.encode()).hexdigest(): Role.OPS},
    )
    started = asyncio.Event()
    task = asyncio.create_task(run_hub(settings, started=started))
    try:
        async with asyncio.timeout(30):
            await started.wait()
        yield Hub(f"http://127.0.0.1:{port}", settings, {"Authorization": f"Bearer {OPS_KEY}"})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _van_config(tmp_path: Path, mqtt: MqttSettings, vehicle_id: str) -> Path:
    return sim_van_config(tmp_path, mqtt, vehicle_id, time_scale=20, seed=3, batch_age_s=10)


def _start_van(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "edge", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    resp = await client.get(url)
    assert resp.status_code in (200, 404), resp.text
    return resp


async def test_a_simulated_vans_positions_appear_in_the_api(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings
) -> None:
    van = _start_van(_van_config(tmp_path, mqtt_settings, "van-e2e"))
    try:
        async with httpx.AsyncClient(headers=hub.headers) as client:
            url = f"{hub.api}/api/v1/vehicles/van-e2e/positions"

            async def enough() -> list[dict[str, object]]:
                while True:
                    resp = await _get(client, url)
                    if resp.status_code == 200 and len(resp.json()["data"]) >= 20:
                        return list(resp.json()["data"])
                    await asyncio.sleep(0.1)

            points = await asyncio.wait_for(enough(), 30)
            vehicles = (await client.get(f"{hub.api}/api/v1/vehicles")).json()["data"]
    finally:
        van.terminate()
        assert van.wait(10) == 0, van.stderr.read() if van.stderr else ""
    times = [p["t"] for p in points]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert len({(p["lat"], p["lon"]) for p in points}) > 10, "the van should be moving"
    assert [v["id"] for v in vehicles] == ["van-e2e"]


def _outbox_seqs(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [s for (s,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]


def _all_seqs(hub: Hub, vehicle_id: str) -> list[int]:
    """Outbox seqs of everything the hub stored from the van: telemetry batches, events (driving,
    ignition, doors) and command acks all share the van's outbox numbering."""
    with hub.engine().connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT seq FROM ingested_messages WHERE device_id = :v AND seq IS NOT NULL"
                " ORDER BY seq"
            ),
            {"v": vehicle_id},
        )
        return [int(s) for (s,) in rows]


def _stored(hub: Hub, vehicle_id: str) -> tuple[list[int], int, int, int]:
    """(batch seqs stored, positions stored, points the stored batches carried, distinct times)."""
    with hub.engine().connect() as db:
        seqs = [
            s
            for (s,) in db.execute(
                sa.text(
                    "SELECT seq FROM ingested_messages WHERE device_id = :v AND kind = 'telemetry' ORDER BY seq"
                ),
                {"v": vehicle_id},
            )
        ]
        carried = db.execute(
            sa.text(
                "SELECT coalesce(sum(n_items), 0) FROM ingested_messages"
                " WHERE device_id = :v AND kind = 'telemetry'"
            ),
            {"v": vehicle_id},
        ).scalar_one()
        positions, distinct_t = db.execute(
            sa.text("SELECT count(*), count(DISTINCT t) FROM positions WHERE vehicle_id = :v"),
            {"v": vehicle_id},
        ).one()
    return seqs, int(positions), int(carried), int(distinct_t)


@pytest.mark.slow
async def test_kill_9_of_the_van_loses_and_duplicates_nothing(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings, broker: MosquittoBroker
) -> None:
    """SIGKILL the van mid-stream, and again while its broker is down and its outbox full; every
    batch that entered the outbox must be stored exactly once. A command sent while the van is
    dead is carried out, once, when it is back."""
    config = _van_config(tmp_path, mqtt_settings, "van-k9")
    outbox = tmp_path / "van-state" / "van-k9-outbox.db"
    highest_queued = 0

    # 1. Mid-stream: kill once the hub has stored something.
    van = _start_van(config)
    await until(lambda: len(_stored(hub, "van-k9")[0]) >= 5, timeout=30, what="first batches")
    van.send_signal(signal.SIGKILL)
    van.wait(10)
    highest_queued = max([highest_queued, *_outbox_seqs(outbox), *_stored(hub, "van-k9")[0]])

    # 2. Broker down, van queues, van killed with a full outbox, broker back, van back.
    await asyncio.to_thread(broker.stop)
    van = _start_van(config)
    await until(
        lambda: outbox.exists() and len(_outbox_seqs(outbox)) >= 5,
        timeout=30,
        what="batches queued offline",
    )
    van.send_signal(signal.SIGKILL)
    van.wait(10)
    pending = _outbox_seqs(outbox)
    assert pending, "the outbox should hold the batches queued while the broker was down"
    highest_queued = max(highest_queued, *pending)
    await asyncio.to_thread(broker.start)
    async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client:
        sent = await client.post("/api/v1/vehicles/van-k9/commands", json={"name": "send_position"})
    assert sent.status_code == 202, sent.text
    command_id = sent.json()["command_id"]

    # 3. Restart and let it drain; a clean stop queues its last partial batch for the next start.
    van = _start_van(config)
    await until(
        lambda: len(_stored(hub, "van-k9")[0]) >= highest_queued + 3,
        timeout=30,
        what="drained after restart",
    )
    van.send_signal(signal.SIGTERM)
    assert van.wait(10) == 0
    still_queued = _outbox_seqs(outbox)
    assert len(still_queued) <= 1

    def events_and_acks() -> set[int]:
        """Outbox seqs of the events (driving, ignition) and command acks the hub stored: they
        share the outbox's numbering with the telemetry batches."""
        with hub.engine().connect() as db:
            rows = db.execute(
                sa.text(
                    "SELECT seq FROM ingested_messages WHERE device_id = 'van-k9'"
                    " AND kind <> 'telemetry' AND seq IS NOT NULL"
                )
            )
            return {int(s) for (s,) in rows}

    def accounted_for() -> bool:
        seqs = _stored(hub, "van-k9")[0]
        everything = set(seqs) | set(still_queued) | events_and_acks()
        return everything == set(range(1, max(everything) + 1))

    # What the van sent just before it stopped may still be on its way into the database.
    try:
        await until(accounted_for, timeout=20, what="every queued batch stored or still queued")
    except AssertionError:
        seqs = _stored(hub, "van-k9")[0]
        everything = set(seqs) | set(still_queued) | events_and_acks()
        missing = sorted(set(range(1, max(everything) + 1)) - everything)
        raise AssertionError(
            f"batches neither stored nor queued: {missing} (stored up to {max(seqs)}, "
            f"highest queued before the last restart {highest_queued}, still queued {still_queued})"
        ) from None
    seqs, positions, carried, distinct_t = _stored(hub, "van-k9")
    assert len(set(seqs)) == len(seqs), "a batch was stored twice"
    everything = set(seqs) | set(still_queued) | events_and_acks()
    assert sorted(everything) == list(range(1, max(everything) + 1)), (
        "a message that entered the outbox is neither stored nor still queued"
    )
    assert max(seqs) >= highest_queued
    assert positions == carried == distinct_t, "positions were lost or duplicated"
    with hub.engine().connect() as db:
        answers = db.execute(
            sa.text("SELECT ok, reason FROM vehicle_command_acks WHERE command_id = :c").bindparams(
                sa.bindparam("c", type_=sa.Uuid())
            ),
            {"c": uuid.UUID(command_id)},
        ).all()
    assert [tuple(a) for a in answers] == [(True, "")], "the command was lost or carried out twice"


async def test_a_parcel_code_from_the_api_opens_exactly_its_compartment_once(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings
) -> None:
    factory = MockLockerFactory()
    keypad = SimKeypad()
    settings = LockerSettings(
        device_id="L-e2e",
        code_key=derive_locker_key(MASTER.encode(), "L-e2e").hex(),
        state_dir=tmp_path / "locker-state",
        mqtt=mqtt_settings,
        compartments=4,
    )
    try:
        with open_locker(settings, pin_factory=factory, keypad=keypad) as locker:
            shut_doors(factory)  # after the board claimed its pins: a locker starts shut
            task = asyncio.create_task(locker.run())
            try:
                await _parcel_story(hub, locker, factory, keypad)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        factory.reset()
        factory.close()


async def _parcel_story(hub, locker, factory, keypad) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client:

        async def locker_known() -> None:
            while (await client.get("/api/v1/lockers/L-e2e")).status_code != 200:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(locker_known(), 15)
        resp = await client.post("/api/v1/parcels", json={"locker_id": "L-e2e"})
        assert resp.status_code == 201, resp.text
        parcel = resp.json()
        for to in ("at_depot", "out_for_delivery"):
            moved = await client.post(
                f"/api/v1/parcels/{parcel['id']}/transitions", json={"to": to}
            )
            assert moved.status_code == 200, moved.text
        courier = await client.post(
            f"/api/v1/parcels/{parcel['id']}/codes", json={"kind": "courier"}
        )
        assert courier.status_code == 201, courier.text
        compartment = courier.json()["compartment"]

        # the courier deposits; the hub answers the locker's deposit with a pickup grant
        await until(lambda: locker.stats.grants_stored == 1, what="courier grant at the locker")
        keypad.press(courier.json()["code"] + "#")
        await _open_and_shut(factory, compartment, before=[False])
        await until(lambda: locker.stats.grants_stored == 2, what="pickup grant at the locker")
        # the customer lost the code: ops resend it (the first one is revoked on the locker)
        resent = await client.post(f"/api/v1/parcels/{parcel['id']}/codes", json={"kind": "pickup"})
        assert resent.status_code == 201, resent.text
        code = resent.json()["code"]
        assert len(code) == 8 and code.isdigit()

        await until(lambda: locker.stats.grants_stored == 3, what="new pickup grant at the locker")
        keypad.press(code + "#")
        await _open_and_shut(factory, compartment, before=[False, True, False])
        for other in range(1, 5):
            if other != compartment:
                assert relay_history(factory, other) == [False], f"compartment {other} moved"

        async def picked_up() -> dict[str, object]:
            while True:
                got = (await client.get(f"/api/v1/parcels/{parcel['id']}")).json()
                if got["status"] == "picked_up":
                    return dict(got)
                await asyncio.sleep(0.05)

        stored = await asyncio.wait_for(picked_up(), 15)
        assert "code" not in stored and "code_hash" not in stored

        rejected_before = locker.stats.codes_rejected
        keypad.press(code + "#")  # the same code again
        wrong = "0" * 8 if code != "0" * 8 else "1" * 8
        keypad.press(wrong + "#")  # a code nobody was given
        await until(lambda: locker.stats.codes_rejected == rejected_before + 2, what="refusals")
        assert relay_history(factory, compartment) == [False, True, False, True, False], "again"
        assert locker.stats.codes_accepted == 2  # the courier's and the customer's


async def _open_and_shut(factory, compartment: int, *, before: list[bool]) -> None:  # type: ignore[no-untyped-def]
    """The code released the lock: someone opens the door, and shuts it again."""
    await until(lambda: relay_history(factory, compartment) == [*before, True], what="unlock")
    door = factory.pin(2000 + compartment)
    door.drive_high()
    await until(lambda: relay_history(factory, compartment) == [*before, True, False])
    door.drive_low()
