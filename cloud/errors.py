"""Errors of the hub, by phase."""

from __future__ import annotations


class HubError(Exception):
    """Base of every error the hub raises."""


class BrokerError(HubError):
    """The local Mosquitto could not be found, configured or started."""


class NotFoundError(HubError):
    """A resource named in a request does not exist."""

    def __init__(self, kind: str, key: object) -> None:
        super().__init__(f"{kind} {key!s} not found")
        self.kind = kind
        self.key = key


class ConflictError(HubError):
    """A request cannot be carried out in the current state (e.g. no free compartment)."""


class PostgresError(HubError):
    """A throw-away PostgreSQL (tests, benchmarks) could not be found, initialised or started."""


class TokenError(HubError):
    """A bearer token was refused; ``reason`` says why, precisely enough to fix the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
