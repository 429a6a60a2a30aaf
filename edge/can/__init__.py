"""CAN telematics: DBC signals from the van's bus (SocketCAN, SLCAN, or the virtual-bus simulator).

Import this package only when CAN is configured: it needs python-can and cantools.
"""

from edge.can.errors import CanBusError, CanConfigError, CanOpenError, CanSourceError
from edge.can.settings import CanInterface, CanSettings, SignalSpec
from edge.can.source import CanSource, CanStats

__all__ = [
    "CanBusError",
    "CanConfigError",
    "CanInterface",
    "CanOpenError",
    "CanSettings",
    "CanSource",
    "CanSourceError",
    "CanStats",
    "SignalSpec",
]
