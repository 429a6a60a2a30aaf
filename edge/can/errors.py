"""Errors of the CAN source, by phase like python-can's: configuration, opening the bus, running it.

python-can and cantools exceptions are translated here (``raise ... from err``) and never escape
``edge.can``; bad frames are not errors at all but counted in :class:`edge.can.source.CanStats`.
"""

from __future__ import annotations

from edge.errors import SourceError


class CanSourceError(SourceError):
    """Base of every error of the CAN source."""


class CanConfigError(CanSourceError):
    """The DBC file cannot be loaded, or a configured signal is not in it (or is ambiguous).

    ``problems`` lists each one, so a bad config is fixed in one go.
    """

    def __init__(self, dbc_file: str, problems: list[str]) -> None:
        super().__init__(f"CAN config with DBC {dbc_file} is invalid:\n  " + "\n  ".join(problems))
        self.dbc_file = dbc_file
        self.problems = problems


class CanOpenError(CanSourceError):
    """The bus could not be opened (no such interface, driver missing, adapter not answering)."""

    def __init__(self, interface: str, channel: str, reason: str) -> None:
        super().__init__(f"cannot open CAN bus {interface}:{channel}: {reason}")
        self.interface = interface
        self.channel = channel
        self.reason = reason


class CanBusError(CanSourceError):
    """The open bus failed while receiving (interface down, adapter unplugged, bus off)."""

    def __init__(self, interface: str, channel: str, reason: str) -> None:
        super().__init__(f"CAN bus {interface}:{channel} failed: {reason}")
        self.interface = interface
        self.channel = channel
        self.reason = reason
