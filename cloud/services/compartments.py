"""A locker's compartment grid: which hold a parcel, whether each door is open, which alarm.

Door state and alarms come from the locker's own events (the newest per compartment wins); a
compartment that has reported nothing yet is ``unknown``, not guessed shut.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Locker, LockerEventRow, Parcel, ParcelStatus

DOOR_KINDS = {"door_opened": "open", "door_closed": "closed", "door_forced": "open"}
ALARM_KINDS = frozenset({"door_left_open", "door_forced", "unlock_not_opened"})
CLEARS_ALARM = frozenset({"door_closed", "picked_up", "deposited", "returned"})


@dataclass(frozen=True, slots=True)
class Compartment:
    number: int
    occupied: bool
    parcel_id: uuid.UUID | None
    door: Literal["open", "closed", "unknown"]
    alarm: str | None
    last_event_at: datetime | None


def compartment_grid(session: Session, locker_id: str) -> list[Compartment]:
    """Every compartment of ``locker_id``, 1..n. Raises :class:`NotFoundError` for an unknown id."""
    locker = session.get(Locker, locker_id)
    if locker is None:
        raise NotFoundError("locker", locker_id)
    parcels = {
        p.compartment: p.id
        for p in session.scalars(
            select(Parcel).where(
                Parcel.locker_id == locker_id, Parcel.status == ParcelStatus.DEPOSITED
            )
        )
    }
    door: dict[int, Literal["open", "closed"]] = {}
    alarm: dict[int, str | None] = {}
    last: dict[int, datetime] = {}
    # The newest door and alarm facts per compartment: one pass over each compartment's recent
    # events, oldest first, bounded so a chatty locker cannot make the grid slow.
    recent = (
        select(LockerEventRow)
        .where(LockerEventRow.locker_id == locker_id, LockerEventRow.compartment.is_not(None))
        .order_by(LockerEventRow.at.desc(), LockerEventRow.id.desc())
        .limit(max(200, 20 * max(locker.compartments, 1)))
    )
    for event in reversed(session.scalars(recent).all()):
        n = event.compartment
        assert n is not None
        last[n] = event.at
        if event.kind in DOOR_KINDS:
            door[n] = "open" if DOOR_KINDS[event.kind] == "open" else "closed"
        if event.kind in ALARM_KINDS:
            alarm[n] = event.kind
        elif event.kind in CLEARS_ALARM:
            alarm[n] = None
    return [
        Compartment(
            number=n,
            occupied=n in parcels,
            parcel_id=parcels.get(n),
            door=door.get(n, "unknown"),
            alarm=alarm.get(n),
            last_event_at=last.get(n),
        )
        for n in range(1, locker.compartments + 1)
    ]
