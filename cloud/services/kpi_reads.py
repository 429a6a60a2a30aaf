"""The reads behind ``GET /api/v1/kpis``: stored days, and the facts :func:`cloud.services.kpis.compute`
needs for the others.

Per request: the parcels that changed status in the window or sat in a locker during it (with all
their transitions, since a pickup's dwell starts at a deposit that may be older than the window),
each selected van's trips of each day (derived on read like ``/distance``, see
:mod:`cloud.services.tracks`) and the lockers. Bounded by :data:`MAX_DAYS`: a van-day of trips is
one range scan of its positions.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import Select, and_, exists, select, union
from sqlalchemy.orm import Session, aliased

from cloud.errors import NotFoundError
from cloud.fleet import FleetSettings
from cloud.models import Locker, Parcel, ParcelEvent, Vehicle
from cloud.services import kpi_store, tracks
from cloud.services.errors import InvalidRequestError
from cloud.services.kpis import (
    DAY,
    LEAVES_LOCKER,
    KpiReport,
    LockerFacts,
    ParcelFacts,
    Transition,
    VehicleDay,
    compute,
    day_start,
    days,
)
from cloud.services.trips import Journey, TripRules

MAX_DAYS = 31


def read_kpis(
    session: Session,
    *,
    first: date,
    last: date,
    fleet: FleetSettings,
    rules: TripRules,
    now: datetime,
    vehicle_id: str | None = None,
    depot: str | None = None,
) -> KpiReport:
    """KPIs of the UTC days ``first`` .. ``last``, for every depot or one, or one van: closed days
    from their materialised rows when current (:mod:`cloud.services.kpi_store`), the others (today,
    days not built yet or changed by late data) computed here.

    Raises InvalidRequestError (bad or too long a range), NotFoundError (no such van or depot).
    """
    if last < first:
        raise InvalidRequestError("'from' is after 'to'", loc=("query", "from"))
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidRequestError(f"at most {MAX_DAYS} days per request", loc=("query", "to"))
    if vehicle_id is not None and session.get(Vehicle, vehicle_id) is None:
        raise NotFoundError("vehicle", vehicle_id)
    if depot is not None:
        all_lockers = session.scalars(select(Locker.id))
        all_vehicles = session.scalars(select(Vehicle.id))
        known = {fleet.default_depot, *(fleet.depot_of_vehicle(v) for v in all_vehicles)}
        known |= {fleet.depot_of_locker(lk) for lk in all_lockers}
        if depot not in known:
            raise NotFoundError("depot", depot)
    stored = kpi_store.current_days(
        session, first=first, last=last, now=now, fleet=fleet, rules=rules
    )
    parts = [kpi_store.load(session, days=stored)]
    for run_first, run_last in _runs([d for d in days(first, last) if d not in stored]):
        parts.append(
            live_report(
                session,
                first=run_first,
                last=run_last,
                fleet=fleet,
                rules=rules,
                now=now,
                vehicle_id=vehicle_id,
                depot=depot,
            )
        )
    rows = sorted(
        (
            r
            for part in parts
            for r in part.rows
            if (depot is None or r.depot == depot)
            and (vehicle_id is None or r.vehicle_id == vehicle_id)
        ),
        key=lambda r: (r.day, r.depot, r.vehicle_id or ""),
    )
    lockers = sorted(
        (
            lk
            for part in parts
            for lk in part.lockers
            if vehicle_id is None and (depot is None or lk.depot == depot)
        ),
        key=lambda lk: (lk.locker_id, lk.day),
    )
    return KpiReport(rows=tuple(rows), lockers=tuple(lockers))


def _runs(wanted: list[date]) -> list[tuple[date, date]]:
    """Consecutive days as ``(first, last)`` runs: one read of the parcels per run."""
    out: list[tuple[date, date]] = []
    for d in wanted:
        if out and (d - out[-1][1]).days == 1:
            out[-1] = (out[-1][0], d)
        else:
            out.append((d, d))
    return out


def live_report(
    session: Session,
    *,
    first: date,
    last: date,
    fleet: FleetSettings,
    rules: TripRules,
    now: datetime,
    vehicle_id: str | None = None,
    depot: str | None = None,
    journeys: dict[tuple[str, date], Journey] | None = None,
) -> KpiReport:
    """The KPIs of ``first`` .. ``last`` computed from the stored facts (no validation; rows of
        other depots or vans may be left in, callers filter). With no van or depot, every row of
        those days: what :mod:`cloud.services.kpi_rebuild` materialises, with each van-day's journey
    put into ``journeys`` when given."""
    all_lockers = list(session.scalars(select(Locker).order_by(Locker.id)))
    all_vehicles = list(session.scalars(select(Vehicle.id).order_by(Vehicle.id)))
    start, end = day_start(first), day_start(last) + DAY
    vehicles = [
        v
        for v in all_vehicles
        if (vehicle_id is None or v == vehicle_id)
        and (depot is None or fleet.depot_of_vehicle(v) == depot)
    ]
    vehicle_days = [
        _vehicle_day(session, vehicle_id=v, day=d, rules=rules, journeys=journeys)
        for v in vehicles
        for d in days(first, last)
    ]
    parcels = _parcels(session, start=start, end=end)
    if vehicle_id is not None:
        parcels = [p for p in parcels if p.vehicle_id == vehicle_id]
    lockers = [] if vehicle_id is not None else all_lockers
    if depot is not None:
        lockers = [lk for lk in lockers if fleet.depot_of_locker(lk.id) == depot]
    return compute(
        first=first,
        last=last,
        parcels=parcels,
        vehicle_days=vehicle_days,
        lockers=[LockerFacts(locker_id=lk.id, compartments=lk.compartments) for lk in lockers],
        fleet=fleet,
        now=now,
    )


def _vehicle_day(
    session: Session,
    *,
    vehicle_id: str,
    day: date,
    rules: TripRules,
    journeys: dict[tuple[str, date], Journey] | None,
) -> VehicleDay:
    since = day_start(day)
    found = tracks.journey(
        session, vehicle_id=vehicle_id, since=since, until=since + DAY, rules=rules
    )
    if journeys is not None:
        journeys[(vehicle_id, day)] = found
    road_s = (found.trips[-1].end - found.trips[0].start).total_seconds() if found.trips else 0.0
    return VehicleDay(vehicle_id=vehicle_id, day=day, distance_m=found.distance_m, road_s=road_s)


def _relevant_parcels(*, start: datetime, end: datetime) -> Select[tuple[object]]:
    """Ids of parcels that changed status in ``[start, end)``, or were deposited before ``end``
    and had not left their locker by ``start`` (they occupied a compartment in the window)."""
    changed = select(ParcelEvent.parcel_id).where(
        ParcelEvent.to_status.is_not(None), ParcelEvent.at >= start, ParcelEvent.at < end
    )
    leave = aliased(ParcelEvent)
    inside = select(ParcelEvent.parcel_id).where(
        ParcelEvent.to_status == "deposited",
        ParcelEvent.at < start,
        ~exists().where(
            and_(
                leave.parcel_id == ParcelEvent.parcel_id,
                leave.to_status.in_(LEAVES_LOCKER),
                leave.at >= ParcelEvent.at,
                leave.at < start,
            )
        ),
    )
    return select(union(changed, inside).subquery().c[0])


def _parcels(session: Session, *, start: datetime, end: datetime) -> list[ParcelFacts]:
    ids = _relevant_parcels(start=start, end=end)
    transitions: dict[object, list[Transition]] = defaultdict(list)
    for pid, at, frm, to in session.execute(
        select(
            ParcelEvent.parcel_id, ParcelEvent.at, ParcelEvent.from_status, ParcelEvent.to_status
        )
        .where(ParcelEvent.parcel_id.in_(ids), ParcelEvent.to_status.is_not(None))
        .order_by(ParcelEvent.parcel_id, ParcelEvent.at, ParcelEvent.id)
    ):
        assert to is not None  # filtered above
        transitions[pid].append(Transition(at=at, from_status=frm, to_status=to))
    return [
        ParcelFacts(
            parcel_id=str(p.id),
            vehicle_id=p.vehicle_id,
            locker_id=p.locker_id,
            window_start=p.window_start,
            window_end=p.window_end,
            transitions=tuple(transitions[p.id]),
        )
        for p in session.scalars(select(Parcel).where(Parcel.id.in_(ids)).order_by(Parcel.id))
    ]
