"""Message schemas of the contract: frozen pydantic models, one per kind of payload.

Every message carries ``v`` (schema version), ``id`` (unique, so a receiver can drop redeliveries) and
``type`` (the discriminator that :func:`protocol.codec.decode_any` dispatches on). Models refuse unknown
fields: a peer that sends something we do not understand should hear so, not have it ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal
from uuid import UUID, uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from protocol.topics import DEVICE_ID_PATTERN

SCHEMA_VERSION: Final = 1
MAX_POINTS_PER_BATCH = 10_000

DeviceId = Annotated[str, StringConstraints(pattern=f"^{DEVICE_ID_PATTERN}$")]
Evidence = dict[str, float | int | str | bool]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    """Fields every message has."""

    v: Literal[1] = SCHEMA_VERSION
    id: UUID = Field(default_factory=uuid4)
    sent_at: AwareDatetime = Field(default_factory=utcnow)


class Position(_Frozen):
    """One GNSS fix. Fix quality travels with the point so the hub can judge it later."""

    t: AwareDatetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    speed_mps: float | None = Field(default=None, ge=0, le=150)
    heading_deg: float | None = Field(default=None, ge=0, lt=360)
    alt_m: float | None = None
    hdop: float | None = Field(default=None, ge=0)
    sats: int | None = Field(default=None, ge=0, le=255)
    fix: Literal["2d", "3d"] | None = None


class TelemetryBatch(Message):
    """Many positions in one message: per-message cost dominates MQTT, so vans batch.

    ``seq`` is the sender's outbox sequence number; it grows by one per message a device ever queues,
    so the hub can see gaps (lost data) and repeats (redeliveries).
    """

    type: Literal["telemetry"] = "telemetry"
    vehicle_id: DeviceId
    seq: int = Field(ge=1)
    points: tuple[Position, ...] = Field(min_length=1, max_length=MAX_POINTS_PER_BATCH)


class VehicleEvent(Message):
    """A driving event (harsh braking, overspeed, ignition, ...) with its position and evidence."""

    type: Literal["vehicle_event"] = "vehicle_event"
    vehicle_id: DeviceId
    seq: int = Field(ge=1)
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    at: AwareDatetime
    position: Position | None = None
    evidence: Evidence = Field(default_factory=dict)


CompartmentSize = Literal["S", "M", "L"]


class DeviceStatus(Message):
    """Retained presence of a device. The broker publishes the offline variant as the last will."""

    type: Literal["status"] = "status"
    device_id: DeviceId
    kind: Literal["vehicle", "locker"]
    online: bool
    version: str = ""
    uptime_s: float = Field(default=0.0, ge=0)
    outbox_depth: int = Field(default=0, ge=0)
    compartments: int | None = Field(default=None, ge=1, le=512)
    health: dict[str, str] = Field(default_factory=dict)
    outbox_bytes: int = Field(default=0, ge=0, description="payload bytes waiting to be sent")
    outbox_dropped: dict[str, int] = Field(
        default_factory=dict,
        description="rows the bounded outbox dropped, by reason (rows, bytes, age), ever",
    )
    sizes: tuple[CompartmentSize, ...] | None = Field(
        default=None, max_length=512, description="locker: each compartment's size, in order"
    )


LockerEventKind = Literal[
    "code_accepted",
    "code_rejected",
    "unlocked",
    "door_opened",
    "door_closed",
    # flows: a parcel put in, collected, or taken back by the courier (proof of each)
    "deposited",
    "picked_up",
    "returned",
    # alarms
    "keypad_lockout",
    "door_left_open",
    "door_forced",
    "unlock_not_opened",
    "power_restored",
    # remote commands
    "command_executed",
    "command_refused",
]


class LockerEvent(Message):
    """Something that happened at a locker: a code typed, a lock released, a door moved."""

    type: Literal["locker_event"] = "locker_event"
    locker_id: DeviceId
    seq: int = Field(ge=1)
    kind: LockerEventKind
    at: AwareDatetime
    compartment: int | None = Field(default=None, ge=1, le=512)
    grant_id: UUID | None = None
    reason: str = ""
    size: CompartmentSize | None = None
    command_id: UUID | None = None
    until: AwareDatetime | None = Field(
        default=None, description="keypad_lockout: when the keypad listens again"
    )
    failures: int | None = Field(
        default=None, ge=0, description="keypad_lockout: failed codes counted so far"
    )


GrantKind = Literal["pickup", "courier", "return"]


class Grant(Message):
    """The hub's permission for one code to open one compartment.

    ``code_hash`` is HMAC-SHA256 of the code under the locker's key (see :mod:`protocol.codes`): the
    plaintext code never travels to, nor rests on, the locker.
    """

    type: Literal["grant"] = "grant"
    locker_id: DeviceId
    grant_id: UUID
    compartment: int = Field(ge=1, le=512)
    code_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    kind: GrantKind = "pickup"
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    single_use: bool = True


CommandResult = dict[str, float | int | str | bool | list[str]]


class CommandAck(Message):
    """A device's answer to a command: whether it was carried out, why not, and what it found.

    ``reason`` is the short word of a refusal (``bad_signature``, ``expired``, ``unknown_command``,
    ...), ``detail`` the sentence behind it; ``result`` what a command read (a vehicle's trouble
    codes, the profile now in force)."""

    type: Literal["cmd_ack"] = "cmd_ack"
    device_id: DeviceId
    command_id: UUID
    ok: bool
    reason: str = ""
    name: str = Field(default="", max_length=40, description="the command's name, if it had one")
    detail: str = Field(default="", max_length=500)
    result: CommandResult = Field(default_factory=dict)
    seq: int | None = Field(
        default=None, ge=1, description="the sender's outbox sequence number, as on telemetry"
    )


AnyMessage = Annotated[
    TelemetryBatch | VehicleEvent | DeviceStatus | LockerEvent | Grant | CommandAck,
    Field(discriminator="type"),
]


class RouteStop(_Frozen):
    """One call on a dispatched route, in driving order. ``eta`` is when service is planned to start."""

    stop_id: str = Field(min_length=1, max_length=64)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    eta: AwareDatetime
    due: AwareDatetime | None = None
    kind: str = Field(default="delivery", max_length=20)


class Route(Message):
    """A van's route from the hub, on ``fleet/{id}/route``, retained: the newest one is in force.

    Signed like a command (:mod:`protocol.routes`): HMAC-SHA256 over every other field under the
    van's route key, valid from ``issued_at`` to ``expires_at`` (the end of the shift and a margin,
    bounded by :data:`protocol.routes.MAX_ROUTE_LIFETIME`). The van refuses one that is unsigned,
    forged, expired, or not newer than the route in force (so a replayed old route cannot roll
    the plan back), and answers every payload with a :class:`CommandAck` whose ``command_id`` is
    ``route_id`` (``name`` ``"route"``), so the hub learns the driver has it, or why not."""

    type: Literal["route"] = "route"
    device_id: DeviceId
    route_id: UUID
    plan_id: UUID
    stops: tuple[RouteStop, ...] = Field(max_length=1000)
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
