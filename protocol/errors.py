"""Errors of the wire contract: one base, and one type per way a peer can get the contract wrong."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base of every error raised by :mod:`protocol`."""


class TopicError(ProtocolError):
    """A topic or a device id does not follow the contract.

    ``topic`` is the offending string, so a receiver can count and log it without parsing the message.
    """

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"bad topic {topic!r}: {reason}")
        self.topic = topic
        self.reason = reason


class DecodeError(ProtocolError):
    """A payload is not a valid message of a version we speak.

    One type for every decoding failure (not JSON, wrong shape, unknown type, unknown schema version) so
    that a receiver has one thing to catch, count and dead-letter; ``reason`` says which it was.
    """

    def __init__(self, reason: str, *, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
