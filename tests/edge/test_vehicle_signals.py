"""The van agent with its vehicle buses: CAN and OBD-II updates become fleet events and status health."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.agent import EVENT_PRIORITY, SignalEvents, VehicleAgent
from edge.app import build_signal_sources, simulated_bus
from edge.can import CanConfigError, CanSettings, CanSource, SignalSpec
from edge.can.decoder import load_dbc
from edge.can.player import FramePlayer, drive_frames
from edge.config import BatchSettings, VehicleSettings
from edge.obd import ObdSettings, ObdSource, PidSpec
from edge.outbox import Outbox
from edge.settings import MqttSettings, load_settings
from edge.signals import SignalUpdate
from protocol.codec import decode
from protocol.messages import DeviceStatus, Position, TelemetryBatch, VehicleEvent
from protocol.topics import Channel, vehicle_topic
from tests.edge import test_obd
from tests.edge.gnss_rigs import until
from tests.edge.signal_rig import poll
from tests.edge.test_vehicle_agent import T0, ScriptedGnss, _running

DBC = Path(__file__).parents[1] / "data" / "can" / "toyota_prius_2010_pt.dbc"
DB = load_dbc(str(DBC))
SIGNALS = [
    SignalSpec(name="GEAR", max_interval_s=5.0),
    SignalSpec(name="DOOR_OPEN_FR", alias="door_fr", max_interval_s=5.0),
    SignalSpec(name="ENGINE_RPM", deadband=50, max_interval_s=5.0),
    SignalSpec(name="SPEED", message="SPEED", deadband=0.5, max_interval_s=5.0),
]
NOWHERE = MqttSettings(port=1, reconnect_min_s=0.05, reconnect_max_s=0.1)  # nothing drains
ROOT = Path(__file__).resolve().parents[2]
_channels = itertools.count()

elm = test_obd.elm  # the ELM327-emulator fixture, shared with the OBD source's own tests


def _can_settings(**kw: object) -> CanSettings:
    base: dict[str, object] = {
        "interface": "virtual",
        "channel": f"test-signals-{next(_channels)}",
        "dbc_file": DBC,
        "signals": SIGNALS,
        "receive_timeout_s": 0.02,
    }
    base.update(kw)
    return CanSettings.model_validate(base)


def _settings(tmp_path: Path, **kw: object) -> VehicleSettings:
    return VehicleSettings(
        device_id="van-t",
        state_dir=tmp_path,
        mqtt=NOWHERE,
        batch=BatchSettings(max_points=60, max_age_s=0.2),
        **kw,  # type: ignore[arg-type]
    )


def _events(outbox: Outbox) -> list[VehicleEvent]:
    return [decode(e.payload, VehicleEvent) for e in outbox.peek(1000) if e.priority == 1]


async def test_doors_and_gear_on_the_can_bus_become_events_that_drain_before_positions(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    source = CanSource(settings=_can_settings())
    agent = VehicleAgent(
        settings=_settings(tmp_path),
        gnss=gnss,
        outbox=outbox,
        signal_sources={"can": source},
        health_poll_s=0.05,
    )
    refreshed = 0
    refresh = agent.uplink.refresh_status

    def counting_refresh() -> None:
        nonlocal refreshed
        refreshed += 1
        refresh()

    agent.uplink.refresh_status = counting_refresh  # type: ignore[method-assign]
    parked = Position(t=T0, lat=52.37, lon=4.89, speed_mps=0.0)
    async with _running(agent):
        await until(lambda: agent.health().get("can") == "ok", what="the CAN bus open")
        await until(lambda: refreshed >= 1, timeout=5, what="status refreshed on starting → ok")
        gnss.queue.put_nowait(parked)  # the van's position is known before the doors move
        await until(lambda: len(outbox) == 1, timeout=5, what="the position queued")
        # A delivery stop, then drive off: the door opens and closes, the gear goes P → D.
        frames = drive_frames(DB, seed=3, duration_s=40, start_t=time.time())
        with FramePlayer(channel=source.settings.channel, frames=frames, time_scale=None) as player:
            await until(player.done.is_set, timeout=30, what="the drive played")
        await until(
            lambda: {"door_closed", "gear_changed"} <= {e.kind for e in _events(outbox)},
            timeout=10,
            what="door and gear events",
        )
        assert agent.health()["can"] == "ok"
        assert int(agent.health()["can_updates"]) > 3
    kinds = [e.kind for e in _events(outbox)]
    assert kinds[:4] == ["door_opened", "door_closed", "ignition_on", "gear_changed"]
    door_open, door_closed, _, gear = _events(outbox)[:4]
    assert door_open.evidence == {"door_fr": 1.0} and door_closed.evidence == {"door_fr": 0.0}
    assert gear.evidence == {"GEAR": 3.0}
    assert door_open.at < door_closed.at <= gear.at  # signal time, from the frames' timestamps
    assert door_open.position == parked
    assert agent.latest_signals["GEAR"].value == 3.0
    # Drain order: every event (priority 1) before the position queued earlier (priority 0).
    entries = outbox.peek(1000)
    assert [e.priority for e in entries] == [EVENT_PRIORITY] * len(kinds) + [0]
    assert entries[0].topic == vehicle_topic("van-t", Channel.EVENTS)
    assert decode(entries[-1].payload, TelemetryBatch).points == (parked,)
    assert [decode(e.payload, VehicleEvent).seq for e in entries[:-1]] == [
        e.seq for e in entries[:-1]
    ]
    outbox.close()


async def test_a_running_engine_on_obd_is_ignition_on_and_obd_health_is_in_the_status(
    tmp_path: Path, elm: test_obd.ElmEmulator
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    source = ObdSource(settings=ObdSettings(port=elm.port, pids=test_obd.PIDS))
    agent = VehicleAgent(
        settings=_settings(tmp_path),
        gnss=ScriptedGnss(),
        outbox=outbox,
        signal_sources={"obd": source},
    )
    assert agent.health()["obd"] == "starting"
    async with _running(agent):
        await poll(lambda: any(e.kind == "ignition_on" for e in _events(outbox)))
        status = decode(agent.status_payload(True), DeviceStatus)
    (event,) = _events(outbox)  # the emulated car idles: one ignition_on, nothing else
    assert event.kind == "ignition_on" and event.position is None  # no fix yet
    assert event.evidence["RPM"] > SignalEvents.RPM_ON
    assert status.health["obd"] == "ok" and int(status.health["obd_updates"]) >= 1
    assert agent.health()["obd"] == "stopped"
    outbox.close()


def _rpm(value: float, t: float) -> SignalUpdate:
    return SignalUpdate("RPM", value, "rpm", t)


def test_the_ignition_goes_off_only_after_five_seconds_of_a_stopped_engine() -> None:
    events = SignalEvents()
    assert events.offer(_rpm(0, 0.0)) == []  # already off
    assert events.offer(_rpm(250, 1.0)) == []  # cranking
    assert events.offer(_rpm(820, 2.0)) == [("ignition_on", 2.0)]
    assert events.offer(_rpm(0, 10.0)) == []
    assert events.offer(_rpm(700, 12.0)) == []  # a stall, restarted at once: still on
    assert events.offer(_rpm(0, 20.0)) == []
    assert events.offer(_rpm(0, 24.9)) == []
    assert events.offer(_rpm(0, 25.0)) == [("ignition_off", 20.0)]  # stamped when it stopped
    assert events.offer(_rpm(0, 40.0)) == []


def test_the_first_value_of_a_door_or_gear_is_state_not_an_event() -> None:
    events = SignalEvents()
    assert events.offer(SignalUpdate("DOOR_OPEN_RL", 1, "", 1.0)) == []
    assert events.offer(SignalUpdate("DOOR_OPEN_RL", 1, "", 2.0)) == []  # a heartbeat
    assert events.offer(SignalUpdate("DOOR_OPEN_RL", 0, "", 3.0)) == [("door_closed", 3.0)]
    assert events.offer(SignalUpdate("gear", 0, "", 1.0)) == []
    assert events.offer(SignalUpdate("gear", 4, "", 2.0)) == [("gear_changed", 2.0)]
    assert events.offer(SignalUpdate("SPEED", 40, "kph", 2.0)) == []
    assert set(events.latest) == {"DOOR_OPEN_RL", "gear", "SPEED"}


def test_a_van_toml_with_can_and_obd_sections_loads_and_builds_both_sources(
    tmp_path: Path,
) -> None:
    path = tmp_path / "van.toml"
    path.write_text(
        f"""
device_id = "van-9"

[can]
interface = "socketcan"
channel = "can0"
dbc_file = "{DBC}"
signals = [
    {{ name = "GEAR" }},
    {{ name = "DOOR_OPEN_FR", alias = "door_fr" }},
    {{ name = "ENGINE_RPM", deadband = 50 }},
]

[obd]
port = "/dev/rfcomm0"
pids = [{{ name = "RPM", interval_s = 1.0 }}, {{ name = "COOLANT_TEMP", interval_s = 30 }}]
"""
    )
    s = load_settings(VehicleSettings, path)
    assert s.can is not None and s.can.interface == "socketcan"
    assert [x.output_name for x in s.can.signals] == ["GEAR", "door_fr", "ENGINE_RPM"]
    assert s.obd is not None and s.obd.pids[1] == PidSpec(name="COOLANT_TEMP", interval_s=30)
    sources = build_signal_sources(s)
    assert isinstance(sources["can"], CanSource) and isinstance(sources["obd"], ObdSource)
    assert build_signal_sources(VehicleSettings(device_id="v")) == {}, "both stay optional"


def test_the_shipped_van_config_keeps_can_and_obd_off_and_its_example_loads(
    tmp_path: Path,
) -> None:
    shipped = ROOT / "firmware_configs/van/van.toml"
    s = load_settings(VehicleSettings, shipped)
    assert s.can is None and s.obd is None
    # Uncommenting the example [can] and [obd] sections gives a valid config.
    text = shipped.read_text()
    example = text[text.index("# [can]") :].splitlines()
    uncommented = tmp_path / "van.toml"
    uncommented.write_text(text + "\n".join(line.removeprefix("# ") for line in example) + "\n")
    fitted = load_settings(VehicleSettings, uncommented)
    assert fitted.can is not None and fitted.can.channel == "can0"
    assert fitted.obd is not None and fitted.obd.pids[0].name == "RPM"


def test_loading_the_van_settings_does_not_load_python_obd() -> None:
    code = "import sys, edge.config; print(sorted({'obd', 'pint'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loading_the_van_settings_does_not_load_python_can() -> None:
    code = "import sys, edge.config; print(sorted({'can', 'cantools'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_virtual_bus_config_plays_a_simulated_drive_by_itself(tmp_path: Path) -> None:
    settings = _settings(tmp_path, can=_can_settings())
    (source,) = build_signal_sources(settings).values()
    got: list[SignalUpdate] = []

    async def consume() -> None:
        async for update in source.updates():
            got.append(update)

    with simulated_bus(settings):
        task = asyncio.create_task(consume())
        try:
            await until(lambda: {"GEAR", "door_fr"} <= {u.name for u in got}, what="signals")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert abs(got[0].t - time.time()) < 30, "the drive is stamped with the wall clock"


def test_a_virtual_bus_needs_a_dbc_with_the_simulated_messages(tmp_path: Path) -> None:
    dbc = tmp_path / "tiny.dbc"
    dbc.write_text(
        'VERSION ""\n\nBS_:\n\nBU_: ECU\n\n'
        "BO_ 100 GEAR_PACKET: 8 ECU\n"
        ' SG_ GEAR : 0|8@1+ (1,0) [0|255] "" Vector__XXX\n'
    )
    settings = _settings(tmp_path, can=_can_settings(dbc_file=dbc, signals=[{"name": "GEAR"}]))
    with pytest.raises(CanConfigError) as info, simulated_bus(settings):
        pass
    assert any("SEATS_DOORS" in p for p in info.value.problems)
