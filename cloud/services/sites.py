"""Sites: where each depot stands and when it is open, the vans based there, where lockers stand.

The ``[fleet]`` setting names depots for the KPIs; planning a day needs more (coordinates, hours,
capacities, shifts), and ops change those without restarting the hub, so they live in the
database and are set through ``PUT /depots/...`` (:mod:`cloud.api.routes.sites`). Times are
seconds from midnight UTC of the plan's day, up to 48 h so a shift may run past midnight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import DepotSite, DepotVan, LockerSite
from cloud.services.errors import InvalidRequestError

#: Latest time of day a shift or an opening may end: the next day's midnight plus a day.
MAX_TIME_S = 2 * 86_400


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class DepotView:
    """A depot with the vans based there and the lockers it fills."""

    depot: DepotSite
    vans: tuple[DepotVan, ...]
    lockers: tuple[LockerSite, ...]


def _check_span(what: str, start: int, end: int) -> None:
    if not 0 <= start < end <= MAX_TIME_S:
        raise InvalidRequestError(
            f"{what} must satisfy 0 <= start < end <= {MAX_TIME_S} s, got {start}..{end}",
            loc=("body",),
        )


def put_depot(
    session: Session,
    *,
    depot_id: str,
    lat: float,
    lon: float,
    opens_s: int,
    closes_s: int,
    now: Callable[[], datetime] = utcnow,
) -> DepotSite:
    """Create or replace a depot's site; commit."""
    _check_span(f"depot {depot_id}'s hours", opens_s, closes_s)
    row = session.get(DepotSite, depot_id) or DepotSite(id=depot_id)
    row.lat, row.lon, row.opens_s, row.closes_s = lat, lon, opens_s, closes_s
    row.updated_at = now()
    session.add(row)
    session.commit()
    return row


def _depot(session: Session, depot_id: str) -> DepotSite:
    row = session.get(DepotSite, depot_id)
    if row is None:
        raise NotFoundError("depot", depot_id)
    return row


def put_van(
    session: Session,
    *,
    depot_id: str,
    vehicle_id: str,
    type: str,
    capacity_parcels: int,
    capacity_volume_l: int,
    capacity_weight_kg: int,
    shift_start_s: int,
    shift_end_s: int,
    now: Callable[[], datetime] = utcnow,
) -> DepotVan:
    """Base a van at a depot (moving it from another one) with its capacity and shift; commit."""
    _depot(session, depot_id)
    _check_span(f"van {vehicle_id}'s shift", shift_start_s, shift_end_s)
    row = session.get(DepotVan, vehicle_id) or DepotVan(vehicle_id=vehicle_id)
    row.depot_id, row.type = depot_id, type
    row.capacity_parcels = capacity_parcels
    row.capacity_volume_l, row.capacity_weight_kg = capacity_volume_l, capacity_weight_kg
    row.shift_start_s, row.shift_end_s = shift_start_s, shift_end_s
    row.updated_at = now()
    session.add(row)
    session.commit()
    return row


def remove_van(session: Session, *, depot_id: str, vehicle_id: str) -> None:
    """Take a van off a depot's roster (it is planned no more); commit."""
    row = session.get(DepotVan, vehicle_id)
    if row is None or row.depot_id != depot_id:
        raise NotFoundError("van of depot " + depot_id, vehicle_id)
    session.delete(row)
    session.commit()


def put_locker(
    session: Session,
    *,
    depot_id: str,
    locker_id: str,
    lat: float,
    lon: float,
    now: Callable[[], datetime] = utcnow,
) -> LockerSite:
    """Where a locker stands and which depot fills it; commit."""
    _depot(session, depot_id)
    row = session.get(LockerSite, locker_id) or LockerSite(locker_id=locker_id)
    row.depot_id, row.lat, row.lon, row.updated_at = depot_id, lat, lon, now()
    session.add(row)
    session.commit()
    return row


def get_depot(session: Session, depot_id: str) -> DepotView:
    """Raises NotFoundError for a depot without a site."""
    depot = _depot(session, depot_id)
    vans = session.scalars(
        select(DepotVan).where(DepotVan.depot_id == depot_id).order_by(DepotVan.vehicle_id)
    )
    lockers = session.scalars(
        select(LockerSite).where(LockerSite.depot_id == depot_id).order_by(LockerSite.locker_id)
    )
    return DepotView(depot, tuple(vans), tuple(lockers))


def list_depots(session: Session) -> list[DepotView]:
    ids = list(session.scalars(select(DepotSite.id).order_by(DepotSite.id)))
    return [get_depot(session, i) for i in ids]


def depot_of_van(session: Session, vehicle_id: str) -> str | None:
    row = session.get(DepotVan, vehicle_id)
    return None if row is None else row.depot_id
