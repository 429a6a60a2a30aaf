"""``/lockers/{id}/compartments/{n}/open`` and ``/lockers/{id}/commands``: remote opening by ops,
signed per locker, sent through the outbox; the locker's answer is stored on the command."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from cloud.api.deps import FleetReader, LockerOperator, OutboxNotifierDep, SessionDep, SettingsDep
from cloud.api.parcel_schemas import CommandPublic, CommandsPublic
from cloud.api.problems import problem_responses
from cloud.services import commands as service

router = APIRouter(prefix="/lockers", tags=["lockers"], responses=problem_responses(401, 403, 422))


@router.post(
    "/{locker_id}/compartments/{n}/open",
    response_model=CommandPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(404),
)
def open_compartment(
    locker_id: str,
    n: Annotated[int, Path(ge=1, le=512)],
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: LockerOperator,
) -> CommandPublic:
    """Queue a signed ``open_compartment`` (expiry ``command_ttl_s``, fresh nonce). 202: the
    locker's answer arrives later; follow it at ``/commands/{command_id}``."""
    row = service.open_compartment(
        session,
        locker_id=locker_id,
        compartment=n,
        master_secret=settings.code_master_secret.get_secret_value().encode(),
        now=datetime.now(UTC),
        ttl=timedelta(seconds=settings.command_ttl_s),
    )
    notify_outbox()
    return CommandPublic.model_validate(row)


@router.get(
    "/{locker_id}/commands", response_model=CommandsPublic, responses=problem_responses(404)
)
def read_commands(
    locker_id: str,
    session: SessionDep,
    caller: FleetReader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CommandsPublic:
    rows, total = service.list_commands(session, locker_id=locker_id, limit=limit, offset=offset)
    return CommandsPublic(data=[CommandPublic.model_validate(r) for r in rows], count=total)


@router.get(
    "/{locker_id}/commands/{command_id}",
    response_model=CommandPublic,
    responses=problem_responses(404),
)
def read_command(
    locker_id: str, command_id: uuid.UUID, session: SessionDep, caller: FleetReader
) -> CommandPublic:
    return CommandPublic.model_validate(
        service.get_command(session, locker_id=locker_id, command_id=command_id)
    )
