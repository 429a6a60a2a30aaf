"""Simulated people at a locker, for the demo: whoever's lock is released opens the door, takes the
parcel and shuts the door again.

They act only through mock pins, like a person acts only through the door: they watch the relay pin
and drive the door switch pin, so the agent under them runs exactly as on a real board.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gpiozero.pins.mock import MockFactory

from locker.settings import CompartmentPins

log = logging.getLogger(__name__)


class SimulatedPeople:
    """Open a compartment's door ``open_after_s`` after its relay energizes; shut it
    ``close_after_s`` after opening. Compartments are numbered from 1 in the order of ``pins``."""

    def __init__(
        self,
        *,
        factory: MockFactory,
        pins: Sequence[CompartmentPins],
        open_after_s: float = 0.5,
        close_after_s: float = 3.0,
        poll_s: float = 0.05,
    ) -> None:
        if not isinstance(factory, MockFactory):
            raise TypeError("simulated people need mock pins (a gpiozero MockFactory)")
        self._factory = factory
        self._pins = list(pins)
        self._open_after_s = open_after_s
        self._close_after_s = close_after_s
        self._poll_s = poll_s
        self._busy: set[int] = set()

    def shut_all_doors(self) -> None:
        """Hold every door switch closed. Call after the door devices exist: creating one sets its
        pull-up, which a mock pin follows (reads open)."""
        for p in self._pins:
            self._factory.pin(p.door).drive_low()

    async def run(self) -> None:
        """Watch the relays until cancelled."""
        was_on = [False] * len(self._pins)
        async with asyncio.TaskGroup() as tg:
            while True:
                for i, p in enumerate(self._pins):
                    on = bool(self._factory.pin(p.relay).state)
                    number = i + 1
                    if on and not was_on[i] and number not in self._busy:
                        self._busy.add(number)
                        tg.create_task(self._visit(number, p), name=f"person-{number}")
                    was_on[i] = on
                await asyncio.sleep(self._poll_s)

    async def _visit(self, number: int, pins: CompartmentPins) -> None:
        door = self._factory.pin(pins.door)
        try:
            await asyncio.sleep(self._open_after_s)
            log.info("simulated person opens compartment %d", number)
            door.drive_high()
            await asyncio.sleep(self._close_after_s)
            log.info("simulated person shuts compartment %d", number)
            door.drive_low()
        finally:
            self._busy.discard(number)
