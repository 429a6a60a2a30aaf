"""Read side of vehicles and their positions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import PositionRow, Vehicle


def list_vehicles(session: Session) -> list[tuple[Vehicle, PositionRow | None]]:
    """Every vehicle with its newest position.

    One indexed query per vehicle (``ix_positions_vehicle_t``): cheap for a fleet of hundreds, and
    portable; a fleet of thousands wants a ``last_position`` column or a lateral join instead.
    """
    vehicles = session.scalars(select(Vehicle).order_by(Vehicle.id)).all()
    return [(v, _last_position(session, v.id)) for v in vehicles]


def _last_position(session: Session, vehicle_id: str) -> PositionRow | None:
    return session.scalars(
        select(PositionRow)
        .where(PositionRow.vehicle_id == vehicle_id)
        .order_by(PositionRow.t.desc(), PositionRow.id.desc())
        .limit(1)
    ).first()


def positions(
    session: Session,
    *,
    vehicle_id: str,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> Sequence[PositionRow]:
    """Positions of one vehicle in ``[since, until)``, oldest first. Raises NotFoundError."""
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    query = select(PositionRow).where(PositionRow.vehicle_id == vehicle_id)
    if since is not None:
        query = query.where(PositionRow.t >= since)
    if until is not None:
        query = query.where(PositionRow.t < until)
    return session.scalars(query.order_by(PositionRow.t, PositionRow.id).limit(limit)).all()
