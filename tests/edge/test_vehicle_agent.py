"""The van agent with its new parts: smart reporting before the batcher, and GNSS health in status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.broker import MosquittoBroker
from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import BatchSettings, VehicleSettings
from edge.driving import DrivingSettings
from edge.gnss.gpsd import GpsdGnss
from edge.gnss.health import GnssState, HealthCell, SourceHealth
from edge.gnss.settings import GpsdSettings, NmeaSettings
from edge.gnss.sim import SimulatedGnss
from edge.outbox import Outbox
from edge.reporting import Reason
from edge.settings import MqttSettings, load_settings
from protocol.codec import decode
from protocol.messages import DeviceStatus, Position, TelemetryBatch
from tests.edge.gnss_rigs import until
from tests.edge.mqtt_probe import Probe

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class ScriptedGnss:
    """A GnssSource the test drives by hand: push fixes, set health."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Position] = asyncio.Queue()
        self._health = HealthCell(SourceHealth(GnssState.OK))

    @property
    def health(self) -> SourceHealth:
        return self._health.value

    def health_changes(self) -> AsyncIterator[SourceHealth]:
        return self._health.changes()

    def counters(self) -> Mapping[str, int]:
        return {"fixes": 7}

    def set_health(self, state: GnssState, error: str = "") -> None:
        self._health.set(state, error)

    async def fixes(self) -> AsyncIterator[Position]:
        while True:
            yield await self.queue.get()


def _settings(tmp_path: Path, mqtt: MqttSettings, **kw: object) -> VehicleSettings:
    return VehicleSettings(
        device_id="van-t",
        state_dir=tmp_path,
        mqtt=mqtt,
        batch=BatchSettings(max_points=60, max_age_s=0.3),
        status_interval_s=60,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def _running(agent: VehicleAgent) -> AsyncIterator[None]:
    task = asyncio.create_task(agent.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _batches(outbox: Outbox) -> list[TelemetryBatch]:
    return [decode(e.payload, TelemetryBatch) for e in outbox.peek(1000)]


async def test_only_reported_fixes_are_queued_and_a_lone_point_is_not_held_back(
    tmp_path: Path,
) -> None:
    nowhere = MqttSettings(port=1, reconnect_min_s=0.05, reconnect_max_s=0.1)
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    # Parked, then 10 m/s a second later: a harsh start, whose event would force a point. This
    # story is about the reporting rules alone, so the driving events are off.
    quiet = DrivingSettings(enabled=False)
    agent = VehicleAgent(
        settings=_settings(tmp_path, nowhere, driving=quiet), gnss=gnss, outbox=outbox
    )
    async with _running(agent):
        for s in range(120):  # two minutes parked: only the first fix is worth a point
            gnss.queue.put_nowait(
                Position(t=T0 + timedelta(seconds=s), lat=52.37, lon=4.89, speed_mps=0.1)
            )
        # The batch's next point is minutes away; the batch is closed by wall-clock age instead.
        await until(lambda: len(outbox) == 1, timeout=5, what="the lone point queued")
        for s in range(120, 138):  # drive off north at 10 m/s
            gnss.queue.put_nowait(
                Position(
                    t=T0 + timedelta(seconds=s),
                    lat=52.37 + (s - 120) * 10 / 111_320,
                    lon=4.89,
                    speed_mps=10.0,
                    heading_deg=0.0,
                )
            )
        await until(lambda: agent.reporter.offered == 138, what="all fixes offered")
        agent.reporter.force()
        gnss.queue.put_nowait(
            Position(t=T0 + timedelta(seconds=138), lat=52.372, lon=4.89, speed_mps=10.0)
        )
        await until(lambda: agent.reporter.offered == 139, what="forced fix offered")
    points = [p for b in _batches(outbox) for p in b.points]
    assert points[0].t == T0
    offsets = [(p.t - T0).total_seconds() for p in points]
    assert offsets == [0, 120, 125, 130, 135, 138]  # first, start, every 5 s moving, forced
    assert agent.reporter.reasons[Reason.FORCED] == 1
    assert agent.points_queued == len(points)
    outbox.close()


async def test_a_change_of_gnss_health_republishes_status_at_once(
    tmp_path: Path, mqtt_settings: MqttSettings, broker: MosquittoBroker
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    agent = VehicleAgent(settings=_settings(tmp_path, mqtt_settings), gnss=gnss, outbox=outbox)
    probe = Probe(broker.host, broker.port, "fleet/van-t/status")

    def health() -> dict[str, str]:
        payloads = probe.payloads()
        return decode(payloads[-1], DeviceStatus).health if payloads else {}

    async with _running(agent):
        await asyncio.wait_for(agent.uplink.wait_connected(), 10)
        await until(lambda: health().get("gnss_state") == "ok", what="first status")
        assert health()["gnss"] == "sim" and health()["gnss_fixes"] == "7"
        gnss.set_health(GnssState.DISCONNECTED, "cannot open /dev/ttyACM0")
        # status_interval_s is 60: only the health change can explain a status within seconds.
        await until(lambda: health().get("gnss_state") == "disconnected", timeout=5, what="status")
        assert health()["gnss_error"] == "cannot open /dev/ttyACM0"
        gnss.set_health(GnssState.OK)
        await until(lambda: health().get("gnss_state") == "ok", timeout=5, what="recovered")
        assert "gnss_error" not in health()
    probe.close()
    outbox.close()


def test_the_backend_is_chosen_by_settings(tmp_path: Path) -> None:
    base = {"device_id": "van-t", "state_dir": tmp_path}
    assert isinstance(build_gnss(VehicleSettings(**base)), SimulatedGnss)  # type: ignore[arg-type]
    gpsd = build_gnss(VehicleSettings(**base, gnss="gpsd", gpsd=GpsdSettings(port=2948)))  # type: ignore[arg-type]
    assert isinstance(gpsd, GpsdGnss)
    from edge.gnss.nmea import NmeaSerialGnss

    nmea = VehicleSettings(**base, gnss="nmea", nmea=NmeaSettings(port="/dev/ttyUSB0"))  # type: ignore[arg-type]
    assert isinstance(build_gnss(nmea), NmeaSerialGnss)


def test_a_van_toml_with_every_gnss_and_reporting_section_loads(tmp_path: Path) -> None:
    path = tmp_path / "van.toml"
    path.write_text(
        """
device_id = "van-9"
gnss = "nmea"

[gpsd]
host = "127.0.0.1"
port = 2947

[nmea]
port = "/dev/ttyACM0"
baudrate = 9600

[reporting]
moving_above_mps = 2.0
stopped_below_mps = 1.0
stop_after_s = 5

[reporting.stopped]
interval_s = 300

[reporting.moving]
interval_s = 5
distance_m = 100
heading_deg = 10
speed_change_mps = 3
"""
    )
    s = load_settings(VehicleSettings, path)
    assert s.gnss == "nmea" and s.nmea.baudrate == 9600 and s.gpsd.port == 2947
    assert s.reporting.moving.heading_deg == 10 and s.reporting.stopped.distance_m is None
    assert VehicleSettings(device_id="v").gnss == "sim", "the simulator stays the default"
