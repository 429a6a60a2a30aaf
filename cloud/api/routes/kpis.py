"""``GET /api/v1/kpis``: delivery KPIs per UTC day, per depot and per van, and per locker."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from cloud.api.deps import FleetReader, SessionDep, SettingsDep
from cloud.api.kpi_schemas import KpiRowPublic, KpisPublic, LockerKpiPublic
from cloud.api.problems import problem_responses
from cloud.services.kpi_reads import MAX_DAYS, read_kpis

router = APIRouter(tags=["kpis"], responses=problem_responses(401, 403, 404, 422))


@router.get("/kpis", response_model=KpisPublic, response_model_by_alias=True)
def read(
    session: SessionDep,
    settings: SettingsDep,
    caller: FleetReader,
    first: Annotated[dt.date, Query(alias="from", description="first UTC day")],
    last: Annotated[
        dt.date | None,
        Query(
            alias="to", description=f"last UTC day, inclusive (default: 'from'); {MAX_DAYS} at most"
        ),
    ] = None,
    vehicle_id: Annotated[
        str | None, Query(max_length=64, description="one van's rows only")
    ] = None,
    depot: Annotated[str | None, Query(max_length=64, description="one depot's rows only")] = None,
) -> KpisPublic:
    """On-time %, first-attempt success %, deliveries per hour, km and CO2 per parcel, locker
    utilisation and dwell time; rows for each depot (``vehicle_id`` null) and each of its vans."""
    report = read_kpis(
        session,
        first=first,
        last=last or first,
        fleet=settings.fleet,
        rules=settings.trips,
        now=dt.datetime.now(dt.UTC),
        vehicle_id=vehicle_id,
        depot=depot,
    )
    return KpisPublic(
        first=first,
        last=last or first,
        data=[KpiRowPublic.model_validate(r) for r in report.rows],
        count=len(report.rows),
        lockers=[LockerKpiPublic.model_validate(lk) for lk in report.lockers],
    )
