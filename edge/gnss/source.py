"""The one interface every GNSS backend implements (simulator now; gpsd and serial NMEA next)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from protocol.messages import Position


class GnssSource(Protocol):
    """A receiver. ``fixes()`` yields fixes until cancelled; a backend reconnects by itself."""

    def fixes(self) -> AsyncIterator[Position]: ...
