"""Plan the day from the hub's own parcels: the problem of one depot, and the parcels' side of a
dispatch.

:func:`build_day_problem` turns what the hub knows into our JSON problem (:class:`ProblemSpec`):
the depot's site and hours, the vans based there (capacity, shift, CO2 factor of their type), every
home parcel at the depot or out for delivery on its vans as one delivery stop with its position
and window, and the locker parcels as **one locker stop per locker**, limited to what the locker's
free compartments take by size. A parcel that cannot become a stop (no coordinates, its locker
without a site or full) is not silently left out: it is listed in ``dropped`` with the reason.

Which depot a parcel belongs to: a locker parcel to its locker's depot; a home parcel to the depot
of the van it is on, else to the nearest depot with a site, else (no coordinates either) to the
fleet's default depot -- so a parcel nobody can plan still shows up, dropped, somewhere.

:func:`assign_dispatched_parcels` runs in the dispatch's transaction: each parcel of a routed stop
goes onto its van (``vehicle_id``) and, if still at the depot, out for delivery through the
lifecycle service, so the parcel's history and webhooks say which van carries it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.fleet import FleetSettings
from cloud.models import DepotSite, DepotVan, Locker, LockerSite, Parcel, ParcelStatus, Vehicle
from cloud.planning.errors import ProblemError
from cloud.planning.formats import (
    DepotSpec,
    LoadSpec,
    LockerSpec,
    ProblemSpec,
    StopSpec,
    VanSpec,
    WindowSpec,
)
from cloud.planning.model import CompartmentSize, locker_fits
from cloud.services import lifecycle
from cloud.services.parcels import HOLDING

HOME_SERVICE_S = 90
LOCKER_SERVICE_S = 120
LOCKER_PER_PARCEL_S = 15
_SIZES: tuple[CompartmentSize, ...] = ("S", "M", "L")
PLANNED = (ParcelStatus.AT_DEPOT, ParcelStatus.OUT_FOR_DELIVERY)


def home_stop_id(parcel_id: uuid.UUID) -> str:
    return f"parcel-{parcel_id}"


@dataclass(frozen=True, slots=True)
class DayProblem:
    """The problem, which parcels each stop carries, and the parcels left out with the reason."""

    spec: ProblemSpec
    parcels_of_stop: Mapping[str, list[str]]
    dropped: list[dict[str, str]] = field(default_factory=list)

    def options(self, *, depot: str) -> dict[str, Any]:
        """What a planning job keeps of it (``plan_jobs.options["hub"]``)."""
        return {
            "depot": depot,
            "parcels_of_stop": {k: list(v) for k, v in self.parcels_of_stop.items()},
            "dropped": list(self.dropped),
        }


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[0] + b[0]) / 2)
    dy = (a[0] - b[0]) * 111_320.0
    dx = (a[1] - b[1]) * 111_320.0 * math.cos(lat)
    return math.hypot(dx, dy)


def _home_depot(
    parcel: Parcel,
    *,
    van_depots: Mapping[str, str],
    sites: list[DepotSite],
    fleet: FleetSettings,
) -> str:
    if parcel.vehicle_id is not None:
        return van_depots.get(parcel.vehicle_id) or fleet.depot_of_vehicle(parcel.vehicle_id)
    if parcel.lat is not None and parcel.lon is not None and sites:
        here = (parcel.lat, parcel.lon)
        return min(sites, key=lambda d: (_metres(here, (d.lat, d.lon)), d.id)).id
    return fleet.default_depot


def _free_by_size(session: Session, locker: Locker, ours: set[int]) -> dict[CompartmentSize, int]:
    """Free compartments by size; those our own parcels already reserved count as free for them.
    A locker that has not reported its sizes counts every compartment as M."""
    held = {
        n
        for n in session.scalars(
            select(Parcel.compartment).where(
                Parcel.locker_id == locker.id, Parcel.status.in_(HOLDING)
            )
        )
        if n is not None
    } - ours
    sizes = locker.sizes if locker.sizes and len(locker.sizes) == locker.compartments else None
    free: dict[CompartmentSize, int] = dict.fromkeys(_SIZES, 0)
    for n in range(1, locker.compartments + 1):
        if n in held:
            continue
        size = sizes[n - 1] if sizes is not None else "M"
        free[_size(size)] += 1
    return free


def _size(value: str) -> CompartmentSize:
    """A parcel's or compartment's size; anything unknown counts as M (the hub's default)."""
    for size in _SIZES:
        if value == size:
            return size
    return "M"


def _window(parcel: Parcel, *, origin: datetime, start: int) -> list[WindowSpec]:
    """The parcel's window in seconds from ``origin``; one that closed before the van can leave
    is left out (the parcel goes late rather than not at all)."""
    if parcel.window_end is None:
        return []
    end = int((parcel.window_end - origin).total_seconds())
    if end <= start:
        return []
    begin = (
        0 if parcel.window_start is None else int((parcel.window_start - origin).total_seconds())
    )
    return [WindowSpec(start=max(0, min(begin, end)), end=end)]


def build_day_problem(
    session: Session,
    *,
    depot_id: str,
    day: date,
    fleet: FleetSettings,
    now: datetime,
    exclude_vans: frozenset[str] = frozenset(),
) -> DayProblem:
    """Raises ProblemError for a depot without a site, a day already over, or no van on shift.
    ``exclude_vans`` are left out (broken down); their parcels are planned on the others."""
    depot = session.get(DepotSite, depot_id)
    if depot is None:
        raise ProblemError(f"depot {depot_id!r}", "has no site: PUT /api/v1/depots/{id} first")
    origin = _day_start(day)
    t_now = max(0, int((now - origin).total_seconds()))
    if t_now >= depot.closes_s:
        raise ProblemError(f"depot {depot_id!r}", f"is closed for the rest of {day}")
    start = max(t_now, depot.opens_s)
    vans: list[VanSpec] = []
    for v in session.scalars(
        select(DepotVan).where(DepotVan.depot_id == depot_id).order_by(DepotVan.vehicle_id)
    ):
        begin, end = max(v.shift_start_s, start), min(v.shift_end_s, depot.closes_s)
        if begin >= end or v.vehicle_id in exclude_vans:
            continue  # off shift for the rest of the day
        vans.append(
            VanSpec(
                id=v.vehicle_id,
                depot=depot_id,
                capacity=LoadSpec(
                    parcels=v.capacity_parcels,
                    volume=v.capacity_volume_l,
                    weight=v.capacity_weight_kg,
                ),
                shift_start=begin,
                shift_end=end,
                co2_g_per_km=fleet.emission_g_per_km.get(v.type, 180.0),
            )
        )
    if not vans:
        raise ProblemError(f"depot {depot_id!r}", f"has no van on shift for the rest of {day}")
    van_depots = {v.vehicle_id: v.depot_id for v in session.scalars(select(DepotVan))}
    sites = list(session.scalars(select(DepotSite).order_by(DepotSite.id)))
    locker_sites = {s.locker_id: s for s in session.scalars(select(LockerSite))}
    parcels = list(
        session.scalars(
            select(Parcel).where(Parcel.status.in_(PLANNED)).order_by(Parcel.created_at, Parcel.id)
        )
    )
    stops: list[StopSpec] = []
    by_locker: dict[str, list[Parcel]] = {}
    parcels_of_stop: dict[str, list[str]] = {}
    dropped: list[dict[str, str]] = []

    def drop(p: Parcel, reason: str) -> None:
        dropped.append({"parcel_id": str(p.id), "reason": reason})

    for p in parcels:
        if p.locker_id is not None:
            site = locker_sites.get(p.locker_id)
            mine = (site.depot_id if site else fleet.depot_of_locker(p.locker_id)) == depot_id
            if not mine:
                continue
            if site is None:
                drop(p, f"locker {p.locker_id} has no site (PUT /depots/{depot_id}/lockers/...)")
                continue
            by_locker.setdefault(p.locker_id, []).append(p)
            continue
        if _home_depot(p, van_depots=van_depots, sites=sites, fleet=fleet) != depot_id:
            continue
        if p.lat is None or p.lon is None:
            drop(p, "no coordinates: a home delivery needs lat and lon to be planned")
            continue
        sid = home_stop_id(p.id)
        stops.append(
            StopSpec(
                id=sid,
                location=(p.lat, p.lon),
                service_time=HOME_SERVICE_S,
                windows=_window(p, origin=origin, start=start),
            )
        )
        parcels_of_stop[sid] = [str(p.id)]
    lockers: list[LockerSpec] = []
    for locker_id, group in sorted(by_locker.items()):
        site = locker_sites[locker_id]
        locker = session.get(Locker, locker_id)
        if locker is None or locker.compartments == 0:
            for p in group:
                drop(p, f"locker {locker_id} has not reported its compartments yet")
            continue
        free = _free_by_size(session, locker, {p.compartment for p in group if p.compartment})
        taken: list[Parcel] = []
        for p in sorted(group, key=lambda x: (x.window_end or origin, str(x.id))):
            ok, why = locker_fits([_size(q.size) for q in [*taken, p]], free)
            if ok:
                taken.append(p)
            else:
                drop(p, f"locker {locker_id} is full: {why}")
        if not taken:
            continue
        ends = [p.window_end for p in taken if p.window_end is not None]
        due = int((min(ends) - origin).total_seconds()) if ends else None
        lockers.append(
            LockerSpec(
                id=locker_id,
                location=(site.lat, site.lon),
                parcel_sizes=[_size(p.size) for p in taken],
                free_compartments=free,
                service_time=LOCKER_SERVICE_S,
                per_parcel_time=LOCKER_PER_PARCEL_S,
                windows=[WindowSpec(start=0, end=due)] if due is not None and due > start else [],
            )
        )
        parcels_of_stop[locker_id] = [str(p.id) for p in taken]
    spec = ProblemSpec(
        name=f"{depot_id} {day}",
        depots=[
            DepotSpec(
                id=depot_id,
                location=(depot.lat, depot.lon),
                opens=depot.opens_s,
                closes=depot.closes_s,
            )
        ],
        vans=vans,
        stops=stops,
        lockers=lockers,
    )
    return DayProblem(spec=spec, parcels_of_stop=parcels_of_stop, dropped=dropped)


def assign_dispatched_parcels(
    session: Session,
    *,
    plan_id: uuid.UUID,
    result: Mapping[str, Any],
    hub: Mapping[str, Any],
    at: datetime,
) -> int:
    """Put each routed stop's parcels on its van; the caller commits (with the dispatch).
    Returns how many parcels changed van or status."""
    of_stop: Mapping[str, list[str]] = hub.get("parcels_of_stop", {})
    changed = 0
    for route in result.get("routes", []):
        van = str(route["van_id"])
        for visit in route["visits"]:
            if visit["kind"] != "stop":
                continue
            for pid in of_stop.get(visit["stop_id"], []):
                parcel = session.get(Parcel, uuid.UUID(pid))
                if parcel is None or parcel.status not in PLANNED:
                    continue  # delivered, deposited or gone since the plan was made
                if parcel.status == ParcelStatus.OUT_FOR_DELIVERY and parcel.vehicle_id == van:
                    continue
                if session.get(Vehicle, van) is None:  # a van that never reported yet
                    session.add(Vehicle(id=van, online=False, version=""))
                    session.flush()
                detail = {"vehicle_id": van, "plan_id": str(plan_id), "stop_id": visit["stop_id"]}
                parcel.vehicle_id = van
                if parcel.status == ParcelStatus.AT_DEPOT:
                    lifecycle.move(
                        session,
                        parcel,
                        ParcelStatus.OUT_FOR_DELIVERY,
                        at=at,
                        source="plan",
                        detail=detail,
                    )
                else:
                    parcel.updated_at = at
                    lifecycle.record(
                        session,
                        parcel,
                        kind="vehicle_assigned",
                        at=at,
                        source="plan",
                        detail=detail,
                    )
                changed += 1
    return changed


def dropped_parcels(
    result: Mapping[str, Any] | None, hub: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The parcels left out when the problem was built, then those of the stops the solver
    dropped, each with the reason."""
    out = list(hub.get("dropped", []))
    of_stop: Mapping[str, list[str]] = hub.get("parcels_of_stop", {})
    for d in (result or {}).get("dropped", []):
        for pid in of_stop.get(d["stop_id"], []):
            out.append({"parcel_id": pid, "reason": f"stop {d['stop_id']} dropped: {d['reason']}"})
    return out


__all__ = [
    "DayProblem",
    "assign_dispatched_parcels",
    "build_day_problem",
    "dropped_parcels",
    "home_stop_id",
]
