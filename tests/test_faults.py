"""Faults against real peers: the broker goes away while the van drives, and the van's GNSS daemon
dies and comes back. The hub (ingest, dispatcher, API on SQLite) runs in-process as in
``test_end_to_end.py``; the van is its own ``lastmile edge run`` process. Kill -9 of the van is
covered there (``test_kill_9_of_the_van_loses_and_duplicates_nothing``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloud.broker import MosquittoBroker
from edge.settings import MqttSettings
from tests import test_end_to_end as e2e
from tests.edge.gnss_rigs import NMEA_DIR, Gpsfake, free_port
from tests.locker.story import until
from tests.test_end_to_end import Hub
from tests.van_rig import sim_van_config

hub = e2e.hub  # the end-to-end tests' hub fixture

OUTAGE_S = 60.0


def _config(tmp_path: Path, mqtt: MqttSettings, vehicle_id: str, extra: str = "") -> Path:
    return sim_van_config(
        tmp_path,
        mqtt,
        vehicle_id,
        time_scale=10,
        seed=11,
        batch_age_s=10,
        status_interval_s=1,
        command_key=False,
        extra=extra,
    )


@contextlib.contextmanager
def _van(config: Path) -> Iterator[subprocess.Popen[bytes]]:
    van = e2e._start_van(config)
    try:
        yield van
    finally:
        if van.poll() is None:
            van.send_signal(signal.SIGTERM)
            try:
                van.wait(10)
            except subprocess.TimeoutExpired:
                van.kill()
                van.wait(10)


def _track(hub: Hub, vehicle_id: str) -> list[tuple[int, str]]:
    """(batch seq, point time) of every stored position, in seq order then time order."""
    with hub.engine().connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT m.seq, p.t FROM positions p"
                " JOIN ingested_messages m ON m.message_id = p.message_id"
                " WHERE p.vehicle_id = :v ORDER BY m.seq, p.t"
            ),
            {"v": vehicle_id},
        )
        return [(int(s), str(t)) for s, t in rows]


async def _vehicle(client: httpx.AsyncClient, vehicle_id: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/vehicles")
    assert resp.status_code == 200, resp.text
    for v in resp.json()["data"]:
        if v["id"] == vehicle_id:
            return dict(v)
    return {}


@pytest.mark.slow
async def test_a_minute_without_broker_while_driving_loses_nothing_and_keeps_order(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings, broker: MosquittoBroker
) -> None:
    vid = "van-outage"
    outbox = tmp_path / "van-state" / f"{vid}-outbox.db"
    with _van(_config(tmp_path, mqtt_settings, vid)) as van:
        await until(lambda: len(e2e._stored(hub, vid)[0]) >= 5, timeout=30, what="first batches")

        await asyncio.to_thread(broker.stop)
        stopped = time.monotonic()
        stored_before = len(e2e._stored(hub, vid)[0])
        await asyncio.sleep(OUTAGE_S)  # the van drives on; its batches wait in its outbox
        queued_offline = e2e._outbox_seqs(outbox)
        # A batch closes at 10 points or 10 s: even a van waiting at lights fills a few a minute.
        assert len(queued_offline) >= 5, f"only {len(queued_offline)} batches queued offline"
        assert van.poll() is None, "the van must ride out the outage"
        await asyncio.to_thread(broker.start)
        assert time.monotonic() - stopped >= OUTAGE_S

        await until(
            lambda: set(queued_offline) <= set(e2e._all_seqs(hub, vid)),
            timeout=60,
            what="every batch queued offline stored",
        )
        async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client:

            async def drained() -> dict[str, Any]:
                async with asyncio.timeout(30):
                    while True:
                        status = (await _vehicle(client, vid)).get("status") or {}
                        if status.get("online") and status.get("outbox_depth", 99) <= 1:
                            return dict(status)
                        await asyncio.sleep(0.1)

            status = await drained()
        assert status["outbox_dropped"] == {}, "nothing may be dropped in a minute's outage"
        assert status["health"]["gnss_state"] == "ok"
        van.send_signal(signal.SIGTERM)
        assert van.wait(10) == 0
    still_queued = e2e._outbox_seqs(outbox)
    assert len(still_queued) <= 1  # a clean stop queues its last partial batch for next time

    async def everything_stored_or_queued() -> None:
        await until(
            lambda: (
                set(e2e._all_seqs(hub, vid)) | set(still_queued)
                == set(range(1, max(e2e._all_seqs(hub, vid) + still_queued) + 1))
            ),
            timeout=20,
            what="every batch stored or still queued",
        )

    await everything_stored_or_queued()
    seqs, positions, carried, distinct_t = e2e._stored(hub, vid)
    assert len(e2e._all_seqs(hub, vid)) > stored_before + len(queued_offline) - 1
    assert len(set(seqs)) == len(seqs), "a batch was stored twice"
    assert positions == carried == distinct_t, "points were lost or duplicated"
    track = _track(hub, vid)
    times = [t for _, t in track]
    assert times == sorted(times), "in seq order the points must run forward in time"
    assert len(set(times)) == len(times)


@pytest.mark.slow
async def test_gpsd_dying_shows_in_the_hub_and_the_van_recovers_without_a_restart(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings
) -> None:
    vid = "van-gpsd"
    gpsd = Gpsfake(NMEA_DIR / "bt451.log", port=free_port())
    gpsd.start()
    extra = (
        f'gnss = "gpsd"\n[gpsd]\nport = {gpsd.port}\nreconnect_min_s = 0.05\nreconnect_max_s = 0.5'
    )
    try:
        with _van(_config(tmp_path, mqtt_settings, vid, extra)) as van:
            async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client:

                async def gnss(state: str) -> dict[str, Any]:
                    async with asyncio.timeout(30):
                        while True:
                            v = await _vehicle(client, vid)
                            health = (v.get("status") or {}).get("health", {})
                            if health.get("gnss_state") == state:
                                return dict(v)
                            await asyncio.sleep(0.1)

                await gnss("ok")
                before = e2e._stored(hub, vid)[1]
                await asyncio.to_thread(gpsd.stop)
                blind = await gnss("disconnected")
                assert str(gpsd.port) in blind["status"]["health"]["gnss_error"]
                assert blind["online"], "the van itself is still there"

                await asyncio.to_thread(gpsd.start)  # a new gpsd on the same port
                healed = await gnss("ok")
                assert "gnss_error" not in healed["status"]["health"]
                assert van.poll() is None, "the agent recovered by itself, no restart"
                assert healed["status"]["uptime_s"] >= blind["status"]["uptime_s"]
                await until(
                    lambda: e2e._stored(hub, vid)[1] > before,
                    timeout=30,
                    what="positions again after gpsd came back",
                )
    finally:
        gpsd.stop()


@pytest.mark.slow
async def test_a_killed_van_is_marked_offline_by_its_last_will(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings
) -> None:
    vid = "van-will"
    async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as client:

        async def online(expected: bool) -> dict[str, Any]:
            async with asyncio.timeout(30):
                while True:
                    v = await _vehicle(client, vid)
                    if v and v["online"] is expected and v["status"]["online"] is expected:
                        return v
                    await asyncio.sleep(0.1)

        with _van(_config(tmp_path, mqtt_settings, vid)) as van:
            alive = await online(True)
            assert alive["version"] and alive["status"]["health"]["gnss"] == "sim"
            van.send_signal(signal.SIGKILL)  # no goodbye: only the broker can tell
            van.wait(10)
            dead = await online(False)
    assert dead["status"]["health"]["gnss_state"] == "ok", "the will is the status as of connect"
