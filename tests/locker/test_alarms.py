"""Alarms a locker raises on its own: a door left open, a door forced, an unlock nobody used, and a
power cut it lived through."""

from __future__ import annotations

import asyncio

from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from tests.locker.story import (
    T0,
    FakeClock,
    grant,
    offline,
    queued_events,
    relay_history,
    settings_for,
    shut_doors,
    until,
)


def _kinds(tmp_path) -> list[tuple[str, int | None]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.compartment) for e in queued_events(tmp_path)]


def test_a_door_left_open_is_reported_once(tmp_path, factory: MockLockerFactory) -> None:
    async def story() -> None:
        keypad = SimKeypad()
        settings = settings_for(tmp_path, door_left_open_s=0.2)
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=FakeClock()) as a:
            a._grants.add(grant("12345678", compartment=1, now=T0), now=T0)
            shut_doors(factory)
            async with offline(a):
                keypad.press("12345678#")
                await until(lambda: factory.pin(1001).state)
                factory.pin(2001).drive_high()  # opened, and nobody shuts it
                await until(lambda: ("door_left_open", 1) in _kinds(tmp_path))
                await asyncio.sleep(0.5)  # several periods: still one alarm
                factory.pin(2001).drive_low()
                await until(lambda: ("picked_up", 1) in _kinds(tmp_path))

    asyncio.run(story())
    assert _kinds(tmp_path) == [
        ("code_accepted", 1),
        ("unlocked", 1),
        ("door_opened", 1),
        ("door_left_open", 1),
        ("door_closed", 1),
        ("picked_up", 1),
    ]


def test_a_door_opened_without_an_unlock_is_forced(tmp_path, factory: MockLockerFactory) -> None:
    async def story() -> None:
        with open_locker(settings_for(tmp_path), pin_factory=factory, keypad=SimKeypad()) as a:
            shut_doors(factory)
            async with offline(a):
                factory.pin(2004).drive_high()  # a crowbar
                await until(lambda: ("door_forced", 4) in _kinds(tmp_path))
                factory.pin(2004).drive_low()
                await until(lambda: ("door_closed", 4) in _kinds(tmp_path))

    asyncio.run(story())
    assert _kinds(tmp_path) == [("door_opened", 4), ("door_forced", 4), ("door_closed", 4)]
    assert relay_history(factory, 4) == [False]


def test_an_unlock_nobody_used_is_reported_and_a_later_opening_is_forced(
    tmp_path, factory: MockLockerFactory
) -> None:
    g = grant("87654321", compartment=2, now=T0)

    async def story() -> None:
        keypad = SimKeypad()
        settings = settings_for(tmp_path, unlock_pulse_s=0.2)
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=FakeClock()) as a:
            a._grants.add(g, now=T0)
            shut_doors(factory)
            async with offline(a):
                keypad.press("87654321#")
                await until(lambda: ("unlock_not_opened", 2) in _kinds(tmp_path))
                assert relay_history(factory, 2) == [False, True, False]
                factory.pin(2002).drive_high()  # the jammed bolt gives way later
                await until(lambda: ("door_forced", 2) in _kinds(tmp_path))

    asyncio.run(story())
    events = queued_events(tmp_path)
    assert [(e.kind, e.compartment) for e in events] == [
        ("code_accepted", 2),
        ("unlocked", 2),
        ("unlock_not_opened", 2),
        ("door_opened", 2),
        ("door_forced", 2),
    ]
    assert events[2].grant_id == g.grant_id


def test_power_restored_only_after_an_unclean_stop(tmp_path, factory: MockLockerFactory) -> None:
    settings = settings_for(tmp_path)

    async def boot() -> None:
        with open_locker(settings, pin_factory=factory, keypad=SimKeypad()) as a:
            shut_doors(factory)
            async with offline(a):
                await asyncio.sleep(0.05)

    asyncio.run(boot())  # first boot, stopped cleanly
    asyncio.run(boot())  # a clean restart
    assert _kinds(tmp_path) == []
    (tmp_path / "L1.running").touch()  # what a power cut leaves behind
    asyncio.run(boot())
    assert _kinds(tmp_path) == [("power_restored", None)]
    assert not (tmp_path / "L1.running").exists()
