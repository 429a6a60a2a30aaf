"""``GET /parcels``: the parcel table, filtered and searched. Codes are never part of it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cloud.api.console_schemas import ParcelsPublic
from cloud.api.deps import ParcelReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.api.schemas import ParcelPublic
from cloud.services.parcel_search import search_parcels
from protocol.topics import DEVICE_ID_PATTERN

router = APIRouter(prefix="/parcels", tags=["parcels"], responses=problem_responses(401, 403, 422))


@router.get("", response_model=ParcelsPublic)
def read_parcels(
    session: SessionDep,
    caller: ParcelReader,
    q: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.-]{1,64}$",
            description="a whole parcel id, or part of a locker id",
        ),
    ] = None,
    locker_id: Annotated[str | None, Query(pattern=f"^{DEVICE_ID_PATTERN}$")] = None,
    status: Literal["awaiting_pickup", "picked_up"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> ParcelsPublic:
    rows = search_parcels(session, q=q, locker_id=locker_id, status=status, limit=limit)
    data = [ParcelPublic.model_validate(p) for p in rows]
    return ParcelsPublic(data=data, count=len(data))
