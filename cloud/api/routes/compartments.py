"""``/lockers/{id}/compartments``: the compartment grid of one locker."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.console_schemas import CompartmentPublic, CompartmentsPublic
from cloud.api.deps import FleetReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.services.compartments import compartment_grid

router = APIRouter(prefix="/lockers", tags=["lockers"], responses=problem_responses(401, 403, 422))


@router.get(
    "/{locker_id}/compartments",
    response_model=CompartmentsPublic,
    responses=problem_responses(404),
)
def read_compartments(
    locker_id: str, session: SessionDep, caller: FleetReader
) -> CompartmentsPublic:
    data = [
        CompartmentPublic(
            number=c.number,
            occupied=c.occupied,
            parcel_id=c.parcel_id,
            door=c.door,
            alarm=c.alarm,
            last_event_at=c.last_event_at,
        )
        for c in compartment_grid(session, locker_id)
    ]
    return CompartmentsPublic(locker_id=locker_id, data=data, count=len(data))
