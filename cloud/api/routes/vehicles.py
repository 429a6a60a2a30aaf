"""``/vehicles``: where the fleet is and where it has been."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from cloud.api.deps import FleetReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.api.schemas import (
    PositionPublic,
    PositionsPublic,
    VehiclePublic,
    VehiclesPublic,
    VehicleStatusPublic,
)
from cloud.services import vehicles as service
from cloud.services.errors import InvalidRequestError

router = APIRouter(
    prefix="/vehicles", tags=["vehicles"], responses=problem_responses(401, 403, 422)
)


@router.get("", response_model=VehiclesPublic)
def read_vehicles(session: SessionDep, caller: FleetReader) -> VehiclesPublic:
    rows = service.list_vehicles(session)
    data = [
        VehiclePublic(
            id=v.id,
            online=v.online,
            last_seen=v.last_seen,
            version=v.version,
            last_position=PositionPublic.model_validate(p) if p is not None else None,
            status=VehicleStatusPublic.model_validate(v.last_status) if v.last_status else None,
        )
        for v, p in rows
    ]
    return VehiclesPublic(data=data, count=len(data))


@router.get(
    "/{vehicle_id}/positions",
    response_model=PositionsPublic,
    responses=problem_responses(404),
)
def read_positions(
    vehicle_id: str,
    session: SessionDep,
    caller: FleetReader,
    since: Annotated[AwareDatetime | None, Query(description="inclusive")] = None,
    until: Annotated[AwareDatetime | None, Query(description="exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> PositionsPublic:
    """Positions of one vehicle, oldest first; page with ``since`` = the last ``t`` seen."""
    if since is not None and until is not None and since > until:
        raise InvalidRequestError("'since' is after 'until'", loc=("query", "since"))
    rows = service.positions(session, vehicle_id=vehicle_id, since=since, until=until, limit=limit)
    data = [PositionPublic.model_validate(r) for r in rows]
    return PositionsPublic(data=data, count=len(data))
