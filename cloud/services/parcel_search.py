"""Finding parcels for the dashboard's table: by locker, status, or a search text."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Parcel


def search_parcels(
    session: Session,
    *,
    q: str | None,
    locker_id: str | None,
    status: str | None,
    limit: int,
) -> list[Parcel]:
    """Newest first. ``q`` is a whole parcel id, or part of a locker id (case-insensitive)."""
    query = select(Parcel).order_by(Parcel.created_at.desc(), Parcel.id).limit(limit)
    if locker_id is not None:
        query = query.where(Parcel.locker_id == locker_id)
    if status is not None:
        query = query.where(Parcel.status == status)
    if q:
        try:
            query = query.where(Parcel.id == uuid.UUID(q.strip()))
        except ValueError:
            escaped = q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Parcel.locker_id.ilike(f"%{escaped}%", escape="\\"))
    return list(session.scalars(query))
