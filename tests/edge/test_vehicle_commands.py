"""Remote commands on the van: each command does what it says, every refusal is acked with its
reason and counted, and no payload on ``fleet/{id}/cmd`` can crash the agent."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent import EVENT_PRIORITY, VehicleAgent
from edge.config import BatchSettings, VehicleSettings
from edge.nonces import DurableNonces
from edge.obd import ObdSettings, ObdSource, PidSpec
from edge.outbox import Outbox
from edge.reporting import Reason
from edge.settings import MqttSettings, load_settings
from protocol.codec import decode, encode
from protocol.commands import Command, derive_command_key, sign_command
from protocol.messages import CommandAck, Position, TelemetryBatch
from protocol.topics import Channel, DeviceKind, vehicle_topic
from tests.edge import test_obd
from tests.edge.gnss_rigs import until
from tests.edge.test_vehicle_agent import ScriptedGnss
from tests.edge.test_vehicle_agent import _running as running
from tests.locker.test_handler import json_values

VAN = "van-c"
MASTER = b"commands-test-master-secret-4f1e9a"
KEY = derive_command_key(MASTER, VAN, kind=DeviceKind.VEHICLE)
CMD = vehicle_topic(VAN, Channel.CMD)
ACK = vehicle_topic(VAN, Channel.CMD_ACK)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

elm = test_obd.elm  # ELM327-emulator with P0143 and P0196 stored
NOWHERE = MqttSettings(port=1, reconnect_min_s=0.05, reconnect_max_s=0.1)


def command(name: str, *, key: bytes = KEY, device_id: str = VAN, **kw: Any) -> Command:
    issued = kw.pop("issued_at", datetime.now(UTC))
    return sign_command(key=key, device_id=device_id, name=name, issued_at=issued, **kw)


def van_settings(tmp_path: Path, **kw: Any) -> VehicleSettings:
    base: dict[str, Any] = {
        "device_id": VAN,
        "state_dir": tmp_path,
        "mqtt": NOWHERE,
        "batch": BatchSettings(max_points=60, max_age_s=600),
        "command_key": KEY.hex(),
    }
    return VehicleSettings(**{**base, **kw})


def acks(outbox: Outbox) -> list[CommandAck]:
    entries = [e for e in outbox.peek(10_000) if e.topic == ACK]
    assert all(e.priority == EVENT_PRIORITY for e in entries), "acks drain before positions"
    return [decode(e.payload, CommandAck) for e in entries]


def batches(outbox: Outbox) -> list[TelemetryBatch]:
    return [decode(e.payload, TelemetryBatch) for e in outbox.peek(10_000) if e.topic != ACK]


def parked(s: int) -> Position:
    return Position(t=T0 + timedelta(seconds=s), lat=52.37, lon=4.89, speed_mps=0.0)


async def send(agent: VehicleAgent, cmd: Command | bytes) -> CommandAck:
    return await agent.commands.handle(cmd if isinstance(cmd, bytes) else encode(cmd))


async def test_every_refusal_is_acked_with_its_reason_and_counted(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    agent = VehicleAgent(settings=van_settings(tmp_path), gnss=ScriptedGnss(), outbox=outbox)
    ok = command("send_position")
    garbled = json.loads(encode(ok))
    garbled["args"] = "not a mapping"
    now = datetime.now(UTC)
    cases: list[tuple[Command | bytes, str]] = [
        (b"\x00\xffnot json", "malformed"),
        (json.dumps(garbled).encode(), "malformed"),
        (command("send_position", device_id="van-other"), "wrong_device"),
        (command("send_position", key=b"k" * 32), "bad_signature"),
        (command("send_position", issued_at=now - timedelta(hours=2)), "expired"),
        (command("send_position", issued_at=now + timedelta(minutes=10)), "not_yet_valid"),
        (command("send_position", ttl=timedelta(hours=3)), "not_yet_valid"),
        (command("open_compartment", args={"compartment": 1}), "unknown_command"),
        (command("set_reporting_profile", args={"profile": "flying"}), "bad_args"),
        (
            command("set_reporting_profile", args={"profile": "moving", "interval_s": -1}),
            "bad_args",
        ),
        (command("set_reporting_profile", args={"profile": "moving", "colour": 1}), "bad_args"),
        (command("read_dtcs", args={"now": True}), "bad_args"),
        (command("send_position"), "no_fix"),  # no fix yet
        (command("read_dtcs"), "no_obd"),  # this van has no OBD-II source
        (command("reload_settings"), "no_config_file"),
    ]
    answers = [await send(agent, c) for c, _ in cases]
    assert [(a.ok, a.reason) for a in answers] == [(False, r) for _, r in cases]
    assert all(a.detail for a in answers), "each refusal says why"
    assert answers[0].command_id.int == 0, "no id could be read from garbage"
    assert answers[1].command_id == ok.command_id, "the id of a malformed command is kept"
    assert answers[7].name == "open_compartment"
    replayed = command("send_position")
    await send(agent, replayed)
    again = await send(agent, replayed)
    assert again.reason == "replayed"
    expected = {r: sum(1 for _, x in cases if x == r) for _, r in cases}
    expected["no_fix"] += 1
    expected["replayed"] = 1
    assert dict(agent.commands.stats.refused) == expected
    assert [a.command_id for a in acks(outbox)] == [
        *(a.command_id for a in answers),
        replayed.command_id,
        replayed.command_id,
    ]
    assert agent.health()["commands_refused"] == str(len(cases) + 2)
    outbox.close()


async def test_without_a_command_key_every_command_is_refused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    settings = van_settings(tmp_path, command_key=None)
    agent = VehicleAgent(settings=settings, gnss=ScriptedGnss(), outbox=outbox)
    answer = await send(agent, command("send_position"))
    assert (answer.ok, answer.reason) == (False, "no_command_key")
    outbox.close()


async def test_a_profile_change_changes_what_is_reported_from_the_next_fix(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    agent = VehicleAgent(settings=van_settings(tmp_path), gnss=gnss, outbox=outbox)
    async with running(agent):
        for s in range(0, 30):
            gnss.queue.put_nowait(parked(s))
        await until(lambda: agent.reporter.offered == 30, what="parked fixes offered")
        assert agent.points_queued == 0 and agent.reporter.reasons[Reason.FIRST] == 1
        answer = await send(
            agent,
            command("set_reporting_profile", args={"profile": "stopped", "interval_s": 10}),
        )
        assert answer.ok, answer
        assert answer.result == {
            "profile": "stopped",
            "interval_s": 10.0,
            "distance_m": False,
            "heading_deg": False,
            "speed_change_mps": False,
        }
        for s in range(30, 60):
            gnss.queue.put_nowait(parked(s))
        await until(lambda: agent.reporter.offered == 60, what="more parked fixes")
        # Reported: the first fix, then every 10 s instead of every 300 s.
        assert agent.reporter.reasons[Reason.INTERVAL] == 3  # at 30 (30 s after 0), 40, 50
        assert agent.reporter.settings.moving == van_settings(tmp_path).reporting.moving
        off = await send(
            agent,
            command("set_reporting_profile", args={"profile": "moving", "heading_deg": False}),
        )
        assert off.ok and off.result["heading_deg"] is False
        assert agent.reporter.settings.moving.heading_deg is None
    assert agent.commands.stats.executed["set_reporting_profile"] == 2
    outbox.close()


async def test_send_position_queues_the_latest_fix_at_once_and_only_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    gnss = ScriptedGnss()
    agent = VehicleAgent(settings=van_settings(tmp_path), gnss=gnss, outbox=outbox)
    async with running(agent):
        for s in range(0, 20):  # parked: only the first fix is reported, and the batch stays open
            gnss.queue.put_nowait(parked(s))
        await until(lambda: agent.reporter.offered == 20, what="fixes offered")
        assert batches(outbox) == []
        answer = await send(agent, command("send_position"))
        assert answer.ok, answer
        assert answer.result["t"] == parked(19).t.isoformat()
        assert (answer.result["lat"], answer.result["lon"]) == (52.37, 4.89)
        assert [[p.t for p in b.points] for b in batches(outbox)] == [[parked(0).t, parked(19).t]]
        again = await send(agent, command("send_position"))  # no new fix since: nothing new
        assert again.ok and again.result["t"] == parked(19).t.isoformat()
        assert sum(len(b.points) for b in batches(outbox)) == 2
    outbox.close()


def test_nonces_outlive_a_restart_until_their_command_expires(tmp_path: Path) -> None:
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    store = DurableNonces(tmp_path / "n.db", clock=lambda: now[0])
    expires = now[0] + timedelta(minutes=5)
    assert store.remember("a" * 32, expires_at=expires)
    store.close()
    store = DurableNonces(tmp_path / "n.db", clock=lambda: now[0])
    assert not store.remember("a" * 32, expires_at=expires), "a replay after a restart"
    now[0] += timedelta(minutes=6)
    assert store.remember("b" * 32, expires_at=now[0] + timedelta(minutes=5))
    assert len(store) == 1, "expired nonces are pruned"
    store.close()


async def test_read_dtcs_asks_the_car_through_the_obd_source(tmp_path: Path, elm: Any) -> None:
    outbox = Outbox(tmp_path / "o.db")
    obd = ObdSource(settings=ObdSettings(port=elm.port, pids=[PidSpec(name="RPM", interval_s=0.2)]))
    agent = VehicleAgent(
        settings=van_settings(tmp_path),
        gnss=ScriptedGnss(),
        outbox=outbox,
        signal_sources={"obd": obd},
    )
    async with running(agent):
        await until(lambda: obd.health == "ok", timeout=30, what="OBD-II connected")
        answer = await send(agent, command("read_dtcs"))
    assert answer.ok, answer
    assert answer.result["count"] == 2
    assert answer.result["codes"] == ["P0143", "P0196"]
    descriptions = answer.result["descriptions"]
    assert isinstance(descriptions, list) and "O2 Sensor" in descriptions[0]
    outbox.close()


def _write_config(path: Path, tmp_path: Path, *, stopped_interval: int, gnss: str = "sim") -> None:
    path.write_text(
        f"""
device_id = "{VAN}"
state_dir = "{tmp_path}"
gnss = "{gnss}"
command_key = "{KEY.hex()}"
[mqtt]
port = 1
[reporting.stopped]
interval_s = {stopped_interval}
[outbox]
max_rows = 5000
"""
    )


async def test_reload_applies_what_can_change_live_and_names_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "van.toml"
    _write_config(config, tmp_path, stopped_interval=300)
    settings = load_settings(VehicleSettings, config)
    outbox = Outbox(tmp_path / "o.db", limits=settings.outbox)
    reload: Callable[[], VehicleSettings] = functools.partial(
        load_settings, VehicleSettings, config
    )
    agent = VehicleAgent(
        settings=settings, gnss=ScriptedGnss(), outbox=outbox, reload_settings=reload
    )
    unchanged = await send(agent, command("reload_settings"))
    assert unchanged.ok and unchanged.result == {"applied": [], "restart_needed": []}

    remote = command("set_reporting_profile", args={"profile": "stopped", "interval_s": 7})
    assert (await send(agent, remote)).ok
    assert agent.reporter.settings.stopped.interval_s == 7
    back = await send(agent, command("reload_settings"))  # the file wins again
    assert back.result == {"applied": ["reporting"], "restart_needed": []}
    assert agent.reporter.settings.stopped.interval_s == 300

    _write_config(config, tmp_path, stopped_interval=60, gnss="gpsd")
    config.write_text(config.read_text().replace("max_rows = 5000", "max_rows = 9000"))
    changed = await send(agent, command("reload_settings"))
    assert changed.ok, changed
    assert changed.result == {"applied": ["reporting", "outbox"], "restart_needed": ["gnss"]}
    assert agent.reporter.settings.stopped.interval_s == 60
    assert outbox.limits is not None and outbox.limits.max_rows == 9000

    config.write_text("device_id = 'van-c'\n[reporting.stopped]\ninterval_s = -5\n")
    bad = await send(agent, command("reload_settings"))
    assert (bad.ok, bad.reason) == (False, "config_invalid")
    assert "reporting.stopped.interval_s" in bad.detail
    assert agent.reporter.settings.stopped.interval_s == 60, "a bad file changes nothing"
    outbox.close()


COMMAND_FIELDS = json.loads(encode(command("send_position", issued_at=T0)))


def _corrupted_commands() -> st.SearchStrategy[bytes]:
    """A validly signed command with one field replaced by anything JSON can hold."""
    return st.builds(
        lambda name, value: json.dumps({**COMMAND_FIELDS, name: value}).encode(),
        st.sampled_from(sorted(COMMAND_FIELDS)),
        json_values,
    ).filter(lambda b: json.loads(b) != COMMAND_FIELDS)


def test_no_payload_on_the_command_topic_crashes_the_agent_or_goes_unanswered(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "o.db")
    agent = VehicleAgent(settings=van_settings(tmp_path), gnss=ScriptedGnss(), outbox=outbox)
    fed = 0
    with asyncio.Runner() as runner:

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            payload=st.one_of(
                st.binary(max_size=300),
                st.text(max_size=200).map(str.encode),
                json_values.map(lambda v: json.dumps(v).encode()),
                _corrupted_commands(),
            )
        )
        def feed(payload: bytes) -> None:
            nonlocal fed
            fed += 1
            runner.run(agent.handle_message(CMD, payload))  # never raises
            assert len(acks(outbox)) == fed, "every payload is answered exactly once"

        feed()
    stats = agent.commands.stats
    assert sum(stats.refused.values()) == fed and not stats.executed
    assert set(stats.refused) <= {"malformed", "bad_signature", "wrong_device", "expired"}
    outbox.close()
