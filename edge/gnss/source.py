"""The one interface every GNSS backend implements: the simulator, gpsd and serial NMEA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol

from edge.gnss.health import SourceHealth
from protocol.messages import Position


class GnssSource(Protocol):
    """A receiver. ``fixes()`` yields fixes until cancelled; a backend reconnects by itself.

    A backend never raises because its receiver went away: it reports that through ``health`` (and
    ``health_changes()``) and keeps trying, because a van has no operator to restart it.
    """

    def fixes(self) -> AsyncIterator[Position]: ...

    @property
    def health(self) -> SourceHealth: ...

    def health_changes(self) -> AsyncIterator[SourceHealth]:
        """The current health at once, then each change (coalesced), until cancelled."""
        ...

    def counters(self) -> Mapping[str, int]:
        """Running totals (fixes, dropped lines by reason, reconnects) for status and diagnosis."""
        ...
