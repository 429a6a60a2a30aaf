"""CAN telematics: DBC signals from the van's bus (SocketCAN, SLCAN, or the virtual-bus simulator).

The settings and errors are light; the source needs python-can and cantools, so it is loaded only
when first named (PEP 562), and loading a van's settings never imports a CAN driver.
"""

from typing import TYPE_CHECKING, Any

from edge.can.errors import CanBusError, CanConfigError, CanOpenError, CanSourceError
from edge.can.settings import CanInterface, CanSettings, SignalSpec

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in ("CanSource", "CanStats"):
        from edge.can import source

        return getattr(source, name)
    raise AttributeError(f"module 'edge.can' has no attribute {name!r}")
