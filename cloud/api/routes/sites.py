"""``/depots``: where depots and lockers stand, depot hours and the vans based there (ops write,
viewer reads) -- what ``POST /plans/from-hub`` plans a day from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from cloud.api.deps import FleetReader, SessionDep, VehicleCommander
from cloud.api.problems import problem_responses
from cloud.api.site_schemas import (
    DepotPublic,
    DepotPut,
    DepotsPublic,
    DepotVanPublic,
    DepotVanPut,
    LockerSitePublic,
    LockerSitePut,
)
from cloud.fleet import DEPOT_NAME_PATTERN
from cloud.services import sites as service

router = APIRouter(
    prefix="/depots", tags=["sites"], responses=problem_responses(401, 403, 404, 422)
)

Name = Annotated[str, Path(pattern=DEPOT_NAME_PATTERN)]


def _public(view: service.DepotView) -> DepotPublic:
    d = view.depot
    return DepotPublic(
        id=d.id,
        lat=d.lat,
        lon=d.lon,
        opens_s=d.opens_s,
        closes_s=d.closes_s,
        updated_at=d.updated_at,
        vans=[DepotVanPublic.model_validate(v, from_attributes=True) for v in view.vans],
        lockers=[LockerSitePublic.model_validate(lk, from_attributes=True) for lk in view.lockers],
    )


@router.get("", response_model=DepotsPublic)
def read_depots(session: SessionDep, caller: FleetReader) -> DepotsPublic:
    data = [_public(v) for v in service.list_depots(session)]
    return DepotsPublic(data=data, count=len(data))


@router.get("/{depot_id}", response_model=DepotPublic)
def read_depot(depot_id: Name, session: SessionDep, caller: FleetReader) -> DepotPublic:
    return _public(service.get_depot(session, depot_id))


@router.put("/{depot_id}", response_model=DepotPublic)
def put_depot(
    depot_id: Name, body: DepotPut, session: SessionDep, caller: VehicleCommander
) -> DepotPublic:
    """Create or replace the depot's site and opening hours."""
    service.put_depot(session, depot_id=depot_id, **body.model_dump())
    return _public(service.get_depot(session, depot_id))


@router.put("/{depot_id}/vans/{vehicle_id}", response_model=DepotVanPublic)
def put_depot_van(
    depot_id: Name,
    vehicle_id: Name,
    body: DepotVanPut,
    session: SessionDep,
    caller: VehicleCommander,
) -> DepotVanPublic:
    """Base a van here (moving it from another depot) with its capacity, shift and type."""
    row = service.put_van(session, depot_id=depot_id, vehicle_id=vehicle_id, **body.model_dump())
    return DepotVanPublic.model_validate(row, from_attributes=True)


@router.delete(
    "/{depot_id}/vans/{vehicle_id}", status_code=status.HTTP_204_NO_CONTENT, response_model=None
)
def delete_depot_van(
    depot_id: Name, vehicle_id: Name, session: SessionDep, caller: VehicleCommander
) -> Response:
    """Take the van off this depot's roster: it is planned no more."""
    service.remove_van(session, depot_id=depot_id, vehicle_id=vehicle_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/{depot_id}/lockers/{locker_id}", response_model=LockerSitePublic)
def put_locker_site(
    depot_id: Name,
    locker_id: Name,
    body: LockerSitePut,
    session: SessionDep,
    caller: VehicleCommander,
) -> LockerSitePublic:
    """Where the locker stands; this depot's vans fill it."""
    row = service.put_locker(session, depot_id=depot_id, locker_id=locker_id, **body.model_dump())
    return LockerSitePublic.model_validate(row, from_attributes=True)
