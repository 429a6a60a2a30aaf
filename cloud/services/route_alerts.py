"""Late-stop alerts: a periodic pass over the dispatched plans that stores one ``route_late``
vehicle event per stop predicted late, so ``/api/v1/events`` (and the dashboard's alert list)
shows it with the van's other alerts.

A plan is watched for a day from its dispatch, until one of its re-plans is dispatched. Each (route, stop)
alerts once: the event's ``message_id`` is a UUID5 of both, checked before the insert (one
watcher per hub).

Stored is not yet seen: an open dashboard hears of device events from the broker, but this alert
is born in the hub. So the watcher takes a ``publish`` callable (the composition root hands it the
live feed's fan-out) and calls it, on the event loop, with each new :class:`LateStop` once it is
committed -- a page shows it at once, and the same event again from ``/events`` after a reload.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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


def plans_in_force(session: Session, *, now: datetime) -> list[PlanJob]:
    """Plans dispatched in the last :data:`WATCH_FOR` and not yet replaced by a re-plan: the ones
    late alerts and customer ETAs (:mod:`cloud.services.route_eta`) are judged on."""
    dispatched = list(
        session.scalars(select(PlanJob).where(PlanJob.dispatched_at >= now - WATCH_FOR))
    )
    superseded = {p.parent_id for p in dispatched if p.parent_id is not None}
    return [p for p in dispatched if p.id not in superseded]


@dataclass(frozen=True, slots=True)
class LateStop:
    """One stored ``route_late`` alert, as it is told to open dashboards."""

    vehicle_id: str
    stop_id: str
    late_by_s: int
    plan_id: str
    at: datetime
    lat: float | None
    lon: float | None


def check_late(session: Session, *, now: Callable[[], datetime] = utcnow) -> int:
    """Store an alert for every stop newly predicted late; commit. Returns how many."""
    return len(store_late(session, now=now))


def store_late(session: Session, *, now: Callable[[], datetime] = utcnow) -> list[LateStop]:
    """Store an alert for every stop newly predicted late; commit. Returns the new alerts."""
    made: list[LateStop] = []
    for row in plans_in_force(session, now=now()):
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
            alert = LateStop(
                vehicle_id=e.van_id,
                stop_id=e.stop_id,
                late_by_s=e.late_by,
                plan_id=str(row.id),
                at=now(),
                lat=None if pos is None else pos.location[0],
                lon=None if pos is None else pos.location[1],
            )
            session.add(
                VehicleEventRow(
                    vehicle_id=alert.vehicle_id,
                    seq=0,
                    kind=LATE_KIND,
                    at=alert.at,
                    lat=alert.lat,
                    lon=alert.lon,
                    evidence={
                        "stop_id": alert.stop_id,
                        "late_by_s": alert.late_by_s,
                        "plan_id": alert.plan_id,
                    },
                    message_id=mid,
                )
            )
            made.append(alert)
    session.commit()
    return made


class LateStopWatcher:
    """Runs :func:`check_late` every ``interval_s`` on a worker thread until cancelled, and hands
    each new alert to ``publish`` (if given) on the event loop, after its commit."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        interval_s: float = 30.0,
        publish: Callable[[LateStop], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self.interval_s = interval_s
        self._publish = publish
        self.alerts = 0

    def _pass(self) -> list[LateStop]:
        with self._session_factory() as session:
            return store_late(session)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                made = await asyncio.to_thread(self._pass)
            except Exception:  # one bad pass must not stop the hub; the next one retries
                log.exception("late-stop check failed")
                continue
            self.alerts += len(made)
            if self._publish is None:
                continue
            for alert in made:
                try:
                    self._publish(alert)
                except Exception:  # the alert is stored; a page sees it on its next reload
                    log.exception("could not publish the late stop %s", alert)
