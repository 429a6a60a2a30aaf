"""A parcel's life at the locker: a courier puts it in, the customer takes it out, or the courier
takes it back. Each flow ends with its proof event when the door shuts again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.state import LockerState
from protocol.courier import totp
from tests.locker.story import (
    COURIER_KEY,
    T0,
    FakeClock,
    grant,
    kinds,
    offline,
    queued_events,
    relay_history,
    settings_for,
    shut_doors,
    until,
)

SIZES = ["L", "S", "M", "S"]


def _settings(tmp_path, **extra: object):  # type: ignore[no-untyped-def]
    return settings_for(tmp_path, courier_key=COURIER_KEY.hex(), sizes=SIZES, **extra)


async def _visit(factory: MockLockerFactory, number: int) -> None:
    """Someone opens the released door, and shuts it again."""
    await until(lambda: factory.pin(1000 + number).state, what=f"relay {number} energized")
    factory.pin(2000 + number).drive_high()
    await until(lambda: not factory.pin(1000 + number).state, what=f"relay {number} released")
    factory.pin(2000 + number).drive_low()


def test_deposit_pickup_and_return_each_end_with_their_proof(
    tmp_path, factory: MockLockerFactory
) -> None:
    clock = FakeClock()
    courier = grant("10000001", compartment=3, kind="courier", now=T0)
    pickup = grant("20000002", compartment=3, kind="pickup", now=T0)
    ret = grant("30000003", compartment=1, kind="return", now=T0)
    n_events = 0

    async def story() -> None:
        nonlocal n_events
        keypad = SimKeypad()
        with open_locker(_settings(tmp_path), pin_factory=factory, keypad=keypad, clock=clock) as a:
            for g in (courier, pickup, ret):
                a._grants.add(g, now=T0)
            shut_doors(factory)
            async with offline(a):
                keypad.press("10000001#")  # the hub told the courier: compartment 3
                await _visit(factory, 3)
                await until(lambda: 3 in a._state.occupied(), what="compartment 3 occupied")
                keypad.press("20000002#")  # the customer's pickup code
                await _visit(factory, 3)
                await until(lambda: 3 not in a._state.occupied(), what="compartment 3 emptied")
                keypad.press("30000003#")  # the courier takes an expired parcel back
                await _visit(factory, 1)
                await until(lambda: len(queued_events(tmp_path)) >= 15, what="15 events")

    asyncio.run(story())
    events = queued_events(tmp_path)
    visit = ["code_accepted", "unlocked", "door_opened", "door_closed"]
    assert [e.kind for e in events] == [
        *visit, "deposited", *visit, "picked_up", *visit, "returned",
    ]  # fmt: skip
    deposited, picked_up, returned = events[4], events[9], events[14]
    assert (deposited.compartment, deposited.size, deposited.grant_id) == (
        3,
        "M",
        courier.grant_id,
    )
    assert (picked_up.compartment, picked_up.grant_id, picked_up.locker_id) == (
        3,
        pickup.grant_id,
        "L1",
    )
    assert (returned.compartment, returned.grant_id) == (1, ret.grant_id)
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert relay_history(factory, 3) == [False, True, False, True, False]
    assert relay_history(factory, 1) == [False, True, False]


def test_an_offline_courier_code_opens_the_smallest_free_compartment_once(
    tmp_path, factory: MockLockerFactory
) -> None:
    clock = FakeClock(T0 + timedelta(seconds=5))

    async def story() -> None:
        keypad = SimKeypad()
        with open_locker(_settings(tmp_path), pin_factory=factory, keypad=keypad, clock=clock) as a:
            shut_doors(factory)
            async with offline(a):
                keypad.press(totp(COURIER_KEY, clock.now) + "#")  # an S: compartment 2
                await _visit(factory, 2)
                await until(lambda: a._state.occupied() == {2})
                keypad.press(totp(COURIER_KEY, clock.now) + "#")  # the same code again
                await until(lambda: a.stats.codes_rejected == 1, what="replay refused")
                clock.advance(60)
                keypad.press(totp(COURIER_KEY, clock.now - timedelta(minutes=2)) + "#")  # skewed
                await _visit(factory, 4)  # the other S
                await until(lambda: a._state.occupied() == {2, 4})
                clock.advance(60)
                keypad.press(totp(COURIER_KEY, clock.now + timedelta(minutes=3)) + "#")  # too far
                await until(lambda: a.stats.codes_rejected == 2, what="outside the skew")
                keypad.press(totp(COURIER_KEY, clock.now) + "#")  # then M
                await _visit(factory, 3)
                await until(lambda: a._state.occupied() == {2, 3, 4})

    asyncio.run(story())
    events = queued_events(tmp_path)
    rejected = [e.reason for e in events if e.kind == "code_rejected"]
    assert rejected == ["used", "unknown_or_expired"]
    assert [(e.compartment, e.size) for e in events if e.kind == "deposited"] == [
        (2, "S"),
        (4, "S"),
        (3, "M"),
    ]
    assert relay_history(factory, 1) == [False]  # the L was never needed


def test_a_full_locker_refuses_the_courier_without_spending_the_code(
    tmp_path, factory: MockLockerFactory
) -> None:
    clock = FakeClock()
    with LockerState(tmp_path / "L1-state.db", marker=tmp_path / "L1.running") as state:
        for n in (1, 2, 3, 4):
            state.set_occupied(n, True, at=T0)

    async def story() -> None:
        keypad = SimKeypad()
        with open_locker(_settings(tmp_path), pin_factory=factory, keypad=keypad, clock=clock) as a:
            shut_doors(factory)
            async with offline(a):
                keypad.press(totp(COURIER_KEY, clock.now) + "#")
                await until(lambda: a.stats.codes_rejected == 1)
                a._state.set_occupied(3, False, at=T0)  # someone collected from 3
                keypad.press(totp(COURIER_KEY, clock.now) + "#")  # the same code now works
                await until(lambda: factory.pin(1003).state, what="relay 3 energized")

    asyncio.run(story())
    assert [e.reason for e in queued_events(tmp_path) if e.kind == "code_rejected"] == [
        "no_free_compartment"
    ]


def test_occupancy_survives_a_restart(tmp_path, factory: MockLockerFactory) -> None:
    clock = FakeClock()
    settings = _settings(tmp_path)

    async def deposit() -> None:
        keypad = SimKeypad()
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=clock) as a:
            shut_doors(factory)
            async with offline(a):
                keypad.press(totp(COURIER_KEY, clock.now) + "#")
                await _visit(factory, 2)
                await until(lambda: a._state.occupied() == {2})

    async def next_courier() -> None:
        keypad = SimKeypad()
        clock.advance(60)
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=clock) as a:
            shut_doors(factory)
            async with offline(a):
                keypad.press(totp(COURIER_KEY, clock.now) + "#")
                await until(lambda: factory.pin(1004).state, what="the next free S: 4")

    asyncio.run(deposit())
    factory.reset()
    asyncio.run(next_courier())
    assert kinds([e for e in queued_events(tmp_path) if e.kind == "deposited"]) == [
        ("deposited", 2)
    ]


def test_a_parcel_sensor_overrules_the_records(tmp_path, factory: MockLockerFactory) -> None:
    """Compartment 2 (an S) has a break-beam sensor that sees a parcel nobody recorded (a courier
    who forced the door, say): the courier code skips it for the other S."""
    pins = [
        {"relay": 1000 + n, "door": 2000 + n, **({"occupancy": 6} if n == 2 else {})}
        for n in range(1, 5)
    ]
    clock = FakeClock()

    async def story() -> None:
        keypad = SimKeypad()
        settings = _settings(tmp_path, pins=pins)
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=clock) as a:
            shut_doors(factory)
            factory.pin(6).drive_low()  # the beam is broken: something is inside
            assert a._hardware[2].occupied and a._hardware[4].occupied is None
            async with offline(a):
                keypad.press(totp(COURIER_KEY, clock.now) + "#")
                await until(lambda: factory.pin(1004).state, what="relay 4 energized")
        assert relay_history(factory, 2) == [False]

    asyncio.run(story())
