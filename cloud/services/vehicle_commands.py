"""Remote commands to vans: signed here, queued through the transactional outbox, answered by acks.

The hub signs each command with the van's own key (``protocol.commands.derive_command_key`` of the
hub's master secret, vehicle label), valid for a short ``ttl``. The command row and its outbound
message are written in one transaction, so a command is either queued and recorded or neither, and
the dispatcher delivers it even if the broker was down when it was issued. Ingest stores the van's
acks (:class:`~cloud.models.VehicleCommandAck`); the first ack for a command is its outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import OutboundMessage, Vehicle, VehicleCommand, VehicleCommandAck
from protocol.codec import encode
from protocol.commands import ArgValue, derive_command_key, sign_command
from protocol.topics import Channel, DeviceKind, vehicle_topic


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """An issued command and the first ack the van sent for it (None while it is pending)."""

    command: VehicleCommand
    ack: VehicleCommandAck | None


def issue_vehicle_command(
    session: Session,
    *,
    vehicle_id: str,
    name: str,
    args: dict[str, ArgValue],
    ttl: timedelta,
    master_secret: bytes,
    issued_by: str,
    now: Callable[[], datetime] = utcnow,
) -> VehicleCommand:
    """Sign ``name(args)`` for ``vehicle_id``, record it and queue it; commit.

    Raises :class:`NotFoundError` for a vehicle the hub has never heard from. The arguments are
    the van's to judge: it refuses what it cannot use with ``bad_args`` in its ack.
    """
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    issued = now()
    key = derive_command_key(master_secret, vehicle_id, kind=DeviceKind.VEHICLE)
    command = sign_command(
        key=key, device_id=vehicle_id, name=name, args=args, issued_at=issued, ttl=ttl
    )
    row = VehicleCommand(
        command_id=command.command_id,
        vehicle_id=vehicle_id,
        name=name,
        args=dict(command.args),
        issued_at=command.issued_at,
        expires_at=command.expires_at,
        issued_by=issued_by,
    )
    session.add(row)
    session.add(
        OutboundMessage(
            topic=vehicle_topic(vehicle_id, Channel.CMD),
            payload=encode(command),
            qos=1,
            retain=False,
            created_at=issued,
            sent_at=None,
        )
    )
    session.commit()
    return row


def _first_acks(
    session: Session, command_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, VehicleCommandAck]:
    if not command_ids:
        return {}
    acks = session.scalars(
        select(VehicleCommandAck)
        .where(VehicleCommandAck.command_id.in_(command_ids))
        .order_by(VehicleCommandAck.id)
    )
    first: dict[uuid.UUID, VehicleCommandAck] = {}
    for ack in acks:
        first.setdefault(ack.command_id, ack)
    return first


def vehicle_commands(session: Session, *, vehicle_id: str, limit: int) -> list[CommandOutcome]:
    """The newest ``limit`` commands issued to ``vehicle_id``, newest first, with their outcome.
    Raises NotFoundError for an unknown vehicle."""
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    rows = session.scalars(
        select(VehicleCommand)
        .where(VehicleCommand.vehicle_id == vehicle_id)
        .order_by(VehicleCommand.issued_at.desc(), VehicleCommand.command_id)
        .limit(limit)
    ).all()
    acks = _first_acks(session, [r.command_id for r in rows])
    return [CommandOutcome(r, acks.get(r.command_id)) for r in rows]


def vehicle_command(session: Session, *, vehicle_id: str, command_id: uuid.UUID) -> CommandOutcome:
    """One command and its outcome. Raises NotFoundError."""
    row = session.get(VehicleCommand, command_id)
    if row is None or row.vehicle_id != vehicle_id:
        raise NotFoundError("command", command_id)
    return CommandOutcome(row, _first_acks(session, [command_id]).get(command_id))
