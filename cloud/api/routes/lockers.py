"""``/lockers``: which lockers exist, whether they are online, how full they are."""

from __future__ import annotations

from fastapi import APIRouter

from cloud.api.deps import FleetReader, SessionDep
from cloud.api.problems import problem_responses
from cloud.api.schemas import LockerPublic, LockersPublic
from cloud.models import Locker
from cloud.services import lockers as service

router = APIRouter(prefix="/lockers", tags=["lockers"], responses=problem_responses(401, 403, 422))


def _public(locker: Locker, occupied: int) -> LockerPublic:
    return LockerPublic(
        id=locker.id,
        online=locker.online,
        last_seen=locker.last_seen,
        version=locker.version,
        compartments=locker.compartments,
        occupied=occupied,
    )


@router.get("", response_model=LockersPublic)
def read_lockers(session: SessionDep, caller: FleetReader) -> LockersPublic:
    data = [_public(locker, occupied) for locker, occupied in service.list_lockers(session)]
    return LockersPublic(data=data, count=len(data))


@router.get("/{locker_id}", response_model=LockerPublic, responses=problem_responses(404))
def read_locker(locker_id: str, session: SessionDep, caller: FleetReader) -> LockerPublic:
    return _public(*service.get_locker(session, locker_id))
