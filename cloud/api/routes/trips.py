"""``/vehicles/{id}/trips``, ``/stops``, ``/distance``: derived on read from positions and ignition
(a whole closed day read back as the KPI job stored it); ``/track``: the fixes as columns.

Windows are ``[from, to)`` with tz-aware times (days are UTC dates for ``/distance``); trips and stops
crossing a window's edge are cut there. Pages are ``offset``/``limit`` over the window's results,
because a trip only exists once the whole window is analysed (see :mod:`cloud.services.tracks`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime

from cloud.api.deps import FleetReader, SessionDep, SettingsDep
from cloud.api.problems import problem_responses
from cloud.api.trip_schemas import (
    DayDistancePublic,
    DayDistancesPublic,
    StopPublic,
    StopsPublic,
    TrackColumnsPublic,
    TripPublic,
    TripsPublic,
)
from cloud.services import tracks as service
from cloud.services.trips import Journey

router = APIRouter(
    prefix="/vehicles", tags=["trips"], responses=problem_responses(401, 403, 404, 422)
)

From = Annotated[
    AwareDatetime, Query(alias="from", description="window start, inclusive, with a time zone")
]
To = Annotated[
    AwareDatetime,
    Query(
        alias="to", description=f"window end, exclusive; at most {service.MAX_WINDOW.days} days on"
    ),
]
Offset = Annotated[int, Query(ge=0, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _journey(
    vehicle_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: FleetReader,
    since: From,
    until: To,
) -> Journey:
    """The window's trips and stops, for the routes that page through one or the other."""
    return service.journey(
        session, vehicle_id=vehicle_id, since=since, until=until, rules=settings.trips
    )


JourneyDep = Annotated[Journey, Depends(_journey)]


@router.get("/{vehicle_id}/trips", response_model=TripsPublic)
def read_trips(found: JourneyDep, offset: Offset = 0, limit: Limit = 100) -> TripsPublic:
    """Trips of one vehicle in the window, oldest first, with the distance of all of them."""
    page = found.trips[offset : offset + limit]
    return TripsPublic(
        data=[TripPublic.model_validate(t) for t in page],
        count=len(found.trips),
        distance_m=found.distance_m,
    )


@router.get("/{vehicle_id}/stops", response_model=StopsPublic)
def read_stops(found: JourneyDep, offset: Offset = 0, limit: Limit = 100) -> StopsPublic:
    """Stops of one vehicle in the window, oldest first."""
    page = found.stops[offset : offset + limit]
    return StopsPublic(data=[StopPublic.model_validate(s) for s in page], count=len(found.stops))


@router.get("/{vehicle_id}/distance", response_model=DayDistancesPublic)
def read_distance(
    vehicle_id: str,
    session: SessionDep,
    settings: SettingsDep,
    caller: FleetReader,
    first: Annotated[dt.date, Query(alias="from", description="first UTC day")],
    last: Annotated[
        dt.date | None,
        Query(
            alias="to",
            description=f"last UTC day, inclusive (default: 'from'); {service.MAX_DAYS} days at most",
        ),
    ] = None,
) -> DayDistancesPublic:
    """Distance driven per UTC day: the sum of that day's trips."""
    days = service.daily_distances(
        session, vehicle_id=vehicle_id, first=first, last=last or first, rules=settings.trips
    )
    data = [DayDistancePublic.model_validate(d) for d in days]
    return DayDistancesPublic(data=data, count=len(data))


@router.get(
    "/{vehicle_id}/track",
    response_model=None,
    responses={200: {"model": TrackColumnsPublic, "description": "the window's fixes"}},
)
def read_track(
    vehicle_id: str,
    session: SessionDep,
    caller: FleetReader,
    since: From,
    until: Annotated[
        AwareDatetime,
        Query(
            alias="to",
            description=f"window end, exclusive; at most {service.MAX_TRACK_WINDOW.days} day on",
        ),
    ],
) -> Response:
    """A vehicle's fixes in the window as columns (``t``, ``lat``, ``lon``), for drawing a day.

    Encoded by orjson straight from the columns the database hands over: no object per fix.
    """
    found = service.track(session, vehicle_id=vehicle_id, since=since, until=until)
    body = {
        "vehicle_id": vehicle_id,
        "count": len(found),
        "t": found.ts,
        "lat": found.lat,
        "lon": found.lon,
    }
    return Response(content=orjson.dumps(body), media_type="application/json")
