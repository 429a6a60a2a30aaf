"""``/events``: what vans and lockers reported (alarms, driving events, doors), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from cloud.api.console_schemas import EventPublic, EventsPublic
from cloud.api.deps import FleetReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.services import events as service

router = APIRouter(prefix="/events", tags=["events"], responses=problem_responses(401, 403, 422))


@router.get("", response_model=EventsPublic)
def read_events(
    session: SessionDep,
    caller: FleetReader,
    since: Annotated[AwareDatetime | None, Query(description="inclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    alerts_only: Annotated[bool, Query(description="only kinds rated warning or worse")] = False,
) -> EventsPublic:
    rows = service.list_events(session, since=since, limit=limit, alerts_only=alerts_only)
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
