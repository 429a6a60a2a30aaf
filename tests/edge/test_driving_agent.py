"""The van agent with its driving events: a harsh brake on a real (virtual) CAN bus becomes a
VehicleEvent in the outbox, with its evidence and position, and forces a point onto the track."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import can
import pytest

from edge.agent import EVENT_PRIORITY, VehicleAgent
from edge.can import CanSource
from edge.can.player import FramePlayer, toyota_checksum
from edge.gnss.sim import SimGnssSettings, SimulatedGnss
from edge.outbox import Outbox
from edge.reporting import Reason
from protocol.codec import decode
from protocol.messages import Position, TelemetryBatch, VehicleEvent
from tests.edge.driving_traces import T0, profile
from tests.edge.gnss_rigs import until
from tests.edge.test_vehicle_agent import ScriptedGnss, _running
from tests.edge.test_vehicle_signals import DB, _can_settings, _events, _settings

MPH_PER_MPS = 1 / 0.44704


def _speed_frames(speeds_mps: list[float], *, dt: float, t0: float) -> list[can.Message]:
    """The Prius's SPEED message (0xB4) for a speed profile, checksummed as the car does."""
    m = DB.get_message_by_name("SPEED")
    out = []
    for k, v in enumerate(speeds_mps):
        data = bytearray(m.encode({"ENCODER": k & 0xFF, "SPEED": v * MPH_PER_MPS, "CHECKSUM": 0}))
        data[-1] = toyota_checksum(m.frame_id, data)
        out.append(
            can.Message(
                timestamp=t0 + k * dt, arbitration_id=m.frame_id, is_extended_id=False, data=data
            )
        )
    return out


def _points(outbox: Outbox) -> list[Position]:
    return [
        p
        for e in outbox.peek(1000)
        if e.priority == 0
        for p in decode(e.payload, TelemetryBatch).points
    ]


async def test_a_harsh_brake_on_the_can_bus_is_an_event_with_evidence_and_a_forced_point(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    source = CanSource(settings=_can_settings())
    agent = VehicleAgent(
        settings=_settings(tmp_path), gnss=gnss, outbox=outbox, signal_sources={"can": source}
    )
    here = Position(t=T0, lat=52.37, lon=4.89, speed_mps=13.9, heading_deg=90.0, hdop=0.8, fix="3d")
    async with _running(agent):
        await until(lambda: agent.health().get("can") == "ok", what="the CAN bus open")
        gnss.queue.put_nowait(here)
        await until(lambda: len(_points(outbox)) == 1, timeout=5, what="the first point")
        # 50 km/h, then 4.5 m/s^2 to a standstill (a late stop for a red light), at 80 Hz.
        speeds = profile((0.0, 2.0), (-4.5, 3.2), (0.0, 2.0), v0=13.9, dt=0.0125)
        frames = _speed_frames(speeds, dt=0.0125, t0=time.time())
        with FramePlayer(channel=source.settings.channel, frames=frames, time_scale=None) as player:
            await until(player.done.is_set, timeout=30, what="the stop played")
            await until(
                lambda: any(e.kind == "harsh_braking" for e in _events(outbox)),
                timeout=10,
                what="the harsh braking event",
            )
        # The event asked for a point: the next fix is reported though no rule would report it.
        stopped = here.model_copy(update={"t": T0 + timedelta(seconds=1), "speed_mps": 0.0})
        gnss.queue.put_nowait(stopped)
        await until(lambda: len(_points(outbox)) == 2, timeout=5, what="the forced point")
    (event,) = _events(outbox)
    assert event.kind == "harsh_braking" and event.position == here
    ev = event.evidence
    assert ev["source"] == "bus" and ev["threshold_mps2"] == -3.0
    assert ev["peak_mps2"] == pytest.approx(-4.5, abs=0.3)
    assert 1.5 <= float(ev["duration_s"]) <= 3.5
    assert ev["speed_from_mps"] == pytest.approx(13.9, abs=0.6)
    assert abs(event.at.timestamp() - (frames[0].timestamp + 2.0)) < 0.5  # when braking began
    assert agent.reporter.reasons[Reason.FORCED] == 1
    assert _points(outbox) == [here, stopped]
    assert [e.priority for e in outbox.peek(1000)].count(EVENT_PRIORITY) == 1
    assert int(agent.health()["driving_event_harsh_braking"]) == 1
    assert decode(outbox.peek(1000)[0].payload, VehicleEvent).vehicle_id == "van-t"
    outbox.close()


async def test_the_demo_van_shows_driving_events_each_on_a_forced_point(tmp_path: Path) -> None:
    """The simulated van of the demo (seed 1, 100x real time): it sets off, takes an arterial too
    fast and brakes late; each event's fix is on the track the hub receives."""
    outbox = Outbox(tmp_path / "o.db")
    sim = SimulatedGnss(SimGnssSettings(seed=1, time_scale=100), start=T0)
    agent = VehicleAgent(settings=_settings(tmp_path), gnss=sim, outbox=outbox)
    async with _running(agent):
        await until(
            lambda: {"overspeed", "harsh_braking"} <= {e.kind for e in _events(outbox)},
            timeout=60,
            what="an overspeed and a harsh brake",
        )
    events = _events(outbox)
    assert [e.kind for e in events][:3] == ["ignition_on", "overspeed", "harsh_braking"]
    on, fast, brake = events[:3]
    assert on.evidence["inferred"] is True
    assert float(fast.evidence["peak_mps"]) > 25.0 and float(fast.evidence["duration_s"]) >= 5
    assert float(brake.evidence["peak_mps2"]) <= -3.0
    points = _points(outbox)
    assert all(e.position is not None and e.position in points for e in events)
    assert agent.reporter.reasons[Reason.FORCED] >= 3
    outbox.close()
