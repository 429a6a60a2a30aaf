"""Materialise one closed day's KPIs and every van's trips and stops: compute them as a read
would, store them if nothing changed.

Lock-free against ingest: the day's ``kpi_days.version`` is read first, the day is computed
(:func:`cloud.services.kpi_reads.live_report`, every depot, van and locker), and the rows are
swapped in only by a transaction that still finds that version (compare and set). Late data
committed before the version was read is in the computation; late data committed after it bumped
the version (the triggers of migration 0008), so the swap is refused and the day stays stale for
the next attempt. Nothing holds a lock during the computation, which reads thousands of van-days.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.fleet import FleetSettings
from cloud.models import KpiDay
from cloud.services import journey_store, kpi_store
from cloud.services.errors import KpiDayOpenError, KpiRebuildRaceError
from cloud.services.kpi_reads import live_report
from cloud.services.trips import Journey, TripRules

ATTEMPTS = 3


def rebuild_day(
    session_factory: sessionmaker[Session],
    *,
    day: date,
    fleet: FleetSettings,
    rules: TripRules,
    now: datetime,
    attempts: int = ATTEMPTS,
) -> int:
    """Store ``day``'s KPIs; returns how many rows (depot, van and locker) it stored.

    Raises KpiDayOpenError (the day has not ended), KpiRebuildRaceError (its inputs changed
    during each of ``attempts`` tries), SQLAlchemyError. Blocking: run it in a thread.
    """
    if not kpi_store.is_closed(day, now=now):
        raise KpiDayOpenError(day)
    _ensure_row(session_factory, day=day)
    for _ in range(attempts):
        with session_factory() as session:
            version = session.scalar(select(KpiDay.version).where(KpiDay.day == day))
            assert version is not None  # made above; days are never deleted
            journeys: dict[tuple[str, date], Journey] = {}
            report = live_report(
                session,
                first=day,
                last=day,
                fleet=fleet,
                rules=rules,
                now=now,
                journeys=journeys,
            )
        with session_factory() as session, session.begin():
            swapped = session.execute(
                update(KpiDay)
                .where(KpiDay.day == day, KpiDay.version == version)
                .values(
                    built_version=version,
                    computed_at=now,
                    rules_digest=kpi_store.digest(rules),
                    fleet_digest=kpi_store.digest(fleet),
                )
            )
            if swapped.rowcount == 1:  # type: ignore[attr-defined]
                kpi_store.replace(session, day=day, report=report)
                journey_store.replace(
                    session, day=day, journeys={v: j for (v, _), j in journeys.items()}
                )
                return len(report.rows) + len(report.lockers)
    raise KpiRebuildRaceError(day, attempts=attempts)


def _ensure_row(session_factory: sessionmaker[Session], *, day: date) -> None:
    """The day's ``kpi_days`` row, committed before the computation so that the triggers count
    every late insert from then on."""
    with session_factory() as session:
        if session.get(KpiDay, day) is not None:
            return
        session.add(KpiDay(day=day, version=0, built_version=None, computed_at=None))
        try:
            session.commit()
        except IntegrityError:  # another rebuild of the same day made it first
            session.rollback()
