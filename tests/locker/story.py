"""Props for locker stories: a key, grants, a running agent, and an MQTT listener and publisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import aiomqtt

from edge.outbox import Outbox
from edge.settings import MqttSettings
from locker.agent import LockerAgent
from locker.hardware import MockLockerFactory
from locker.settings import LockerSettings
from protocol.codec import decode, encode
from protocol.codes import derive_courier_key, derive_locker_key, hash_code
from protocol.commands import Command, derive_command_key, sign_command
from protocol.messages import CommandAck, Grant, GrantKind, LockerEvent
from protocol.topics import Channel, locker_topic

LOCKER = "L1"
MASTER = b"master secret of the test hub!!!"
KEY = derive_locker_key(MASTER, LOCKER)
COURIER_KEY = derive_courier_key(MASTER, LOCKER)
COMMAND_KEY = derive_command_key(MASTER, LOCKER)
GRANTS = locker_topic(LOCKER, Channel.GRANTS)
EVENTS = locker_topic(LOCKER, Channel.EVENTS)
CMD = locker_topic(LOCKER, Channel.CMD)
ACKS = locker_topic(LOCKER, Channel.CMD_ACK)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    """Wall-clock time that moves only when a test says so."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def command_for(
    *,
    compartment: int = 1,
    device_id: str = LOCKER,
    key: bytes = COMMAND_KEY,
    issued_at: datetime | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> Command:
    return sign_command(
        key=key,
        device_id=device_id,
        name="open_compartment",
        args={"compartment": compartment},
        issued_at=issued_at or datetime.now(UTC),
        ttl=ttl,
    )


def settings_for(
    state_dir: Path, mqtt: MqttSettings | None = None, **extra: object
) -> LockerSettings:
    return LockerSettings(
        device_id=LOCKER,
        code_key=KEY.hex(),
        state_dir=state_dir,
        mqtt=mqtt or MqttSettings(port=1),
        compartments=4,
        **extra,
    )


def grant(
    code: str,
    *,
    compartment: int = 3,
    locker_id: str = LOCKER,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    single_use: bool = True,
    kind: GrantKind = "pickup",
    now: datetime | None = None,
) -> Grant:
    now = now or datetime.now(UTC)
    return Grant(
        kind=kind,
        locker_id=locker_id,
        grant_id=uuid4(),
        compartment=compartment,
        code_hash=hash_code(KEY, code),
        valid_from=valid_from or now - timedelta(minutes=1),
        valid_until=valid_until or now + timedelta(hours=1),
        single_use=single_use,
    )


def relay_history(factory: MockLockerFactory, compartment: int) -> list[bool]:
    return [s.state for s in factory.pin(1000 + compartment).states]


def shut_doors(factory: MockLockerFactory, compartments: int = 4) -> None:
    for n in range(1, compartments + 1):
        factory.pin(2000 + n).drive_low()


async def until(cond: Callable[[], bool], *, timeout: float = 10.0, what: str = "") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what or cond}") from None


def outbox_rows(state_dir: Path, topic: str = EVENTS) -> list[bytes]:
    """What the locker has queued for the hub on ``topic`` (no broker: nothing is drained)."""
    outbox = Outbox(state_dir / f"{LOCKER}-outbox.db")
    try:
        return [e.payload for e in outbox.peek(100_000) if e.topic == topic]
    finally:
        outbox.close()


def queued_events(state_dir: Path) -> list[LockerEvent]:
    return [decode(p, LockerEvent) for p in outbox_rows(state_dir)]


def queued_acks(state_dir: Path) -> list[CommandAck]:
    return [decode(p, CommandAck) for p in outbox_rows(state_dir, ACKS)]


def kinds(events: list[LockerEvent]) -> list[tuple[str, int | None]]:
    return [(e.kind, e.compartment) for e in events]


@contextlib.asynccontextmanager
async def offline(agent: LockerAgent) -> AsyncIterator[asyncio.Task[None]]:
    """Run the agent with no broker (its uplink keeps retrying); cancel it on exit."""
    task = asyncio.create_task(agent.run(), name="agent-under-test")
    try:
        await asyncio.sleep(0)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def running(agent: LockerAgent) -> AsyncIterator[asyncio.Task[None]]:
    """Run the agent; wait until it is subscribed to its grants; cancel it on exit."""
    task = asyncio.create_task(agent.run(), name="agent-under-test")
    try:
        async with asyncio.timeout(10):
            await agent.uplink.wait_connected()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Listener:
    """A hub stand-in: records what the locker publishes on one topic, as it arrives."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    @property
    def events(self) -> list[LockerEvent]:
        return [decode(p, LockerEvent) for p in self.payloads]

    async def wait_for(self, n: int, *, timeout: float = 10.0) -> list[LockerEvent]:
        """Wait for ``n`` messages; return them as locker events."""
        await until(lambda: len(self.payloads) >= n, timeout=timeout, what=f"{n} messages")
        return self.events


@contextlib.asynccontextmanager
async def listening(mqtt: MqttSettings, topic: str = EVENTS) -> AsyncIterator[Listener]:
    listener = Listener()
    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=f"hub-{uuid4().hex[:8]}") as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                listener.payloads.append(message.payload)

        task = asyncio.create_task(collect())
        try:
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def publish(mqtt: MqttSettings, payload: bytes | Grant, *, topic: str = GRANTS) -> None:
    """Publish as the hub does: QoS 1, not retained."""
    data = encode(payload) if isinstance(payload, Grant) else payload
    async with aiomqtt.Client(mqtt.host, mqtt.port, identifier=f"pub-{uuid4().hex[:8]}") as client:
        await client.publish(topic, data, qos=1, retain=False)
