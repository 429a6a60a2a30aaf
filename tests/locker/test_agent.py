"""The locker agent through a real Mosquitto: the hub sends a grant, a person types its code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gpiozero import PinSetInput

from edge.settings import MqttSettings
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from tests.locker.story import (
    grant,
    listening,
    publish,
    relay_history,
    running,
    settings_for,
    shut_doors,
    until,
)


def test_a_code_opens_exactly_its_compartment_once(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    async def story() -> None:
        keypad = SimKeypad()
        g = grant("48151623", compartment=3)
        with open_locker(
            settings_for(tmp_path, mqtt_settings), pin_factory=factory, keypad=keypad
        ) as agent:
            shut_doors(factory)
            async with listening(mqtt_settings) as hub, running(agent):
                await publish(mqtt_settings, g)
                await until(lambda: agent.stats.grants_stored == 1, what="grant stored")

                keypad.press("48151623#")
                await until(lambda: factory.pin(1003).state, what="relay 3 energized")
                factory.pin(2003).drive_high()  # the person pulls the door open
                await until(lambda: not factory.pin(1003).state, what="relay 3 released")
                factory.pin(2003).drive_low()  # ... takes the parcel and shuts it

                events = await hub.wait_for(5)
                assert [(e.kind, e.compartment) for e in events] == [
                    ("code_accepted", 3),
                    ("unlocked", 3),
                    ("door_opened", 3),
                    ("door_closed", 3),
                    ("picked_up", 3),  # the proof of delivery
                ]
                assert events[0].grant_id == g.grant_id
                seqs = [e.seq for e in events]
                assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

                keypad.press("48151623#")  # the same code again
                keypad.press("11112222#")  # a code nobody was given
                events = await hub.wait_for(7)
                assert [(e.kind, e.reason, e.compartment) for e in events[5:]] == [
                    ("code_rejected", "used", None),
                    ("code_rejected", "unknown_or_expired", None),
                ]
                assert [e.seq for e in events] == sorted(e.seq for e in events)

        assert relay_history(factory, 3) == [False, True, False]
        for other in (1, 2, 4):
            assert relay_history(factory, other) == [False], f"relay {other} moved"

    asyncio.run(story())


def test_an_unopened_door_locks_again_after_the_pulse(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    async def story() -> None:
        keypad = SimKeypad()
        settings = settings_for(tmp_path, mqtt_settings, unlock_pulse_s=0.2)
        with open_locker(settings, pin_factory=factory, keypad=keypad) as agent:
            shut_doors(factory)
            async with running(agent):
                await publish(mqtt_settings, grant("2468", compartment=2))
                await until(lambda: agent.stats.grants_stored == 1)
                keypad.press("2468#")
                await until(lambda: relay_history(factory, 2) == [False, True, False])

    asyncio.run(story())


def test_expired_and_future_grants_are_refused(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    now = datetime.now(UTC)

    async def story() -> None:
        keypad = SimKeypad()
        with open_locker(
            settings_for(tmp_path, mqtt_settings), pin_factory=factory, keypad=keypad
        ) as agent:
            shut_doors(factory)
            async with listening(mqtt_settings) as hub, running(agent):
                expired = grant(
                    "1111", valid_from=now - timedelta(days=2), valid_until=now - timedelta(days=1)
                )
                future = grant(
                    "2222", valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=2)
                )
                await publish(mqtt_settings, expired)
                await publish(mqtt_settings, future)
                await until(lambda: agent.stats.grants_stored == 2)
                keypad.press("1111#2222#")
                events = await hub.wait_for(2)
                assert [(e.kind, e.reason) for e in events] == [
                    ("code_rejected", "unknown_or_expired"),
                    ("code_rejected", "unknown_or_expired"),
                ]
        for n in range(1, 5):
            assert relay_history(factory, n) == [False]

    asyncio.run(story())


def test_garbage_on_the_grants_topic_is_counted_and_the_locker_keeps_working(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    async def story() -> None:
        keypad = SimKeypad()
        with open_locker(
            settings_for(tmp_path, mqtt_settings), pin_factory=factory, keypad=keypad
        ) as agent:
            shut_doors(factory)
            async with running(agent):
                for junk in (b"", b"\xff\xfe\x00", b"[1, 2]", b'{"v": 99}', b'{"v": 1}'):
                    await publish(mqtt_settings, junk)
                await publish(mqtt_settings, grant("5555", locker_id="L2"))
                await publish(mqtt_settings, grant("6666", compartment=9))  # we have 4
                await publish(mqtt_settings, grant("7777", compartment=1))
                await until(lambda: agent.stats.grants_stored == 1, what="good grant stored")
                assert agent.stats.rejected_messages == {
                    "bad_payload": 5,
                    "wrong_locker": 1,
                    "no_such_compartment": 1,
                }
                keypad.press("7777#")
                await until(lambda: factory.pin(1001).state, what="relay 1 energized")

    asyncio.run(story())


def test_grants_survive_a_restart(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    settings = settings_for(tmp_path, mqtt_settings)

    async def before_restart() -> None:
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad()) as agent:
            async with running(agent):
                await publish(mqtt_settings, grant("31415926", compartment=4))
                await until(lambda: agent.stats.grants_stored == 1)

    async def after_restart() -> None:
        keypad = SimKeypad()
        with open_locker(settings, pin_factory=factory, keypad=keypad) as agent:
            shut_doors(factory)
            async with running(agent):
                keypad.press("31415926#")
                await until(lambda: factory.pin(1004).state, what="relay 4 energized")
                assert agent.stats.codes_accepted == 1

    asyncio.run(before_restart())
    factory.reset()  # a fresh boot: the board forgets, the disk does not
    asyncio.run(after_restart())


def test_a_stuck_relay_refuses_the_code_without_spending_it(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings, monkeypatch
) -> None:
    async def story() -> None:
        keypad = SimKeypad()
        g = grant("1357", compartment=2)
        with open_locker(
            settings_for(tmp_path, mqtt_settings), pin_factory=factory, keypad=keypad
        ) as agent:
            shut_doors(factory)
            async with listening(mqtt_settings) as hub, running(agent):
                await publish(mqtt_settings, g)
                await until(lambda: agent.stats.grants_stored == 1)

                def burnt_out(value: bool) -> None:
                    raise PinSetInput("relay driver not responding")

                with monkeypatch.context() as m:
                    m.setattr(factory.pin(1002), "_set_state", burnt_out)
                    keypad.press("1357#")
                    (event,) = await hub.wait_for(1)
                assert (event.kind, event.reason, event.grant_id) == (
                    "code_rejected",
                    "hardware_fault",
                    g.grant_id,
                )
                keypad.press("1357#")  # repaired: the same code still works
                events = await hub.wait_for(3)
                assert [e.kind for e in events[1:]] == ["code_accepted", "unlocked"]

    asyncio.run(story())
