"""Late-stop alerts: a periodic pass over the dispatched plans that stores one ``route_late``
vehicle event per stop predicted late, so ``/api/v1/events`` (and the dashboard's alert list)
shows it with the van's other alerts.

A plan is watched for a day from its dispatch, until one of its re-plans is dispatched. Each (route, stop)
alerts once: the event's ``message_id`` is a UUID5 of both, checked before the insert (one
watcher per hub).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import PlanJob, Vehicle, VehicleEventRow
from cloud.services import plan_jobs

log = logging.getLogger(__name__)

LATE_KIND = "route_late"
#: A plan is a day's work: older dispatches are history, not something to alert on.
WATCH_FOR = timedelta(hours=24)
_NS = uuid.UUID("6d1f3f52-8f0c-4c59-9a8e-2b1f0d7c1e44")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _watched(session: Session, *, now: datetime) -> list[PlanJob]:
    """Plans dispatched in the last :data:`WATCH_FOR` and not yet replaced by a re-plan."""
    dispatched = list(
        session.scalars(select(PlanJob).where(PlanJob.dispatched_at >= now - WATCH_FOR))
    )
    superseded = {p.parent_id for p in dispatched if p.parent_id is not None}
    return [p for p in dispatched if p.id not in superseded]


def check_late(session: Session, *, now: Callable[[], datetime] = utcnow) -> int:
    """Store an alert for every stop newly predicted late; commit. Returns how many."""
    made = 0
    for row in _watched(session, now=now()):
        seen = plan_jobs.progress(session, row=row, now=now)
        if seen is None:
            continue
        route_of = {r.dispatch.vehicle_id: r for r in seen.routes}
        late = [e for e in seen.etas if e.late and e.van_id in route_of]
        ids = {
            (e.van_id, e.stop_id): uuid.uuid5(
                _NS, f"{route_of[e.van_id].dispatch.route_id}/{e.stop_id}"
            )
            for e in late
        }
        known = set(
            session.scalars(
                select(VehicleEventRow.message_id).where(
                    VehicleEventRow.message_id.in_(list(ids.values()))
                )
            )
        )
        for e in late:
            mid = ids[(e.van_id, e.stop_id)]
            if mid in known or session.get(Vehicle, e.van_id) is None:
                continue
            pos = route_of[e.van_id].position
            session.add(
                VehicleEventRow(
                    vehicle_id=e.van_id,
                    seq=0,
                    kind=LATE_KIND,
                    at=now(),
                    lat=None if pos is None else pos.location[0],
                    lon=None if pos is None else pos.location[1],
                    evidence={
                        "stop_id": e.stop_id,
                        "late_by_s": e.late_by,
                        "plan_id": str(row.id),
                    },
                    message_id=mid,
                )
            )
            made += 1
    session.commit()
    return made


class LateStopWatcher:
    """Runs :func:`check_late` every ``interval_s`` on a worker thread until cancelled."""

    def __init__(self, *, session_factory: sessionmaker[Session], interval_s: float = 30.0) -> None:
        self._session_factory = session_factory
        self.interval_s = interval_s
        self.alerts = 0

    def _pass(self) -> int:
        with self._session_factory() as session:
            return check_late(session)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.alerts += await asyncio.to_thread(self._pass)
            except Exception:  # one bad pass must not stop the hub; the next one retries
                log.exception("late-stop check failed")
