"""Errors of the locker agent, grouped by phase; driver errors are translated where they happen."""

from __future__ import annotations

from pathlib import Path

from edge.errors import EdgeError


class LockerError(EdgeError):
    """Base of every error the locker agent raises.

    An :class:`~edge.errors.EdgeError`, so a CLI that reports edge errors reports ours too.
    """


class HardwareInitError(LockerError):
    """The GPIO backend or a compartment's pins could not be set up; nothing can be opened.

    ``pin`` names the offending pin when one is to blame.
    """

    def __init__(self, message: str, *, pin: int | None = None) -> None:
        super().__init__(message)
        self.pin = pin


class GrantStoreError(LockerError):
    """The grant database could not be opened or written.

    Loud on purpose: a grant we acknowledged but did not store would be a parcel nobody can collect.
    """

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(f"{message} ({path})")
        self.path = path


class KeypadError(LockerError):
    """A keypad was given keys it does not have, or its input stream failed."""


class HardwareOperationError(LockerError):
    """A relay could not be switched after start-up (driver or bus failure)."""

    def __init__(self, message: str, *, compartment: int) -> None:
        super().__init__(message)
        self.compartment = compartment


class StateStoreError(LockerError):
    """The locker's state (lockout counters, occupancy, open flows, nonces) could not be read or
    written. Loud: a lockout counter we failed to store is a brute-force budget given away."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(f"{message} ({path})")
        self.path = path
