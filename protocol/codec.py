"""Bytes on the wire <-> messages. JSON, because every MQTT tool can show it.

Decoding never raises anything but :class:`protocol.errors.DecodeError`, whatever the bytes.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from protocol.errors import DecodeError
from protocol.messages import SCHEMA_VERSION, AnyMessage, Message

M = TypeVar("M", bound=Message)
_ANY: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def _check_envelope(payload: bytes) -> None:
    """Tell an unknown schema version apart from a malformed message: the fix differs (upgrade vs bug)."""
    try:
        head: Any = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise DecodeError("not JSON", detail=str(err)[:200]) from None
    if not isinstance(head, dict):
        raise DecodeError("not a JSON object", detail=type(head).__name__)
    version = head.get("v")
    if version != SCHEMA_VERSION:
        raise DecodeError(
            "unsupported schema version",
            detail=f"v={version!r}, this side speaks v={SCHEMA_VERSION}",
        )


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "<message>"
        parts.append(f"{loc}: {e['msg']}")
    more = err.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode(payload: bytes, expected: type[M]) -> M:
    """Decode ``payload`` as ``expected`` or raise :class:`DecodeError` saying what is wrong."""
    try:
        return expected.model_validate_json(payload)
    except ValidationError as err:
        _check_envelope(payload)
        raise DecodeError(f"invalid {expected.__name__}", detail=_describe(err)) from None


def decode_any(payload: bytes) -> AnyMessage:
    """Decode a payload of any message type, dispatching on its ``type`` field."""
    try:
        return _ANY.validate_json(payload)
    except ValidationError as err:
        _check_envelope(payload)
        raise DecodeError("invalid message", detail=_describe(err)) from None
