"""Keypad ``#`` → relay energized, on the real locker agent with mock pins and no broker.

Run from the repository root: ``python -m bench.locker_latency [--entries 1000] [--grants 500]``.

The agent runs as in the field (grant store, lockout store, state and outbox on disk in a temporary
directory, all with ``synchronous=FULL``), on a :class:`~locker.hardware.MockLockerFactory` and a
:class:`~locker.keypad.SimKeypad`. No broker: the uplink keeps retrying a closed port in the
background, so every event stays in the outbox, as on a locker that is offline. Each entry types a
valid single-use code of one of ``--grants`` live grants; the latency is from the moment the keys
(code and ``#``) are queued to the timestamp the mock relay pin records for its rising edge. Then a
simulated person opens and shuts the door and a fresh grant replaces the spent one, outside the
timed window. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

from edge.settings import MqttSettings
from locker.agent import LockerAgent
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.settings import LockerSettings
from protocol.codes import derive_locker_key, hash_code
from protocol.messages import Grant

LOCKER = "BENCH1"
COMPARTMENTS = 12
KEY = derive_locker_key(b"benchmark master secret, not real", LOCKER)


def _grant(code: str, compartment: int) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        locker_id=LOCKER,
        grant_id=uuid4(),
        compartment=compartment,
        code_hash=hash_code(KEY, code),
        valid_from=now - timedelta(minutes=1),
        valid_until=now + timedelta(days=1),
    )


async def _wait(cond: Callable[[], object]) -> None:
    """Poll ``cond``; a locker that does not react within 5 s fails the benchmark."""
    async with asyncio.timeout(5):
        while not cond():  # noqa: ASYNC110 - a mock pin has no event to await
            await asyncio.sleep(0.0005)


def _energized(pin: Any) -> bool:
    return bool(pin.state)


def _released(pin: Any) -> bool:
    return not pin.state


def _idle(agent: LockerAgent, compartment: int) -> bool:
    return compartment not in agent._sessions


async def measure(state_dir: Path, *, entries: int, live: int) -> list[float]:
    factory = MockLockerFactory()
    settings = LockerSettings(
        device_id=LOCKER,
        code_key=KEY.hex(),
        compartments=COMPARTMENTS,
        state_dir=state_dir,
        mqtt=MqttSettings(port=1, reconnect_min_s=1, reconnect_max_s=5),
    )
    keypad = SimKeypad()
    latencies: list[float] = []
    with open_locker(settings, pin_factory=factory, keypad=keypad) as agent:
        codes: list[tuple[str, int]] = []
        for i in range(live):
            code, compartment = f"{10_000_000 + i:08d}", i % COMPARTMENTS + 1
            agent._grants.add(_grant(code, compartment))
            codes.append((code, compartment))
        for n in range(1, COMPARTMENTS + 1):
            factory.pin(2000 + n).drive_low()  # every door shut
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.sleep(0.05)
            for i in range(entries):
                code, compartment = codes[i % live]
                relay, door = factory.pin(1000 + compartment), factory.pin(2000 + compartment)
                t0 = time.monotonic()
                keypad.press(code + "#")
                await _wait(partial(_energized, relay))
                latencies.append((relay._last_change - t0) * 1000)  # the pin's own timestamp
                door.drive_high()
                await _wait(partial(_released, relay))
                door.drive_low()
                await _wait(partial(_idle, agent, compartment))
                fresh = f"{20_000_000 + i:08d}"
                agent._grants.add(_grant(fresh, compartment))
                codes[i % live] = (fresh, compartment)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    factory.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--grants", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="lastmile-bench-") as tmp:
        latencies = asyncio.run(measure(Path(tmp), entries=args.entries, live=args.grants))
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    p50, p99 = q[49], q[98]
    print(
        f"{len(latencies)} entries, {args.grants} live grants, {COMPARTMENTS} compartments, "
        f"mock pins, no broker; state in a temporary directory"
    )
    print(
        f"min {min(latencies):.2f} ms, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies):.2f} ms"
    )
    print(json.dumps({"p50_ms": round(p50, 3), "p99_ms": round(p99, 3)}))


if __name__ == "__main__":
    main()
