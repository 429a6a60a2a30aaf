"""``/vehicles/{vehicle_id}/commands``: send a van a signed command (ops only), read the answers."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, status

from cloud.api.deps import (
    FleetReader,
    OutboxNotifierDep,
    SessionDep,
    SettingsDep,
    VehicleCommander,
)
from cloud.api.problems import problem_responses
from cloud.api.schemas import (
    CommandAckPublic,
    VehicleCommandCreate,
    VehicleCommandPublic,
    VehicleCommandsPublic,
)
from cloud.services import vehicle_commands as service

router = APIRouter(
    prefix="/vehicles", tags=["vehicles"], responses=problem_responses(401, 403, 404, 422)
)


def _public(outcome: service.CommandOutcome) -> VehicleCommandPublic:
    c, ack = outcome.command, outcome.ack
    return VehicleCommandPublic(
        command_id=c.command_id,
        vehicle_id=c.vehicle_id,
        name=c.name,
        args=c.args,
        issued_at=c.issued_at,
        expires_at=c.expires_at,
        status="pending" if ack is None else "done" if ack.ok else "refused",
        ack=None if ack is None else CommandAckPublic.model_validate(ack),
    )


@router.post(
    "/{vehicle_id}/commands",
    response_model=VehicleCommandPublic,
    status_code=status.HTTP_202_ACCEPTED,
)
def send_command(
    vehicle_id: str,
    body: VehicleCommandCreate,
    session: SessionDep,
    settings: SettingsDep,
    notify_outbox: OutboxNotifierDep,
    caller: VehicleCommander,
) -> VehicleCommandPublic:
    """Sign the command with the van's key and queue it. 202: the van answers asynchronously;
    follow ``GET .../commands/{command_id}`` until its status is ``done`` or ``refused``."""
    row = service.issue_vehicle_command(
        session,
        vehicle_id=vehicle_id,
        name=body.name,
        args=body.args,
        ttl=timedelta(seconds=body.ttl_s),
        master_secret=settings.code_master_secret.get_secret_value().encode(),
        issued_by=caller.role,
    )
    notify_outbox()
    return _public(service.CommandOutcome(row, None))


@router.get("/{vehicle_id}/commands", response_model=VehicleCommandsPublic)
def read_commands(
    vehicle_id: str,
    session: SessionDep,
    caller: FleetReader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> VehicleCommandsPublic:
    """The van's newest commands first, each with the van's answer once it came."""
    data = [
        _public(o) for o in service.vehicle_commands(session, vehicle_id=vehicle_id, limit=limit)
    ]
    return VehicleCommandsPublic(data=data, count=len(data))


@router.get("/{vehicle_id}/commands/{command_id}", response_model=VehicleCommandPublic)
def read_command(
    vehicle_id: str, command_id: uuid.UUID, session: SessionDep, caller: FleetReader
) -> VehicleCommandPublic:
    return _public(service.vehicle_command(session, vehicle_id=vehicle_id, command_id=command_id))
