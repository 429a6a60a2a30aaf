"""Compartments as gpiozero devices: a lock relay (output) and a door switch (input) each.

Devices never pick a pin factory themselves: the composition root passes one in, built by
:func:`make_pin_factory` from the typed ``pin_factory`` setting. ``MockLockerFactory`` is a full
backend that ships here, not a test helper: the demo and the tests run on it.

Wiring assumed: the door switch connects its pin to ground while the door is shut, against the Pi's
internal pull-up, so *low = closed* and a cut wire reads as an open door (the safe failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Protocol

from gpiozero import DigitalInputDevice, DigitalOutputDevice, Factory, GPIOZeroError
from gpiozero.pins import HeaderInfo, PinInfo
from gpiozero.pins.mock import MockFactory, MockPin

from locker.errors import HardwareInitError, HardwareOperationError
from locker.settings import MAX_COMPARTMENTS, MOCK_DOOR_BASE, MOCK_RELAY_BASE, LockerSettings

log = logging.getLogger(__name__)

DoorCallback = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class DoorChange:
    """A door switch changed: ``open`` is the new state, ``at`` when the GPIO callback saw it."""

    compartment: int
    open: bool
    at: datetime


class CompartmentIO(Protocol):
    """What the agent needs of one compartment, whatever board it sits on."""

    number: int

    async def unlock(self) -> None:
        """Energize the relay; return once it is on, raise
        :class:`~locker.errors.HardwareOperationError` on failure. A coroutine because a relay on
        a bus takes a round trip, which must not block the event loop."""
        ...

    def lock(self) -> None:
        """De-energize the relay, without blocking: a bus board queues the write and reports a
        failure itself; GPIO raises :class:`~locker.errors.HardwareOperationError` at once."""
        ...

    @property
    def is_open(self) -> bool: ...

    @property
    def occupied(self) -> bool | None:
        """What a parcel sensor says, or None without one."""
        ...


class DoorStream(Protocol):
    """Door changes as an async iterator, captured from creation until :meth:`close`."""

    def __aiter__(self) -> AsyncIterator[DoorChange]: ...

    async def __anext__(self) -> DoorChange: ...

    def close(self) -> None: ...


class Board(Protocol):
    """A locker's lock board: GPIO pins (:class:`LockerHardware`) or an RS485 Modbus board
    (:class:`locker.modbus.ModbusBoard`). Compartments are numbered from 1."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[CompartmentIO]: ...

    def __getitem__(self, number: int) -> CompartmentIO: ...

    def door_changes(self) -> DoorStream: ...

    def close(self) -> None: ...


class Compartment:
    """One compartment: energize the relay to release the lock; read the door switch.

    A door sensor is a :class:`gpiozero.DigitalInputDevice` rather than a ``Button``: ``Button``
    starts a hold-detection thread per instance (waking 10 times a second), which a locker with
    hundreds of doors would pay for nothing.
    """

    def __init__(
        self,
        *,
        number: int,
        relay_pin: int,
        door_pin: int,
        pin_factory: Factory,
        occupancy_pin: int | None = None,
    ) -> None:
        self.number = number
        self._occupancy: DigitalInputDevice | None = None
        try:
            self._relay = DigitalOutputDevice(
                relay_pin, active_high=True, initial_value=False, pin_factory=pin_factory
            )
        except (GPIOZeroError, OSError) as err:
            raise HardwareInitError(
                f"compartment {number}: cannot claim relay pin {relay_pin}: {err}", pin=relay_pin
            ) from err
        try:
            self._door = DigitalInputDevice(door_pin, pull_up=True, pin_factory=pin_factory)
        except (GPIOZeroError, OSError) as err:
            self._relay.close()
            raise HardwareInitError(
                f"compartment {number}: cannot claim door pin {door_pin}: {err}", pin=door_pin
            ) from err
        if occupancy_pin is not None:
            try:
                self._occupancy = DigitalInputDevice(
                    occupancy_pin, pull_up=True, pin_factory=pin_factory
                )
            except (GPIOZeroError, OSError) as err:
                self._door.close()
                self._relay.close()
                raise HardwareInitError(
                    f"compartment {number}: cannot claim parcel sensor pin {occupancy_pin}: {err}",
                    pin=occupancy_pin,
                ) from err

    async def unlock(self) -> None:
        """Energize the relay (a pin write: immediate). The caller de-energizes it: see
        :meth:`lock`."""
        self._drive(True)

    def lock(self) -> None:
        self._drive(False)

    def _drive(self, on: bool) -> None:
        try:
            self._relay.value = on
        except (GPIOZeroError, OSError) as err:
            raise HardwareOperationError(
                f"compartment {self.number}: cannot switch relay: {err}", compartment=self.number
            ) from err

    @property
    def energized(self) -> bool:
        return bool(self._relay.is_active)

    @property
    def is_open(self) -> bool:
        """Switch not pulled to ground (pin high): the door is open, or its wire is cut."""
        return not self._door.is_active

    @property
    def occupied(self) -> bool | None:
        """The parcel sensor pulls its pin low while a parcel breaks the beam; None without one."""
        return None if self._occupancy is None else bool(self._occupancy.is_active)

    def on_door_change(self, callback: DoorCallback | None) -> None:
        """Call ``callback(is_open)`` on each door change, from gpiozero's thread; None stops it."""
        if callback is None:
            self._door.when_activated = None
            self._door.when_deactivated = None
            return
        self._door.when_activated = lambda: callback(False)
        self._door.when_deactivated = lambda: callback(True)

    def close(self) -> None:
        """Release the pins (the relay pin stops driving: the lock falls back to its spring)."""
        if self._occupancy is not None:
            self._occupancy.close()
        self._door.close()
        self._relay.close()


class DoorWatch:
    """Door changes as an async iterator, captured from the moment this object is created.

    gpiozero calls back on its own threads; each change is handed to the event loop with
    ``call_soon_threadsafe``, so the agent sees them in order on one thread.
    """

    def __init__(self, compartments: Iterable[Compartment]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[DoorChange] = asyncio.Queue()
        self._compartments = list(compartments)
        for c in self._compartments:
            c.on_door_change(self._callback(c.number))

    def _callback(self, number: int) -> DoorCallback:
        def changed(is_open: bool) -> None:
            change = DoorChange(compartment=number, open=is_open, at=datetime.now(UTC))
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, change)
            except RuntimeError:  # the loop is gone: we are shutting down
                log.debug("door change after shutdown dropped: %s", change)

        return changed

    def __aiter__(self) -> DoorWatch:
        return self

    async def __anext__(self) -> DoorChange:
        return await self._queue.get()

    def close(self) -> None:
        for c in self._compartments:
            c.on_door_change(None)


class LockerHardware:
    """All compartments of one locker, numbered from 1. A context manager closing every device."""

    def __init__(self, compartments: Sequence[Compartment]) -> None:
        numbers = [c.number for c in compartments]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"compartments must be numbered 1..{len(numbers)}, got {numbers}")
        self._compartments = list(compartments)

    @classmethod
    def from_settings(cls, settings: LockerSettings, *, pin_factory: Factory) -> LockerHardware:
        """Claim every compartment's pins; on failure release those already claimed and raise
        :class:`~locker.errors.HardwareInitError`."""
        built: list[Compartment] = []
        try:
            for number, pins in enumerate(settings.pins, start=1):
                built.append(
                    Compartment(
                        number=number,
                        relay_pin=pins.relay,
                        door_pin=pins.door,
                        occupancy_pin=pins.occupancy,
                        pin_factory=pin_factory,
                    )
                )
        except HardwareInitError:
            for c in built:
                c.close()
            raise
        return cls(built)

    def __len__(self) -> int:
        return len(self._compartments)

    def __iter__(self) -> Iterator[Compartment]:
        return iter(self._compartments)

    def __getitem__(self, number: int) -> Compartment:
        if not 1 <= number <= len(self._compartments):
            raise KeyError(f"no compartment {number} (this locker has 1..{len(self)})")
        return self._compartments[number - 1]

    def door_changes(self) -> DoorWatch:
        """Start watching every door; call from the event loop. Close the watch when done."""
        return DoorWatch(self._compartments)

    def close(self) -> None:
        for c in self._compartments:
            c.close()

    def __enter__(self) -> LockerHardware:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _mock_header(numbers: Iterable[int]) -> HeaderInfo:
    pins = {
        row: PinInfo(
            number=row,
            name=f"GPIO{n}",
            names=frozenset({n, str(n), f"GPIO{n}"}),
            pull="",
            row=row,
            col=1,
            interfaces=frozenset({"gpio"}),
        )
        for row, n in enumerate(numbers, start=1)
    }
    return HeaderInfo(name="LOCKER", rows=len(pins), columns=1, pins=pins)


MOCK_LOCKER_PINS = (
    *range(MOCK_RELAY_BASE + 1, MOCK_RELAY_BASE + MAX_COMPARTMENTS + 1),
    *range(MOCK_DOOR_BASE + 1, MOCK_DOOR_BASE + MAX_COMPARTMENTS + 1),
)


class MockLockerFactory(MockFactory):  # type: ignore[misc]
    """gpiozero's mock backend with an extra "LOCKER" header of mock GPIOs 1001-1512 and 2001-2512.

    A Pi has 28 GPIOs, too few for a generated map of up to 512 compartments; these extra pins let
    the demo and tests use :func:`locker.settings.mock_pin_map`. The Pi's own pins stay available.
    Revision and pin class are fixed here so gpiozero's ``GPIOZERO_MOCK_*`` variables cannot change
    the backend behind our back.
    """

    def __init__(self, *, extra_pins: Iterable[int] = MOCK_LOCKER_PINS) -> None:
        super().__init__(revision="a02082", pin_class=MockPin)
        base = super()._get_board_info()
        self._info = base._replace(headers={**base.headers, "LOCKER": _mock_header(extra_pins)})

    def _get_board_info(self) -> Any:
        return self._info


def make_pin_factory(kind: Literal["mock", "lgpio"]) -> Factory:
    """The pin factory for the ``pin_factory`` setting. lgpio is imported only when selected, so a
    development machine without it still runs the mock locker."""
    if kind == "mock":
        return MockLockerFactory()
    try:
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as err:
        raise HardwareInitError(
            f"pin_factory 'lgpio' needs the lgpio module ({err}); on Raspberry Pi OS: "
            "apt-get install python3-lgpio"
        ) from err
    try:
        return LGPIOFactory()
    except (GPIOZeroError, OSError) as err:
        raise HardwareInitError(f"cannot open the GPIO chip with lgpio: {err}") from err
