"""MQTT topics of the contract. No topic string is built anywhere else.

Layout::

    fleet/{vehicle}/telemetry | events | status | route | cmd | cmd/ack
    lockers/{locker}/events | status | grants | cmd | cmd/ack

Device ids are validated here, because an id containing ``+``, ``#`` or ``/`` would silently turn a
topic into a wildcard or shift every level after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import TopicError


class DeviceKind(StrEnum):
    VEHICLE = "vehicle"
    LOCKER = "locker"


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    EVENTS = "events"
    STATUS = "status"
    ROUTE = "route"
    GRANTS = "grants"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"


_ROOTS: dict[DeviceKind, str] = {DeviceKind.VEHICLE: "fleet", DeviceKind.LOCKER: "lockers"}
_KIND_OF_ROOT = {root: kind for kind, root in _ROOTS.items()}
CHANNELS: dict[DeviceKind, frozenset[Channel]] = {
    DeviceKind.VEHICLE: frozenset(
        {
            Channel.TELEMETRY,
            Channel.EVENTS,
            Channel.STATUS,
            Channel.ROUTE,
            Channel.CMD,
            Channel.CMD_ACK,
        }
    ),
    DeviceKind.LOCKER: frozenset(
        {Channel.EVENTS, Channel.STATUS, Channel.GRANTS, Channel.CMD, Channel.CMD_ACK}
    ),
}

DEVICE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


def validate_device_id(device_id: str) -> str:
    """Return ``device_id`` if it is safe as one topic level, else raise :class:`TopicError`."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise TopicError(
            device_id,
            "a device id is 1-64 characters of letters, digits, '_', '.', '-', starting with a "
            "letter or digit (no '+', '#', '/' or spaces)",
        )
    return device_id


def topic(kind: DeviceKind, device_id: str, channel: Channel) -> str:
    """The topic on which ``device_id`` (of ``kind``) exchanges ``channel``."""
    if channel not in CHANNELS[kind]:
        raise TopicError(f"{_ROOTS[kind]}/{device_id}/{channel}", f"a {kind} has no {channel}")
    return f"{_ROOTS[kind]}/{validate_device_id(device_id)}/{channel}"


def vehicle_topic(vehicle_id: str, channel: Channel) -> str:
    return topic(DeviceKind.VEHICLE, vehicle_id, channel)


def locker_topic(locker_id: str, channel: Channel) -> str:
    return topic(DeviceKind.LOCKER, locker_id, channel)


def subscription(kind: DeviceKind, channel: Channel) -> str:
    """A filter matching ``channel`` of every device of ``kind``, e.g. ``fleet/+/telemetry``."""
    if channel not in CHANNELS[kind]:
        raise TopicError(f"{_ROOTS[kind]}/+/{channel}", f"a {kind} has no {channel}")
    return f"{_ROOTS[kind]}/+/{channel}"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription: the broker hands each message to one member of ``group``."""
    validate_device_id(group)
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    kind: DeviceKind
    device_id: str
    channel: Channel


def parse_topic(topic_name: str) -> TopicInfo:
    """Split a concrete topic into device kind, id and channel, or raise :class:`TopicError`."""
    parts = topic_name.split("/", 2)
    if len(parts) != 3:
        raise TopicError(topic_name, "expected '<root>/<device>/<channel>'")
    root, device_id, rest = parts
    kind = _KIND_OF_ROOT.get(root)
    if kind is None:
        raise TopicError(topic_name, f"unknown root {root!r} (expected 'fleet' or 'lockers')")
    validate_device_id(device_id)
    try:
        channel = Channel(rest)
    except ValueError:
        raise TopicError(topic_name, f"unknown channel {rest!r}") from None
    if channel not in CHANNELS[kind]:
        raise TopicError(topic_name, f"a {kind} has no {channel}")
    return TopicInfo(kind=kind, device_id=device_id, channel=channel)
