"""GNSS sources. Each yields :class:`protocol.messages.Position` fixes as an async iterator.

Backends: :mod:`edge.gnss.sim` (ships, powers the demo), :mod:`edge.gnss.gpsd` and
:mod:`edge.gnss.nmea` (serial; needs the ``edge`` extra). :func:`edge.app.build_gnss` picks one.
"""

from edge.gnss.health import GnssState, SourceHealth
from edge.gnss.source import GnssSource

__all__ = ["GnssSource", "GnssState", "SourceHealth"]
