"""After an outage, through a real Mosquitto: events reach the broker before the backlog of
positions, and a bounded outbox that overflowed kept every event, dropped the oldest positions,
and says so in the retained status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.broker import MosquittoBroker
from edge.agent import VehicleAgent
from edge.config import BatchSettings, VehicleSettings
from edge.outbox import Outbox, OutboxLimits
from edge.reporting import ReportingSettings, ReportProfile
from edge.settings import MqttSettings
from edge.signals import Health, SignalUpdate
from protocol.codec import decode_any
from protocol.messages import DeviceStatus, Position, TelemetryBatch, VehicleEvent
from tests.edge.gnss_rigs import until
from tests.edge.mqtt_probe import Probe
from tests.edge.test_vehicle_agent import ScriptedGnss
from tests.edge.test_vehicle_agent import _running as running

VAN = "van-d"
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


class ScriptedDoors:
    """A vehicle-bus source the test drives: push signal updates, read its health."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SignalUpdate] = asyncio.Queue()
        self.health: Health = "ok"

    async def updates(self) -> AsyncIterator[SignalUpdate]:
        while True:
            yield await self.queue.get()


async def test_after_an_outage_events_arrive_first_and_an_overflow_drops_only_old_positions(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    mqtt = MqttSettings(
        host=broker.host, port=broker.port, reconnect_min_s=0.05, reconnect_max_s=0.3
    )
    settings = VehicleSettings(
        device_id=VAN,
        state_dir=tmp_path,
        mqtt=mqtt,
        batch=BatchSettings(max_points=1, max_age_s=60),  # one row per point: easy to count
        # Parked, a point every second: every fix below is reported.
        reporting=ReportingSettings(stopped=ReportProfile(interval_s=1)),
        status_interval_s=0.5,
    )
    limits = OutboxLimits(max_rows=30, max_bytes=None, max_age_s=None, slack=0)
    outbox = Outbox(tmp_path / "o.db", limits=limits)
    gnss, doors = ScriptedGnss(), ScriptedDoors()
    agent = VehicleAgent(
        settings=settings, gnss=gnss, outbox=outbox, signal_sources={"doors": doors}
    )
    probe = Probe(broker.host, broker.port, f"fleet/{VAN}/#", client_id="outage-probe")
    await asyncio.to_thread(broker.stop)  # the probe's session (and subscription) outlive this
    try:
        async with running(agent):
            doors.queue.put_nowait(SignalUpdate("DOOR_RR", 0.0, "", T0.timestamp()))
            for s in range(50):
                gnss.queue.put_nowait(Position(t=T0 + timedelta(seconds=s), lat=52.0, lon=4.0))
                if s % 5 == 4:  # the courier opens and shuts the back door while parked
                    value = float((s // 5) % 2 == 0)
                    doors.queue.put_nowait(SignalUpdate("DOOR_RR", value, "", T0.timestamp() + s))
            await until(
                lambda: agent.points_queued == 50 and agent.events_queued == 10,
                what=lambda: f"{agent.points_queued} points, {agent.events_queued} events",
            )
            assert outbox.depth()[0] == 30 and outbox.drops() == {"rows": 30}
            assert outbox.drops_by_priority() == {("rows", 0): 30}, "no event was dropped"

            await asyncio.to_thread(broker.start)
            data = ("telemetry", "events")

            def arrived() -> list[bytes]:
                return [p for t, p, _ in probe.messages if t.rsplit("/", 1)[-1] in data]

            await until(lambda: len(arrived()) >= 30, timeout=30, what="the backlog drained")
            await until(
                lambda: any(
                    (s := decode_any(p)).type == "status"
                    and isinstance(s, DeviceStatus)
                    and s.online
                    and s.outbox_depth == 0
                    for p in probe.payloads(f"fleet/{VAN}/status")
                ),
                timeout=10,
                what="a status with the outbox drained",
            )
    finally:
        probe.close()
        outbox.close()

    messages = [decode_any(p) for p in arrived()]
    assert len(messages) == 30, "nothing arrives twice"
    kinds = [m.type for m in messages]
    assert kinds == ["vehicle_event"] * 10 + ["telemetry"] * 20, kinds
    events = [m for m in messages if isinstance(m, VehicleEvent)]
    assert [e.kind for e in events] == ["door_opened", "door_closed"] * 5
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    batches = [m for m in messages if isinstance(m, TelemetryBatch)]
    times = [(b.points[0].t - T0).total_seconds() for b in batches]
    assert times == list(range(30, 50)), "the newest positions were kept, in order"
    status = decode_any(probe.payloads(f"fleet/{VAN}/status")[-1])
    assert isinstance(status, DeviceStatus)
    assert status.outbox_dropped == {"rows": 30}
    assert status.health["doors"] == "ok" and status.health["gnss_state"] == "ok"
    assert status.version and status.uptime_s > 0
