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
from locker.agent import LockerAgent
from locker.errors import HardwareInitError
from locker.grants import GrantStore
from locker.hardware import LockerHardware, make_pin_factory
from locker.keypad import Keypad, SimKeypad, StdinKeypad
from locker.settings import LockerSettings
from locker.sim import SimulatedPeople

log = logging.getLogger(__name__)


def make_keypad(kind: Literal["sim", "stdin"]) -> Keypad:
    """The keypad for the ``keypad`` setting. A ``sim`` keypad nobody presses stays silent."""
    if kind == "stdin":
        return StdinKeypad()
    return SimKeypad()


@contextlib.contextmanager
def open_locker(
    settings: LockerSettings, *, pin_factory: Factory, keypad: Keypad | None = None
) -> Iterator[LockerAgent]:
    """Claim the pins, open the grant store and outbox, and build the agent; release all on exit.

    Raises :class:`~locker.errors.HardwareInitError`, :class:`~locker.errors.GrantStoreError` or
    :class:`~edge.errors.OutboxError` when a part cannot be opened (those opened are closed again).
    """
    state = settings.state_dir
    with contextlib.ExitStack() as stack:
        hardware = stack.enter_context(
            LockerHardware.from_settings(settings, pin_factory=pin_factory)
        )
        grants = stack.enter_context(
            GrantStore(state / f"{settings.device_id}-grants.db", locker_key=settings.locker_key())
        )
        outbox = Outbox(state / f"{settings.device_id}-outbox.db")
        stack.callback(outbox.close)
        yield LockerAgent(
            settings=settings,
            hardware=hardware,
            keypad=keypad if keypad is not None else make_keypad(settings.keypad),
            grants=grants,
            outbox=outbox,
        )


async def run_locker(
    settings: LockerSettings,
    *,
    pin_factory: Factory | None = None,
    keypad: Keypad | None = None,
) -> None:
    """Run one locker until cancelled. With ``simulate_people`` set, people open and shut the doors
    whose locks are released (mock pins only)."""
    with contextlib.ExitStack() as stack:
        if pin_factory is None:
            pin_factory = make_pin_factory(settings.pin_factory)
            stack.callback(pin_factory.close)
        people: SimulatedPeople | None = None
        if settings.simulate_people:
            if not isinstance(pin_factory, MockFactory):
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
            tg.create_task(agent.run(), name="locker-agent")
