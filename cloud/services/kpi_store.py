"""The materialised KPIs of closed days: which days are current, and their rows in and out.

Table I/O only; what goes in is :func:`cloud.services.kpi_reads.live_report` of the day (built by
:mod:`cloud.services.kpi_rebuild`), so a stored day and the same day computed on read are the same
figures. A day's rows are current while its ``kpi_days.version`` (bumped by the triggers of
migration 0008 on late inserts) equals the ``built_version`` they were built at; a day that is not
closed yet (its end after ``now``) is never served from here, whatever is stored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import date, datetime

from pydantic import BaseModel
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from cloud.fleet import FleetSettings
from cloud.models import KpiDay, KpiLockerRecord, KpiRowRecord
from cloud.services.kpis import DAY, KpiReport, KpiRow, LockerDay, day_start
from cloud.services.trips import TripRules

ROW_FIELDS = (
    "handovers",
    "vehicle_handovers",
    "on_time_eligible",
    "on_time",
    "first_attempts",
    "first_attempt_successes",
    "road_s",
    "distance_m",
    "co2_g",
    "pickups",
    "dwell_median_s",
    "dwell_p90_s",
    "locker_occupied_s",
    "locker_available_s",
)
LOCKER_FIELDS = (
    "compartments",
    "occupied_s",
    "available_s",
    "pickups",
    "dwell_median_s",
    "dwell_p90_s",
)


def is_closed(day: date, *, now: datetime) -> bool:
    """A day is closed once it has ended: its figures no longer depend on ``now``."""
    return day_start(day) + DAY <= now


def digest(settings: BaseModel) -> str:
    """A fingerprint of settings the stored figures depend on (trip rules, the fleet)."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()


def current_days(
    session: Session,
    *,
    first: date,
    last: date,
    now: datetime,
    fleet: FleetSettings,
    rules: TripRules,
) -> set[date]:
    """The closed days of ``first .. last`` whose stored rows are current: built at the day's
    version, with these settings."""
    wanted = (digest(rules), digest(fleet))
    return {
        d
        for d, version, built, rules_digest, fleet_digest in session.execute(
            select(
                KpiDay.day,
                KpiDay.version,
                KpiDay.built_version,
                KpiDay.rules_digest,
                KpiDay.fleet_digest,
            ).where(KpiDay.day >= first, KpiDay.day <= last)
        )
        if built == version and (rules_digest, fleet_digest) == wanted and is_closed(d, now=now)
    }


def stale_days(session: Session) -> list[date]:
    """Days stored once whose inputs changed since (late data), or whose build never finished."""
    return list(
        session.scalars(
            select(KpiDay.day)
            .where((KpiDay.built_version.is_(None)) | (KpiDay.built_version != KpiDay.version))
            .order_by(KpiDay.day)
        )
    )


def load(session: Session, *, days: Collection[date]) -> KpiReport:
    """The stored rows of ``days``, in the order :func:`cloud.services.kpis.compute` gives."""
    if not days:
        return KpiReport(rows=(), lockers=())
    rows = [
        KpiRow(
            day=r.day,
            depot=r.depot,
            vehicle_id=r.vehicle_id,
            **{f: getattr(r, f) for f in ROW_FIELDS},
        )
        for r in session.scalars(select(KpiRowRecord).where(KpiRowRecord.day.in_(days)))
    ]
    lockers = [
        LockerDay(
            day=r.day,
            locker_id=r.locker_id,
            depot=r.depot,
            **{f: getattr(r, f) for f in LOCKER_FIELDS},
        )
        for r in session.scalars(select(KpiLockerRecord).where(KpiLockerRecord.day.in_(days)))
    ]
    rows.sort(key=lambda r: (r.day, r.depot, r.vehicle_id or ""))
    lockers.sort(key=lambda lk: (lk.locker_id, lk.day))
    return KpiReport(rows=tuple(rows), lockers=tuple(lockers))


def replace(session: Session, *, day: date, report: KpiReport) -> None:
    """Swap the day's stored rows for ``report``'s (in the caller's transaction)."""
    session.execute(delete(KpiRowRecord).where(KpiRowRecord.day == day))
    session.execute(delete(KpiLockerRecord).where(KpiLockerRecord.day == day))
    rows = [
        {"day": day, "depot": r.depot, "vehicle_id": r.vehicle_id}
        | {f: getattr(r, f) for f in ROW_FIELDS}
        for r in report.rows
        if r.day == day
    ]
    lockers = [
        {"day": day, "locker_id": lk.locker_id, "depot": lk.depot}
        | {f: getattr(lk, f) for f in LOCKER_FIELDS}
        for lk in report.lockers
        if lk.day == day
    ]
    if rows:
        session.execute(insert(KpiRowRecord), rows)
    if lockers:
        session.execute(insert(KpiLockerRecord), lockers)
