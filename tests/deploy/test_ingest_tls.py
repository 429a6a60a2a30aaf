"""Ingest over TLS: the worker's buffered reads (cloud.lean_publish) on a TLS socket, where one
``recv`` returns at most one TLS record and decrypted bytes can wait inside the SSL object."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from cloud.db import make_engine, make_session_factory, migrate
from cloud.ingest import IngestWorker
from cloud.models import PositionRow
from cloud.pki import Pki
from edge.settings import MqttSettings
from protocol.topics import Channel, vehicle_topic

from .conftest import Fleet, ProbeFn
from .rig import ProductionBroker

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
BATCHES = 150
POINTS = 60  # ~9 KB a message: most span two TLS records


def _batch(van: str, seq: int) -> bytes:
    start = T0 + timedelta(seconds=seq * POINTS)
    points = [
        {
            "t": (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
            "lat": 52.3 + i * 1e-5,
            "lon": 4.9,
            "speed_mps": 8.0,
            "heading_deg": 90.0,
            "alt_m": 1.0,
            "hdop": 0.9,
            "sats": 11,
            "fix": "3d",
        }
        for i in range(POINTS)
    ]
    return json.dumps(
        {"v": 1, "id": str(uuid.uuid4()), "vehicle_id": van, "seq": seq, "points": points}
    ).encode()


@pytest.mark.timeout(120)
def test_a_worker_over_tls_stores_every_point_of_a_burst(
    cloud: ProductionBroker,
    fleet: Fleet,
    probe: ProbeFn,
    pki: Pki,
    hub_password: str,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate(url)
    engine = make_engine(url)
    worker = IngestWorker(
        settings=MqttSettings(
            host="127.0.0.1",
            port=cloud.ports.tls,
            username="hub",
            password=SecretStr(hub_password),
            tls_ca_file=pki.ca_cert,
        ),
        session_factory=make_session_factory(engine),
        client_id="hub",  # the TLS listener makes the username the client id
        group="hub",
        receive_maximum=400,
    )
    van = probe(cloud.ports.tls, username=fleet.van_a.id, password=fleet.van_a.password)
    topic = vehicle_topic(fleet.van_a.id, Channel.TELEMETRY)

    async def run() -> None:
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.wait_ready(), 30)
            assert van.connect() is not None and van.connack is not None
            assert not van.connack.is_failure
            # Published back to back, without waiting for each PUBACK: the broker streams them.
            infos = [
                van.client.publish(topic, _batch(fleet.van_a.id, seq), qos=1)
                for seq in range(1, BATCHES + 1)
            ]
            for info in infos:
                await asyncio.to_thread(info.wait_for_publish, 30)
            async with asyncio.timeout(60):
                while worker.stats.stored < BATCHES:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(run())
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(PositionRow)).scalar_one()
    finally:
        engine.dispose()
    assert (worker.stats.stored, worker.stats.duplicates, stored) == (
        BATCHES,
        0,
        BATCHES * POINTS,
    )
    assert not worker.stats.dead_letters
