"""Signed remote commands to lockers, sent through the transactional outbox, with their answers.

The command is signed under the locker's own command key (:func:`protocol.commands.derive_command_key`)
with an expiry and a nonce, written to ``locker_commands`` and to the outbox in one transaction.
The locker answers with a ``command_executed`` or ``command_refused`` event, which the parcel flows
(:mod:`cloud.services.locker_flows`) store on the command row.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Locker, LockerCommand, OutboundMessage
from cloud.services.errors import InvalidRequestError
from protocol.codec import encode
from protocol.commands import ArgValue, derive_command_key, sign_command
from protocol.topics import Channel, locker_topic


class CommandStatus:
    SENT = "sent"
    EXECUTED = "executed"
    REFUSED = "refused"


def send_command(
    session: Session,
    *,
    locker_id: str,
    name: str,
    args: dict[str, ArgValue],
    master_secret: bytes,
    now: datetime,
    ttl: timedelta,
) -> LockerCommand:
    """Sign ``name(args)`` for ``locker_id`` and queue it; the caller commits."""
    command = sign_command(
        key=derive_command_key(master_secret, locker_id),
        device_id=locker_id,
        name=name,
        args=args,
        issued_at=now,
        ttl=ttl,
    )
    row = LockerCommand(
        command_id=command.command_id,
        locker_id=locker_id,
        name=name,
        args=dict(args),
        issued_at=command.issued_at,
        expires_at=command.expires_at,
        nonce=command.nonce,
        status=CommandStatus.SENT,
        reason="",
        acked_at=None,
    )
    session.add(row)
    session.add(
        OutboundMessage(
            topic=locker_topic(locker_id, Channel.CMD),
            payload=encode(command),
            qos=1,
            retain=False,
            created_at=now,
            sent_at=None,
        )
    )
    return row


def open_compartment(
    session: Session,
    *,
    locker_id: str,
    compartment: int,
    master_secret: bytes,
    now: datetime,
    ttl: timedelta,
) -> LockerCommand:
    """Queue a signed ``open_compartment`` and commit. 404 for an unknown locker, 422 for a
    compartment it does not have."""
    locker = session.get(Locker, locker_id)
    if locker is None:
        raise NotFoundError("locker", locker_id)
    if not 1 <= compartment <= locker.compartments:
        raise InvalidRequestError(
            f"locker {locker_id} has compartments 1..{locker.compartments}, not {compartment}",
            loc=("path", "n"),
        )
    row = send_command(
        session,
        locker_id=locker_id,
        name="open_compartment",
        args={"compartment": compartment},
        master_secret=master_secret,
        now=now,
        ttl=ttl,
    )
    session.commit()
    return row


def list_commands(
    session: Session, *, locker_id: str, limit: int, offset: int
) -> tuple[list[LockerCommand], int]:
    if session.get(Locker, locker_id) is None:
        raise NotFoundError("locker", locker_id)
    where = LockerCommand.locker_id == locker_id
    total = session.scalar(select(func.count()).select_from(LockerCommand).where(where)) or 0
    rows = session.scalars(
        select(LockerCommand)
        .where(where)
        .order_by(LockerCommand.issued_at.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def get_command(session: Session, *, locker_id: str, command_id: uuid.UUID) -> LockerCommand:
    row = session.get(LockerCommand, command_id)
    if row is None or row.locker_id != locker_id:
        raise NotFoundError("command", command_id)
    return row
