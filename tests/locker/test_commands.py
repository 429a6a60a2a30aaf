"""Remote commands from the hub: a valid one opens exactly its compartment; forged, expired,
replayed and misaddressed ones are refused, acknowledged with the reason and reported."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from edge.settings import MqttSettings
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from protocol.codec import encode
from protocol.codes import derive_locker_key
from protocol.commands import derive_command_key
from tests.locker.story import (
    ACKS,
    CMD,
    COMMAND_KEY,
    MASTER,
    T0,
    FakeClock,
    command_for,
    listening,
    publish,
    queued_acks,
    queued_events,
    relay_history,
    running,
    settings_for,
    shut_doors,
    until,
)


def test_each_bad_command_is_refused_with_its_reason(tmp_path, factory: MockLockerFactory) -> None:
    clock = FakeClock()
    valid = command_for(compartment=2, issued_at=T0)
    bad = {
        "bad_signature": command_for(
            compartment=3, issued_at=T0, key=derive_locker_key(MASTER, "L1")
        ),
        "expired": command_for(compartment=3, issued_at=T0 - timedelta(minutes=10)),
        "not_yet_valid": command_for(compartment=3, issued_at=T0 + timedelta(minutes=10)),
        "wrong_device": command_for(
            compartment=3, issued_at=T0, device_id="L2", key=derive_command_key(MASTER, "L2")
        ),
        "bad_args": command_for(compartment=9, issued_at=T0),
    }

    async def story() -> None:
        settings = settings_for(tmp_path, command_key=COMMAND_KEY.hex())
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad(), clock=clock) as a:
            shut_doors(factory)
            async with asyncio.timeout(10):
                for cmd in bad.values():
                    await a.handle_message(CMD, encode(cmd))
                await a.handle_message(CMD, encode(valid))
                await a.handle_message(CMD, encode(valid))  # replayed
                assert factory.pin(1002).state
            assert a.stats.commands_executed == 1

    asyncio.run(story())
    acks = queued_acks(tmp_path)
    expected = [(c.command_id, False, r) for r, c in bad.items()] + [
        (valid.command_id, True, ""),
        (valid.command_id, False, "replayed"),
    ]
    assert [(a.command_id, a.ok, a.reason) for a in acks] == expected
    assert all(a.device_id == "L1" for a in acks)
    refused = [
        (e.reason, e.command_id) for e in queued_events(tmp_path) if e.kind == "command_refused"
    ]
    assert refused == [(r, c.command_id) for r, c in bad.items()] + [("replayed", valid.command_id)]
    assert relay_history(factory, 2) == [False, True]
    for other in (1, 3, 4):
        assert relay_history(factory, other) == [False], f"relay {other} moved"


def test_a_locker_without_a_command_key_refuses_everything(
    tmp_path, factory: MockLockerFactory
) -> None:
    async def story() -> None:
        with open_locker(settings_for(tmp_path), pin_factory=factory, keypad=SimKeypad()) as a:
            await a.handle_message(CMD, encode(command_for(compartment=1)))

    asyncio.run(story())
    assert [(a.ok, a.reason) for a in queued_acks(tmp_path)] == [(False, "no_command_key")]
    assert relay_history(factory, 1) == [False]


def test_a_replay_after_a_restart_is_still_refused(tmp_path, factory: MockLockerFactory) -> None:
    settings = settings_for(tmp_path, command_key=COMMAND_KEY.hex())
    cmd = command_for(compartment=1)

    async def deliver() -> None:
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad()) as a:
            await a.handle_message(CMD, encode(cmd))

    asyncio.run(deliver())
    factory.reset()
    asyncio.run(deliver())
    assert [(a.ok, a.reason) for a in queued_acks(tmp_path)] == [(True, ""), (False, "replayed")]


def test_a_command_through_the_broker_opens_its_door_and_is_acked(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    from protocol.codec import decode
    from protocol.messages import CommandAck

    async def story() -> None:
        settings = settings_for(tmp_path, mqtt_settings, command_key=COMMAND_KEY.hex())
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad()) as agent:
            shut_doors(factory)
            async with listening(mqtt_settings, ACKS) as hub, running(agent):
                cmd = command_for(compartment=4)
                await publish(mqtt_settings, encode(cmd), topic=CMD)
                await until(lambda: factory.pin(1004).state, what="relay 4 energized")
                await until(lambda: len(hub.payloads) == 1, what="ack")
                ack = decode(hub.payloads[0], CommandAck)
                assert (ack.command_id, ack.ok) == (cmd.command_id, True)

    asyncio.run(story())
