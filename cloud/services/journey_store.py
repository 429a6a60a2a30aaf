"""Each van's trips and stops of a closed day, stored with the day's KPIs and read back for a
window of exactly that day.

A day's journey is what :func:`cloud.services.tracks.journey` derives from the day's fixes; the KPI
rebuild (:mod:`cloud.services.kpi_rebuild`) derives it for every van anyway, so it stores it in
the same transaction, under the same ``kpi_days`` row: current while that row is (built at its
version, with the same trip rules). Reading it back is three indexed lookups instead of a range
scan of the day's fixes and their analysis (tens of thousands of rows per van-day). Windows that
are not one whole UTC day, days not closed or not current, are derived on read as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from cloud.models import JourneyDay, KpiDay, StoredStop, StoredTrip
from cloud.services.kpi_store import digest
from cloud.services.trips import Journey, Stop, Trip, TripEnd, TripRules

TRIP_FIELDS = (
    "start",
    "end",
    "start_lat",
    "start_lon",
    "end_lat",
    "end_lon",
    "distance_m",
    "points",
)
STOP_FIELDS = ("start", "end", "lat", "lon", "points", "ignition_off")


def whole_day(since: datetime, until: datetime) -> date | None:
    """The UTC day ``[since, until)`` is exactly, or None."""
    start = since.astimezone(UTC)
    if until - since != timedelta(days=1) or start.time() != datetime.min.time():
        return None
    return start.date()


def load(session: Session, *, vehicle_id: str, day: date, rules: TripRules) -> Journey | None:
    """The van's stored journey of ``day`` when current for ``rules``, else None."""
    row = session.get(KpiDay, day)
    if (
        row is None
        or row.built_version != row.version
        or row.rules_digest != digest(rules)
        or (found := session.get(JourneyDay, (day, vehicle_id))) is None
    ):
        return None
    trips = tuple(
        Trip(**{f: getattr(t, f) for f in TRIP_FIELDS}, ended_by=TripEnd(t.ended_by))
        for t in session.scalars(
            select(StoredTrip)
            .where(StoredTrip.day == day, StoredTrip.vehicle_id == vehicle_id)
            .order_by(StoredTrip.start)
        )
    )
    stops = tuple(
        Stop(**{f: getattr(s, f) for f in STOP_FIELDS})
        for s in session.scalars(
            select(StoredStop)
            .where(StoredStop.day == day, StoredStop.vehicle_id == vehicle_id)
            .order_by(StoredStop.start)
        )
    )
    return Journey(trips=trips, stops=stops, gaps=found.gaps)


def replace(session: Session, *, day: date, journeys: Mapping[str, Journey]) -> None:
    """Swap the day's stored journeys for ``journeys`` (by van), in the caller's transaction."""
    for model in (StoredTrip, StoredStop, JourneyDay):
        session.execute(delete(model).where(model.day == day))
    if not journeys:
        return
    session.execute(
        insert(JourneyDay),
        [{"day": day, "vehicle_id": v, "gaps": j.gaps} for v, j in journeys.items()],
    )
    trips = [
        {"day": day, "vehicle_id": v, "ended_by": t.ended_by.value}
        | {f: getattr(t, f) for f in TRIP_FIELDS}
        for v, j in journeys.items()
        for t in j.trips
    ]
    stops = [
        {"day": day, "vehicle_id": v} | {f: getattr(s, f) for f in STOP_FIELDS}
        for v, j in journeys.items()
        for s in j.stops
    ]
    if trips:
        session.execute(insert(StoredTrip), trips)
    if stops:
        session.execute(insert(StoredStop), stops)
