"""Compartments on mock pins: relays switch, door switches read low = closed, changes reach asyncio."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero import DigitalOutputDevice

from locker.errors import HardwareInitError
from locker.hardware import Compartment, LockerHardware, MockLockerFactory, make_pin_factory
from tests.locker.story import relay_history, settings_for


def test_a_relay_energizes_and_releases(factory: MockLockerFactory) -> None:
    c = Compartment(number=1, relay_pin=1001, door_pin=2001, pin_factory=factory)
    try:
        assert not c.energized
        asyncio.run(c.unlock())
        assert c.energized
        c.lock()
        factory.pin(1001).assert_states([False, True, False])
        assert relay_history(factory, 1) == [False, True, False]
    finally:
        c.close()


def test_the_door_is_closed_while_its_switch_holds_the_pin_low(
    factory: MockLockerFactory,
) -> None:
    c = Compartment(number=1, relay_pin=1001, door_pin=2001, pin_factory=factory)
    try:
        assert c.is_open  # pulled up: nothing holds it shut (or the wire is cut)
        factory.pin(2001).drive_low()
        assert not c.is_open
        factory.pin(2001).drive_high()
        assert c.is_open
    finally:
        c.close()


def test_door_changes_arrive_in_order_on_the_event_loop(
    tmp_path, factory: MockLockerFactory
) -> None:
    async def story() -> list[tuple[int, bool]]:
        with LockerHardware.from_settings(settings_for(tmp_path), pin_factory=factory) as hw:
            factory.pin(2002).drive_low()  # before watching: not reported
            watch = hw.door_changes()
            try:
                factory.pin(2002).drive_high()
                factory.pin(2004).drive_low()
                factory.pin(2002).drive_low()
                seen = []
                async with asyncio.timeout(5):
                    async for change in watch:
                        seen.append((change.compartment, change.open))
                        if len(seen) == 3:
                            break
                return seen
            finally:
                watch.close()

    assert asyncio.run(story()) == [(2, True), (4, False), (2, False)]


def test_a_door_change_from_a_gpio_thread_reaches_the_loop(
    tmp_path, factory: MockLockerFactory
) -> None:
    async def story() -> bool:
        with LockerHardware.from_settings(settings_for(tmp_path), pin_factory=factory) as hw:
            watch = hw.door_changes()
            try:
                await asyncio.to_thread(factory.pin(2003).drive_low)
                async with asyncio.timeout(5):
                    change = await anext(watch)
                return change.compartment == 3 and not change.open
            finally:
                watch.close()

    assert asyncio.run(story())


def test_a_pin_already_in_use_fails_loudly_and_releases_the_others(
    tmp_path, factory: MockLockerFactory
) -> None:
    squatter = DigitalOutputDevice(2003, pin_factory=factory)  # someone took compartment 3's door
    try:
        with pytest.raises(HardwareInitError) as err:
            LockerHardware.from_settings(settings_for(tmp_path), pin_factory=factory)
        assert err.value.pin == 2003
        # compartments 1 and 2 were released again: they can be claimed anew
        Compartment(number=1, relay_pin=1001, door_pin=2001, pin_factory=factory).close()
    finally:
        squatter.close()


def test_the_pi_header_pins_are_still_there(factory: MockLockerFactory) -> None:
    c = Compartment(number=1, relay_pin=17, door_pin=27, pin_factory=factory)
    asyncio.run(c.unlock())
    assert factory.pin(17).state
    c.close()


def test_lgpio_is_imported_only_when_selected() -> None:
    assert isinstance(make_pin_factory("mock"), MockLockerFactory)
    try:
        import lgpio  # noqa: F401
    except ImportError:
        with pytest.raises(HardwareInitError, match="lgpio"):
            make_pin_factory("lgpio")
    else:
        pytest.skip("lgpio is installed here; the missing-driver path cannot be shown")
