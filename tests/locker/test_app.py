"""The whole locker as the demo and the field run it: composition root, CLI, simulated people."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from edge.settings import MqttSettings
from locker.app import run_locker
from locker.grants import GrantStore
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from protocol.codec import decode
from protocol.messages import DeviceStatus
from protocol.topics import Channel, locker_topic
from tests.locker.story import KEY, grant, listening, relay_history, settings_for, until

ROOT = Path(__file__).resolve().parents[2]
DOOR_VISIT = ["code_accepted", "unlocked", "door_opened", "door_closed", "picked_up"]


def _seed_grant(state_dir: Path, code: str, compartment: int) -> None:
    """As if the hub's grant had arrived before the last shutdown."""
    with GrantStore(state_dir / "L1-grants.db", locker_key=KEY) as store:
        store.add(grant(code, compartment=compartment))


@pytest.mark.slow
def test_simulated_people_collect_a_parcel(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    _seed_grant(tmp_path, "48151623", compartment=2)
    settings = settings_for(tmp_path, mqtt_settings, simulate_people=True)

    async def story() -> list[str]:
        keypad = SimKeypad()
        async with listening(mqtt_settings) as hub:
            locker = asyncio.create_task(run_locker(settings, pin_factory=factory, keypad=keypad))
            try:
                keypad.press("48151623#")
                events = await hub.wait_for(5, timeout=15)
            finally:
                locker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await locker
        assert all(e.compartment == 2 for e in events)
        return [e.kind for e in events]

    assert asyncio.run(story()) == DOOR_VISIT
    assert relay_history(factory, 2) == [False, True, False]
    assert all(relay_history(factory, n) == [False] for n in (1, 3, 4))


@pytest.mark.slow
def test_the_command_runs_a_terminal_locker_and_stops_cleanly_on_ctrl_c(
    tmp_path, mqtt_settings: MqttSettings
) -> None:
    _seed_grant(tmp_path, "27182818", compartment=1)
    config = tmp_path / "locker.toml"
    config.write_text(
        f'device_id = "L1"\ncode_key = "{KEY.hex()}"\ncompartments = 4\nkeypad = "stdin"\n'
        f'simulate_people = true\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\nhost = "{mqtt_settings.host}"\nport = {mqtt_settings.port}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}

    async def story() -> tuple[int, str, list[DeviceStatus]]:
        status = locker_topic("L1", Channel.STATUS)
        async with listening(mqtt_settings) as hub, listening(mqtt_settings, status) as presence:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "edge.cli", "locker", "run", "--config", str(config),
                cwd=ROOT, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE,
            )  # fmt: skip
            try:
                assert proc.stdin is not None
                proc.stdin.write(b"27182818\n")  # typed at the terminal, Enter implies '#'
                await proc.stdin.drain()
                events = await hub.wait_for(5, timeout=20)
                assert [e.kind for e in events] == DOOR_VISIT
                proc.send_signal(signal.SIGINT)
                async with asyncio.timeout(15):
                    _, stderr = await proc.communicate()
                await until(lambda: len(presence.payloads) >= 2, what="offline status")
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode is not None
            return (
                proc.returncode,
                stderr.decode(),
                [decode(p, DeviceStatus) for p in presence.payloads],
            )

    code, stderr, presence = asyncio.run(story())
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert [(s.kind, s.compartments, s.online) for s in (presence[0], presence[-1])] == [
        ("locker", 4, True),
        ("locker", 4, False),
    ]
