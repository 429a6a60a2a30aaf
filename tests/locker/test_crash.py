"""kill -9 in the middle of a deposit: the restarted locker loses no event, repeats none that
matter, and finishes the deposit from the door's state."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import PIPE, Process
from pathlib import Path

import pytest

from edge.settings import MqttSettings
from locker.grants import GrantStore
from protocol.codec import decode
from protocol.messages import LockerEvent
from tests.locker.story import KEY, grant, listening

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, mqtt: MqttSettings) -> Path:
    config = tmp_path / "locker.toml"
    config.write_text(
        f'device_id = "L1"\ncode_key = "{KEY.hex()}"\ncompartments = 4\nkeypad = "stdin"\n'
        f'simulate_people = true\nsizes = ["S", "M", "M", "L"]\nstate_dir = "{tmp_path}"\n'
        f'[mqtt]\nhost = "{mqtt.host}"\nport = {mqtt.port}\n'
        "reconnect_min_s = 0.05\nreconnect_max_s = 0.5\n"
    )
    return config


async def _start(config: Path) -> Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge.cli", "locker", "run", "--config", str(config),
        cwd=ROOT, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE,
    )  # fmt: skip


@pytest.mark.slow
def test_kill_9_mid_deposit_loses_nothing(tmp_path, mqtt_settings: MqttSettings) -> None:
    courier = grant("55501234", compartment=4, kind="courier")
    with GrantStore(tmp_path / "L1-grants.db", locker_key=KEY) as store:
        store.add(courier)
    config = _config(tmp_path, mqtt_settings)

    def by_seq(payloads: list[bytes]) -> dict[int, LockerEvent]:
        events: dict[int, LockerEvent] = {}
        for p in payloads:
            e = decode(p, LockerEvent)
            assert events.setdefault(e.seq, e).id == e.id, f"seq {e.seq} reused"
        return events

    async def story() -> dict[int, LockerEvent]:
        async with listening(mqtt_settings) as hub:
            first = await _start(config)
            try:
                assert first.stdin is not None
                first.stdin.write(b"55501234\n")
                await first.stdin.drain()
                async with asyncio.timeout(20):
                    while "door_opened" not in {e.kind for e in by_seq(hub.payloads).values()}:
                        await asyncio.sleep(0.01)
                first.send_signal(signal.SIGKILL)  # the courier is at the open door
                await first.wait()
            finally:
                if first.returncode is None:
                    first.kill()
                    await first.wait()
            assert first.returncode == -signal.SIGKILL

            second = await _start(config)
            try:
                async with asyncio.timeout(20):
                    while "deposited" not in {e.kind for e in by_seq(hub.payloads).values()}:
                        await asyncio.sleep(0.01)
                second.send_signal(signal.SIGINT)
                async with asyncio.timeout(15):
                    _, stderr = await second.communicate()
                assert second.returncode == 0, stderr.decode()
            finally:
                if second.returncode is None:
                    second.kill()
                    await second.wait()
            return by_seq(hub.payloads)

    events = asyncio.run(story())
    seqs = sorted(events)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"a gap in {seqs}"
    assert [(events[s].kind, events[s].compartment) for s in seqs] == [
        ("code_accepted", 4),
        ("unlocked", 4),
        ("door_opened", 4),
        ("power_restored", None),
        ("door_closed", 4),
        ("deposited", 4),
    ]
    deposited = events[seqs[-1]]
    assert (deposited.size, deposited.grant_id) == ("L", courier.grant_id)
    assert not (tmp_path / "L1.running").exists()  # the second run stopped cleanly
