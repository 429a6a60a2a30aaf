"""Errors of the edge runtime and the van agent, grouped by phase like python-can's."""

from __future__ import annotations

from pathlib import Path


class EdgeError(Exception):
    """Base of every error the edge runtime raises."""


class ConfigError(EdgeError):
    """A settings file or variable is invalid. The message names the file and each bad field."""

    def __init__(self, source: Path | str | None, problems: list[str]) -> None:
        where = f"config file {source}" if source else "settings"
        super().__init__(f"{where} is invalid:\n  " + "\n  ".join(problems))
        self.source = source
        self.problems = problems


class OutboxError(EdgeError):
    """The durable outbox could not be opened or written: data would be lost, so this is loud."""


class MessageTooLargeError(OutboxError):
    """A message is larger than the broker accepts; it was not queued. The producer must split it."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(f"message for {topic} is {size} bytes, over the {limit}-byte limit")
        self.topic = topic
        self.size = size
        self.limit = limit


class SourceError(EdgeError):
    """A sensor source (GNSS, CAN, OBD, keypad) failed in a way its owner should report."""


class NonceStoreError(EdgeError):
    """The command nonce store could not be opened or written: commands cannot be checked for
    replay, so none may be carried out."""


class CommandFailed(EdgeError):
    """A verified remote command could not be carried out. ``reason`` is the short word the ack
    carries (``no_fix``, ``no_obd``, ``obd_unavailable``, ``config_invalid``, ...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class RouteStoreError(EdgeError):
    """The van's route file could not be opened or written: the driver would lose the route."""
