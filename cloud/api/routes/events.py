"""``/events``: what vans and lockers reported (alarms, driving events, doors), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from cloud.api.console_schemas import EventPublic, EventsPublic
from cloud.api.deps import FleetReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.services import events as service
from cloud.services.errors import InvalidRequestError
from protocol.topics import DEVICE_ID_PATTERN

router = APIRouter(prefix="/events", tags=["events"], responses=problem_responses(401, 403, 422))


@router.get("", response_model=EventsPublic)
def read_events(
    session: SessionDep,
    caller: FleetReader,
    since: Annotated[AwareDatetime | None, Query(description="inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    alerts_only: Annotated[bool, Query(description="only kinds rated warning or worse")] = False,
    until: Annotated[AwareDatetime | None, Query(description="exclusive")] = None,
    device_id: Annotated[str | None, Query(pattern=f"^{DEVICE_ID_PATTERN}$")] = None,
    compartment: Annotated[
        int | None, Query(ge=1, le=512, description="a locker's compartment (a parcel's history)")
    ] = None,
) -> EventsPublic:
    if since is not None and until is not None and since > until:
        raise InvalidRequestError("'since' is after 'until'", loc=("query", "since"))
    rows = service.list_events(
        session,
        since=since,
        until=until,
        limit=limit,
        alerts_only=alerts_only,
        device_id=device_id,
        compartment=compartment,
    )
    data = [
        EventPublic(
            source=e.source,
            device_id=e.device_id,
            kind=e.kind,
            severity=e.severity,
            at=e.at,
            compartment=e.compartment,
            reason=e.reason,
            lat=e.lat,
            lon=e.lon,
            evidence=e.evidence or {},
        )
        for e in rows
    ]
    return EventsPublic(data=data, count=len(data))
