"""Composition root of the locker agent: the one place that turns settings into objects.

Objects passed in win over the ones the settings would build, so tests and the demo run the real
agent on a :class:`~locker.hardware.MockLockerFactory` and a :class:`~locker.keypad.SimKeypad`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Literal

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory

from edge.outbox import Outbox
from edge.sdnotify import OFFLINE_READY_S, ServiceWatchdog, supervised
from locker.agent import Clock, LockerAgent, utcnow
from locker.errors import HardwareInitError
from locker.grants import GrantStore
from locker.hardware import Board, LockerHardware, make_pin_factory
from locker.keypad import Keypad, SimKeypad, StdinKeypad
from locker.lockout import Lockout, LockoutPolicy
from locker.settings import LockerSettings
from locker.sim import SimulatedPeople
from locker.state import LockerState

log = logging.getLogger(__name__)


def make_keypad(kind: Literal["sim", "stdin"]) -> Keypad:
    """The keypad for the ``keypad`` setting. A ``sim`` keypad nobody presses stays silent."""
    if kind == "stdin":
        return StdinKeypad()
    return SimKeypad()


@contextlib.contextmanager
def open_keypad(settings: LockerSettings, *, pin_factory: Factory) -> Iterator[Keypad]:
    """The keypad of the ``keypad`` setting, released on exit. The matrix driver claims its GPIO
    lines here; evdev is imported only for a USB keypad."""
    if settings.keypad == "matrix":
        from locker.keypad_matrix import MatrixKeypad

        assert settings.keypad_matrix is not None  # the settings refuse 'matrix' without it
        pad = MatrixKeypad(settings=settings.keypad_matrix, pin_factory=pin_factory)
        with contextlib.closing(pad):
            yield pad
    elif settings.keypad == "usb":
        from locker.keypad_usb import UsbKeypad

        assert settings.keypad_usb is not None
        yield UsbKeypad(settings=settings.keypad_usb)
    else:
        yield make_keypad(settings.keypad)


def open_board(settings: LockerSettings, *, pin_factory: Factory) -> Board:
    """The lock board of the ``board`` setting, every relay off. pymodbus is imported only when
    the Modbus board is selected."""
    if settings.board == "modbus":
        from locker.modbus import ModbusBoard

        assert settings.modbus is not None  # the settings refuse board 'modbus' without it
        return ModbusBoard.open(settings.modbus, compartments=settings.compartments)
    return LockerHardware.from_settings(settings, pin_factory=pin_factory)


@contextlib.contextmanager
def open_locker(
    settings: LockerSettings,
    *,
    pin_factory: Factory,
    keypad: Keypad | None = None,
    board: Board | None = None,
    clock: Clock = utcnow,
) -> Iterator[LockerAgent]:
    """Claim the board (relays off first), open the stores and the outbox, and build the agent;
    release all on exit.

    Raises :class:`~locker.errors.HardwareInitError`, :class:`~locker.errors.GrantStoreError`,
    :class:`~locker.errors.StateStoreError` or :class:`~edge.errors.OutboxError` when a part cannot
    be opened (those opened are closed again).
    """
    state_dir = settings.state_dir
    name = settings.device_id
    with contextlib.ExitStack() as stack:
        if board is None:
            board = open_board(settings, pin_factory=pin_factory)
            stack.callback(board.close)
        grants = stack.enter_context(
            GrantStore(state_dir / f"{name}-grants.db", locker_key=settings.locker_key())
        )
        lo = settings.lockout
        lockout = stack.enter_context(
            Lockout(
                state_dir / f"{name}-lockout.db",
                policy=LockoutPolicy(
                    free_failures=lo.free_failures,
                    base_s=lo.base_s,
                    cap_s=lo.cap_s,
                    forgive_after_s=lo.forgive_after_s,
                ),
            )
        )
        state = stack.enter_context(
            LockerState(state_dir / f"{name}-state.db", marker=state_dir / f"{name}.running")
        )
        outbox = Outbox(state_dir / f"{name}-outbox.db")
        stack.callback(outbox.close)
        yield LockerAgent(
            settings=settings,
            hardware=board,
            keypad=keypad
            if keypad is not None
            else stack.enter_context(open_keypad(settings, pin_factory=pin_factory)),
            grants=grants,
            outbox=outbox,
            lockout=lockout,
            state=state,
            clock=clock,
        )


async def run_locker(
    settings: LockerSettings,
    *,
    pin_factory: Factory | None = None,
    keypad: Keypad | None = None,
    watchdog: ServiceWatchdog | None = None,
) -> None:
    """Run one locker until cancelled. With ``simulate_people`` set, people open and shut the doors
    whose locks are released (mock pins only). ``watchdog`` hears READY once the uplink is
    connected (or the locker serves offline), then WATCHDOG=1 pings from this loop."""
    with contextlib.ExitStack() as stack:
        if pin_factory is None:
            pin_factory = make_pin_factory(settings.pin_factory)
            stack.callback(pin_factory.close)
        people: SimulatedPeople | None = None
        if settings.simulate_people:
            if settings.board != "gpio" or not isinstance(pin_factory, MockFactory):
                raise HardwareInitError("simulate_people needs mock pins (pin_factory 'mock')")
            people = SimulatedPeople(factory=pin_factory, pins=settings.pins)
        agent = stack.enter_context(open_locker(settings, pin_factory=pin_factory, keypad=keypad))
        log.info(
            "locker %s up: %d compartments, %s pins, %s keypad%s",
            settings.device_id,
            settings.compartments,
            settings.pin_factory,
            settings.keypad,
            ", simulated people" if people else "",
        )
        async with asyncio.TaskGroup() as tg:
            if people is not None:
                people.shut_all_doors()  # before the agent watches: a locker starts shut
                tg.create_task(people.run(), name="locker-sim-people")
            tg.create_task(
                supervised(
                    agent.run(),
                    watchdog=watchdog,
                    ready=agent.uplink.wait_connected,
                    ready_timeout_s=OFFLINE_READY_S,
                ),
                name="locker-agent",
            )
