"""How a GNSS source is doing, as a value the agent can publish and a stream it can watch.

A van whose receiver is unplugged still drives and still reports its last batches; without a health
signal the hub would only see positions stop and could not tell "parked" from "blind". Every source
therefore keeps one :class:`HealthCell`, and the agent republishes its status when the value changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum


class GnssState(StrEnum):
    STARTING = "starting"
    """Not yet connected, nothing known."""
    OK = "ok"
    """Fixes are flowing."""
    NO_FIX = "no_fix"
    """The receiver talks but has no position (indoors, tunnel, cold start, wrong baud rate)."""
    DISCONNECTED = "disconnected"
    """The receiver or daemon cannot be reached; the source is reconnecting."""


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One state plus the last error worth showing an operator ("" when there is none)."""

    state: GnssState
    error: str = ""


class HealthCell:
    """Holds a source's current health and wakes watchers when it changes.

    Changes are coalesced: a watcher that is slow to look sees the latest value, not every flap. That
    is what a status message needs (state, not history) and it keeps a flapping receiver from
    flooding the uplink.
    """

    def __init__(self, initial: SourceHealth | None = None) -> None:
        self._value = initial or SourceHealth(GnssState.STARTING)
        self._changed = asyncio.Event()

    @property
    def value(self) -> SourceHealth:
        return self._value

    def set(self, state: GnssState, error: str = "") -> bool:
        """Set the health; return whether it changed. Must be called on the event loop's thread."""
        new = SourceHealth(state, error)
        if new == self._value:
            return False
        self._value = new
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    async def changes(self) -> AsyncIterator[SourceHealth]:
        """Yield the current health now, then again after each change, until cancelled."""
        while True:
            changed = self._changed
            yield self._value
            await changed.wait()
