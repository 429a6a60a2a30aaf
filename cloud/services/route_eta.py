"""A parcel's ETA from the route it is on: the dispatched plan's projected arrival at its stop,
refreshed from the van's live position, and how many stops the van makes before it.

A parcel is on a route when a dispatched route (``plan_dispatches``) holds a stop named for it:
the stop id is the parcel's id or its ``reference`` (home deliveries), or its locker's id (a
locker stop delivers every parcel for that locker). Only plans dispatched in the last day and not
replaced by a dispatched re-plan count, as for the late-stop alerts
(:mod:`cloud.services.route_alerts`); with several candidates, the route of the parcel's van wins,
then the newest dispatch. The arrival is :func:`cloud.services.plan_jobs.progress`'s refreshed ETA
when the van has reported a position on the plan's day, else the ETA planned at dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import Parcel, PlanDispatch, PlanJob
from cloud.services import plan_jobs
from cloud.services.route_alerts import plans_in_force


@dataclass(frozen=True, slots=True)
class RouteEta:
    at: datetime
    stops_before: int
    refreshed: bool  # True: from the van's live position; False: as planned at dispatch
    from_position_at: datetime | None


def _stop_names(parcel: Parcel) -> set[str]:
    names = {str(parcel.id)}
    if parcel.reference:
        names.add(parcel.reference)
    if parcel.locker_id:
        names.add(parcel.locker_id)
    return names


def _candidates(session: Session, *, parcel: Parcel, now: datetime) -> list[PlanDispatch]:
    """Routes of live plans that hold one of the parcel's stop names, best first."""
    live = [p.id for p in plans_in_force(session, now=now)]
    if not live:
        return []
    names = _stop_names(parcel)
    routes = [
        d
        for d in session.scalars(select(PlanDispatch).where(PlanDispatch.plan_id.in_(live)))
        if any(s["stop_id"] in names for s in d.stops)
    ]
    return sorted(routes, key=lambda d: (d.vehicle_id != parcel.vehicle_id, -d.sent_at.timestamp()))


def route_eta(session: Session, *, parcel: Parcel, now: datetime) -> RouteEta | None:
    """The ETA of ``parcel``'s stop on its dispatched route, or None when it is on none (or the
    van has been there already)."""
    names = _stop_names(parcel)
    for dispatch in _candidates(session, parcel=parcel, now=now):
        plan = session.get(PlanJob, dispatch.plan_id)
        if plan is None:
            continue
        seen = plan_jobs.progress(session, row=plan, now=lambda: now)
        if seen is None:
            continue
        origin = plan_jobs.day_start(date.fromisoformat(plan.options["day"]))
        done = {s for r in seen.routes for s in r.completed}
        ids = [s["stop_id"] for s in dispatch.stops]
        index = next(i for i, sid in enumerate(ids) if sid in names)
        if ids[index] in done:
            continue
        stops_before = sum(1 for sid in ids[:index] if sid not in done)
        refreshed = next(
            (e for e in seen.etas if e.stop_id == ids[index] and e.van_id == dispatch.vehicle_id),
            None,
        )
        route = next(r for r in seen.routes if r.dispatch.route_id == dispatch.route_id)
        fix_at = None if route.position is None else origin + timedelta(seconds=route.position.at)
        if refreshed is not None:
            return RouteEta(
                at=origin + timedelta(seconds=refreshed.eta),
                stops_before=stops_before,
                refreshed=True,
                from_position_at=fix_at,
            )
        return RouteEta(
            at=datetime.fromisoformat(dispatch.stops[index]["eta"]),
            stops_before=stops_before,
            refreshed=False,
            from_position_at=fix_at,
        )
    return None
