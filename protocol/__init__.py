"""The wire contract shared by the van agent, the locker agent and the hub.

Only the standard library and pydantic are imported here, so every program can depend on it.
"""

from protocol.codec import decode, decode_any, encode
from protocol.errors import DecodeError, ProtocolError, TopicError
from protocol.messages import (
    SCHEMA_VERSION,
    CommandAck,
    DeviceStatus,
    Grant,
    LockerEvent,
    Message,
    Position,
    TelemetryBatch,
    VehicleEvent,
)

__all__ = [
    "SCHEMA_VERSION",
    "CommandAck",
    "DecodeError",
    "DeviceStatus",
    "Grant",
    "LockerEvent",
    "Message",
    "Position",
    "ProtocolError",
    "TelemetryBatch",
    "TopicError",
    "VehicleEvent",
    "decode",
    "decode_any",
    "encode",
]
