"""Read side of lockers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Locker
from cloud.services.parcels import occupied_compartments, occupied_counts


def list_lockers(session: Session) -> list[tuple[Locker, int]]:
    """Every locker with the number of its compartments holding a parcel awaiting pickup."""
    counts = occupied_counts(session)
    lockers = session.scalars(select(Locker).order_by(Locker.id)).all()
    return [(locker, counts.get(locker.id, 0)) for locker in lockers]


def get_locker(session: Session, locker_id: str) -> tuple[Locker, int]:
    locker = session.get(Locker, locker_id)
    if locker is None:
        raise NotFoundError("locker", locker_id)
    return locker, len(occupied_compartments(session, locker_id))
