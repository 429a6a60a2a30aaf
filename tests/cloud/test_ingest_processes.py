"""Ingest workers as separate processes: one is killed with SIGKILL mid-stream, nothing is lost.

Two ``lastmile hub ingest`` processes share the subscription under distinct client ids. A van fleet
publishes 20,000 points at QoS 1; one worker is SIGKILLed while they flow and started again under
the same id. Afterwards every point is in PostgreSQL exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.broker import MosquittoBroker
from cloud.db import make_engine, make_session_factory, migrate
from cloud.ingest import make_ingest_client, subscriptions
from cloud.models import IngestedMessage, PositionRow
from edge.mqtt import connected, make_client
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic
from tests.cloud.helpers import MASTER_SECRET, eventually

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
VANS = 8
BATCHES_PER_VAN = 50
POINTS_PER_BATCH = 50  # 8 x 50 x 50 = 20,000 points
TOTAL_POINTS = VANS * BATCHES_PER_VAN * POINTS_PER_BATCH
WORKERS = ("hub-ingest-a", "hub-ingest-b")

# `lastmile hub ingest --config F --client-id ID`, as an operator starts a worker.
LASTMILE_INGEST = [sys.executable, "-m", "edge.cli", "hub", "ingest"]


def _config(path: Path, *, database_url: str, broker: MosquittoBroker) -> Path:
    path.write_text(
        f'database_url = "{database_url}"\n'
        f'code_master_secret = "{MASTER_SECRET}"\n'
        'ingest_group = "hub"\n'
        "ingest_batch_max = 100\n"
        "ingest_receive_maximum = 200\n"
        "[mqtt]\n"
        f'host = "{broker.host}"\nport = {broker.port}\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.5\n"
    )
    return path


class Worker:
    """One ingest worker process, started, killed and started again under one client id."""

    def __init__(self, config: Path, client_id: str) -> None:
        self.config = config
        self.client_id = client_id
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*LASTMILE_INGEST, "--config", str(self.config), "--client-id", self.client_id],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM, as systemd would; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise


@pytest.fixture
def stored(postgres_database: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_database)  # before the workers, as the hub's `serve` would have done
    engine = make_engine(postgres_database)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


async def _make_sessions(mqtt: MqttSettings) -> None:
    """Each worker's persistent session exists and is subscribed before the first point is sent,
    so the broker queues for a member that is down instead of dropping what nobody subscribed."""
    for client_id in WORKERS:
        client = make_client(settings=mqtt, client_id=client_id, manual_ack=True)
        async with connected(client):
            await client.subscribe([(f, 1) for f in subscriptions("hub")])


def _batch(van: int, seq: int) -> TelemetryBatch:
    start = T0 + timedelta(seconds=(seq - 1) * POINTS_PER_BATCH)
    return TelemetryBatch(
        vehicle_id=f"van-{van}",
        seq=seq,
        points=tuple(
            Position(t=start + timedelta(seconds=i), lat=52.0 + i * 1e-5, lon=4.9, fix="3d")
            for i in range(POINTS_PER_BATCH)
        ),
    )


def _points(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(PositionRow)) or 0)


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(
    broker: MosquittoBroker,
    mqtt_settings: MqttSettings,
    postgres_database: str,
    stored: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    config = _config(tmp_path / "hub.toml", database_url=postgres_database, broker=broker)
    workers = [Worker(config, client_id) for client_id in WORKERS]
    victim = workers[0]
    payloads = [
        (vehicle_topic(f"van-{van}", Channel.TELEMETRY), encode(_batch(van, seq)))
        for seq in range(1, BATCHES_PER_VAN + 1)
        for van in range(VANS)
    ]

    async def story() -> None:
        await _make_sessions(mqtt_settings)
        for w in workers:
            w.start()
        publisher = make_client(
            settings=mqtt_settings, client_id="fleet", manual_ack=False, max_inflight=50
        )
        async with connected(publisher):
            half = len(payloads) // 2
            for topic, payload in payloads[:half]:
                await publisher.publish(topic, payload, qos=1)
            await eventually(lambda: _points(stored) > 0, timeout=30, what="the first points")
            victim.kill()  # mid-stream: whatever it held unacknowledged stays with the broker
            killed_at = _points(stored)
            publish_rest = asyncio.gather(
                *(publisher.publish(t, p, qos=1) for t, p in payloads[half:])
            )
            await asyncio.sleep(0.3)
            victim.start()
            await publish_rest
        assert killed_at < TOTAL_POINTS, "the kill came after the stream; make it longer"
        await eventually(
            lambda: _points(stored) >= TOTAL_POINTS, timeout=60, what="every point stored"
        )
        await asyncio.sleep(0.5)  # a late duplicate would show up now

    try:
        asyncio.run(story())
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]

    with stored() as session:
        assert session.scalar(select(func.count()).select_from(PositionRow)) == TOTAL_POINTS
        assert (
            session.scalar(select(func.count(func.distinct(PositionRow.message_id))))
            == VANS * BATCHES_PER_VAN
        )
        per_point = select(PositionRow.vehicle_id, PositionRow.t).distinct().subquery()
        assert session.scalar(select(func.count()).select_from(per_point)) == TOTAL_POINTS
        seqs: dict[str, list[int]] = {}
        for device_id, seq in session.execute(
            select(IngestedMessage.device_id, IngestedMessage.seq).order_by(
                IngestedMessage.device_id, IngestedMessage.seq
            )
        ):
            seqs.setdefault(device_id, []).append(seq)
    assert seqs == {f"van-{v}": list(range(1, BATCHES_PER_VAN + 1)) for v in range(VANS)}


def test_a_workers_receive_maximum_bounds_what_the_broker_sends_it_unacknowledged(
    mqtt_settings: MqttSettings,
) -> None:
    """Backpressure: the broker stops at Receive Maximum until the worker acknowledges."""

    async def story() -> int:
        client = make_ingest_client(
            settings=mqtt_settings, client_id="slow-worker", receive_maximum=25
        )
        async with connected(client):
            await client.subscribe([(f, 1) for f in subscriptions("hub")])
            fleet = make_client(settings=mqtt_settings, client_id="van-1", manual_ack=False)
            async with connected(fleet):
                for seq in range(1, 101):
                    await fleet.publish(
                        vehicle_topic("van-1", Channel.TELEMETRY), encode(_batch(1, seq)), qos=1
                    )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await asyncio.Event().wait()
            return len(client.messages)

    assert asyncio.run(story()) == 25
