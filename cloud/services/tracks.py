"""Trips, stops and daily distance of one vehicle, computed on read from its stored positions
(or, for a window of one whole closed UTC day, read back as the KPI job stored them).

Why on read and not materialised: positions arrive late and out of order (a van's durable outbox
drains hours of backlog after a dead zone, a redelivery lands after newer batches), and the rules
are settings that operations may tune. A table of trips would need every late batch to find and
recompute the trips it touches, and every rule change to rewrite history; deriving them costs one
range scan of ``positions`` on the ``(vehicle_id, t)`` index (covering ``lat, lon`` on PostgreSQL,
so the scan never visits the heap) and one linear pass in :mod:`cloud.services.trips`: a day of
1 Hz fixes (at most 86,400 rows) is tens of milliseconds. Windows are therefore bounded
(:data:`MAX_WINDOW`, :data:`MAX_DAYS`) so no request can ask for a year of rows.

A closed day is derived once more, by the hub's KPI job (:mod:`cloud.services.kpi_rebuild`), which
stores each van's journey of it (:mod:`cloud.services.journey_store`); late data for the day marks
it stale (triggers of migration 0008) and it is derived on read again until rebuilt. That spares a
day's read its range scan and analysis: at 50 million positions under load, the derivation was
what kept a day's trips near or above 100 ms (see ``bench/track_query.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import PositionRow, Vehicle, VehicleEventRow
from cloud.services import journey_store
from cloud.services.errors import InvalidRequestError
from cloud.services.trips import (
    IgnitionChange,
    Journey,
    Track,
    TrackPoint,
    TripRules,
    analyse,
)

MAX_WINDOW = timedelta(days=7)
MAX_TRACK_WINDOW = timedelta(days=1)  # 86,400 fixes at 1 Hz: one response
MAX_DAYS = 31
IGNITION_KINDS = {"ignition_on": True, "ignition_off": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class DayDistance:
    day: date
    distance_m: float
    trips: int
    driving_s: float


def journey(
    session: Session,
    *,
    vehicle_id: str,
    since: datetime,
    until: datetime,
    rules: TripRules,
) -> Journey:
    """Trips and stops from the fixes in ``[since, until)``; a trip or stop crossing a window edge
    is cut there. Raises NotFoundError (no such vehicle), InvalidRequestError (bad window)."""
    if until <= since:
        raise InvalidRequestError("'from' must be before 'to'", loc=("query", "from"))
    if until - since > MAX_WINDOW:
        raise InvalidRequestError(
            f"the window may span at most {MAX_WINDOW.days} days", loc=("query", "to")
        )
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    return _stored_or_derived(session, vehicle_id=vehicle_id, since=since, until=until, rules=rules)


def _stored_or_derived(
    session: Session, *, vehicle_id: str, since: datetime, until: datetime, rules: TripRules
) -> Journey:
    """A whole closed UTC day from its stored journey when current, else derived from the fixes."""
    day = journey_store.whole_day(since, until)
    if day is not None:
        stored = journey_store.load(session, vehicle_id=vehicle_id, day=day, rules=rules)
        if stored is not None:
            return stored
    return _derive(session, vehicle_id=vehicle_id, since=since, until=until, rules=rules)


def daily_distances(
    session: Session, *, vehicle_id: str, first: date, last: date, rules: TripRules
) -> list[DayDistance]:
    """Distance driven on each UTC day from ``first`` to ``last`` inclusive, from that day's trips
    (a trip across midnight counts on both days, each its own part).

    Raises NotFoundError, InvalidRequestError.
    """
    if last < first:
        raise InvalidRequestError("'from' is after 'to'", loc=("query", "from"))
    days = (last - first).days + 1
    if days > MAX_DAYS:
        raise InvalidRequestError(f"at most {MAX_DAYS} days per request", loc=("query", "to"))
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    out: list[DayDistance] = []
    for k in range(days):
        day = first + timedelta(days=k)
        start = datetime.combine(day, time(), tzinfo=UTC)
        found = _stored_or_derived(
            session,
            vehicle_id=vehicle_id,
            since=start,
            until=start + timedelta(days=1),
            rules=rules,
        )
        out.append(
            DayDistance(
                day=day,
                distance_m=found.distance_m,
                trips=len(found.trips),
                driving_s=sum(t.duration_s for t in found.trips),
            )
        )
    return out


def _derive(
    session: Session, *, vehicle_id: str, since: datetime, until: datetime, rules: TripRules
) -> Journey:
    track = _track(session, vehicle_id=vehicle_id, since=since, until=until)
    changes = [
        IgnitionChange(at, IGNITION_KINDS[kind])
        for kind, at in session.execute(
            select(VehicleEventRow.kind, VehicleEventRow.at)
            .where(
                VehicleEventRow.vehicle_id == vehicle_id,
                VehicleEventRow.kind.in_(IGNITION_KINDS),
                VehicleEventRow.at >= since,
                VehicleEventRow.at < until,
            )
            .order_by(VehicleEventRow.at, VehicleEventRow.seq)
        )
    ]
    before = session.scalar(
        select(VehicleEventRow.kind)
        .where(
            VehicleEventRow.vehicle_id == vehicle_id,
            VehicleEventRow.kind.in_(IGNITION_KINDS),
            VehicleEventRow.at < since,
        )
        .order_by(VehicleEventRow.at.desc(), VehicleEventRow.seq.desc())
        .limit(1)
    )
    return analyse(
        track,
        rules=rules,
        ignition=changes,
        ignition_on_at_start=None if before is None else IGNITION_KINDS[before],
    )


# The day's fixes as three arrays in one row, sent in binary: psycopg then builds the floats in C,
# where 36,000 rows of text would cost more Python time than the whole analysis. ``date_part``
# divides the microseconds in float8 where ``extract`` goes through numeric: the same correctly
# rounded seconds, at a third of the server's time for a day (measured in bench.track_query).
_PG_TRACK = """
SELECT array_agg(date_part('epoch', t)), array_agg(lat), array_agg(lon)
FROM (
    SELECT t, lat, lon FROM positions
    WHERE vehicle_id = %(vehicle_id)s AND t >= %(since)s AND t < %(until)s
    ORDER BY t
) AS day
"""


def _track(session: Session, *, vehicle_id: str, since: datetime, until: datetime) -> Track:
    """The fixes in ``[since, until)``, in time order (one range scan of ``ix_positions_vehicle_t``).

    On PostgreSQL through the session's own psycopg connection, so in its transaction.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        with driver.cursor(binary=True) as cursor:
            cursor.execute(_PG_TRACK, {"vehicle_id": vehicle_id, "since": since, "until": until})
            row = cursor.fetchone()
        ts, lat, lon = row if row is not None and row[0] is not None else ([], [], [])
        return Track.of_columns(ts=ts, lat=lat, lon=lon)
    rows = session.execute(
        select(PositionRow.t, PositionRow.lat, PositionRow.lon)
        .where(PositionRow.vehicle_id == vehicle_id, PositionRow.t >= since, PositionRow.t < until)
        .order_by(PositionRow.t)
    )
    return Track.of_points(TrackPoint(t, lat, lon) for t, lat, lon in rows)


def track(session: Session, *, vehicle_id: str, since: datetime, until: datetime) -> Track:
    """The fixes of ``[since, until)`` as columns, for ``/vehicles/{id}/track``.

    Raises NotFoundError (no such vehicle), InvalidRequestError (bad window).
    """
    if until <= since:
        raise InvalidRequestError("'from' must be before 'to'", loc=("query", "from"))
    if until - since > MAX_TRACK_WINDOW:
        raise InvalidRequestError(
            f"a track may span at most {MAX_TRACK_WINDOW.days} day", loc=("query", "to")
        )
    if session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    return _track(session, vehicle_id=vehicle_id, since=since, until=until)
