"""Delivery KPIs per UTC day, per depot and per vehicle, and per locker: pure functions over facts.

No database, no clock, no settings lookup: :func:`compute` takes what :mod:`cloud.services.kpi_reads`
read (each parcel's lifecycle transitions, each van's daily distance and time on the road, each
locker's size) and the fleet's depots and emission factors, so every definition below is tested on
hand-made data with known answers.

Definitions (a day is a UTC date; an event counts on the day it happened):

- **Handover**: a parcel reaching ``delivered`` (home: the driver's scan) or ``deposited`` (locker:
  the courier closed the door). It is the courier's delivery; a locker pickup is the customer's.
- **On time**: a handover of a parcel with a promised window (``window_end`` set; parcels without
  one are left out of the ratio, ``on_time_eligible`` says how many counted). A home delivery is on
  time inside ``[window_start, window_end]`` (early is a miss: nobody is home yet); a locker deposit
  is on time at or before ``window_end`` (early is fine: the parcel waits in the locker).
- **First attempt**: a parcel's first transition out of ``out_for_delivery`` (to ``delivered``,
  ``deposited`` or back ``at_depot``, a failed attempt), counted on its day; it succeeded unless it
  went back to the depot.
- **Deliveries per hour**: a van's handovers over its hours on the road, from the start of its first
  trip of the day to the end of its last (delivery stops between trips included).
- **km per parcel**: the van's distance that day over its handovers; **CO2 per parcel**: that
  distance times its type's emission factor (g/km), over its handovers.
- **Locker utilisation**: occupied compartment-hours (deposit -> pickup or return; a parcel still
  inside occupies its compartment until ``now``) over available ones (compartments x hours of the
  day up to ``now``).
- **Dwell time**: deposit -> pickup, for the pickups of the day: median and 90th percentile (linear
  interpolation between order statistics). Returned parcels are not dwell: nobody came.

A parcel counts for the van it is assigned to (``vehicle_id``) and the van's depot; one without a
van counts for its locker's depot (or the default depot) only. Depot rates (per hour, per km) use the
handovers of its vans only, so a depot's figures are its vans' figures summed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from cloud.fleet import FleetSettings

HANDOVER = frozenset({"delivered", "deposited"})
ATTEMPT_OUTCOMES = frozenset({"delivered", "deposited", "at_depot"})
LEAVES_LOCKER = frozenset({"picked_up", "returned"})
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Transition:
    at: datetime
    from_status: str | None
    to_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ParcelFacts:
    """One parcel and its status changes in time order."""

    parcel_id: str
    vehicle_id: str | None
    locker_id: str | None
    window_start: datetime | None
    window_end: datetime | None
    transitions: tuple[Transition, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class VehicleDay:
    """A van's day from its trips: distance and the span from first trip start to last trip end."""

    vehicle_id: str
    day: date
    distance_m: float
    road_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LockerFacts:
    locker_id: str
    compartments: int


@dataclass(slots=True, kw_only=True)
class KpiRow:
    """One day of one vehicle, or of one depot (``vehicle_id`` None): counts and ratios."""

    day: date
    depot: str
    vehicle_id: str | None
    handovers: int = 0
    vehicle_handovers: int = 0
    on_time_eligible: int = 0
    on_time: int = 0
    first_attempts: int = 0
    first_attempt_successes: int = 0
    road_s: float = 0.0
    distance_m: float = 0.0
    co2_g: float = 0.0
    pickups: int = 0
    dwell_median_s: float | None = None
    dwell_p90_s: float | None = None
    locker_occupied_s: float | None = None
    locker_available_s: float | None = None
    dwells: list[float] = field(default_factory=list, repr=False)

    @property
    def on_time_pct(self) -> float | None:
        return _pct(self.on_time, self.on_time_eligible)

    @property
    def first_attempt_success_pct(self) -> float | None:
        return _pct(self.first_attempt_successes, self.first_attempts)

    @property
    def deliveries_per_hour(self) -> float | None:
        return self.vehicle_handovers / (self.road_s / 3600) if self.road_s > 0 else None

    @property
    def km_per_parcel(self) -> float | None:
        return self.distance_m / 1000 / self.vehicle_handovers if self.vehicle_handovers else None

    @property
    def co2_g_per_parcel(self) -> float | None:
        return self.co2_g / self.vehicle_handovers if self.vehicle_handovers else None

    @property
    def locker_utilisation_pct(self) -> float | None:
        if not self.locker_available_s or self.locker_occupied_s is None:
            return None
        return 100.0 * self.locker_occupied_s / self.locker_available_s


@dataclass(frozen=True, slots=True, kw_only=True)
class LockerDay:
    day: date
    locker_id: str
    depot: str
    compartments: int
    occupied_s: float
    available_s: float
    pickups: int
    dwell_median_s: float | None
    dwell_p90_s: float | None

    @property
    def utilisation_pct(self) -> float | None:
        return 100.0 * self.occupied_s / self.available_s if self.available_s > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class KpiReport:
    rows: tuple[KpiRow, ...]  # by day, depot, then the depot's row before its vehicles'
    lockers: tuple[LockerDay, ...]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolating linearly between order statistics
    (numpy's default). Raises ValueError on no values."""
    if not values:
        raise ValueError("no values")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def occupancy(parcel: ParcelFacts, *, now: datetime) -> list[tuple[datetime, datetime]]:
    """When ``parcel`` sat in its locker: each deposit until the pickup or return after it."""
    spans: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for tr in parcel.transitions:
        if tr.to_status == "deposited":
            since = tr.at
        elif tr.to_status in LEAVES_LOCKER and since is not None:
            spans.append((since, min(tr.at, now)))
            since = None
    if since is not None and since < now:
        spans.append((since, now))
    return spans


def _overlap_s(span: tuple[datetime, datetime], start: datetime, end: datetime) -> float:
    lo, hi = max(span[0], start), min(span[1], end)
    return max(0.0, (hi - lo).total_seconds())


def compute(
    *,
    first: date,
    last: date,
    parcels: Iterable[ParcelFacts],
    vehicle_days: Iterable[VehicleDay],
    lockers: Iterable[LockerFacts],
    fleet: FleetSettings,
    now: datetime,
) -> KpiReport:
    """The KPIs of days ``first`` .. ``last`` (inclusive); see the module docstring."""
    wanted = set(days(first, last))
    rows: dict[tuple[date, str, str | None], KpiRow] = {}

    def row(day: date, depot: str, vehicle_id: str | None) -> KpiRow:
        key = (day, depot, vehicle_id)
        if key not in rows:
            rows[key] = KpiRow(day=day, depot=depot, vehicle_id=vehicle_id)
        return rows[key]

    def rows_of(parcel: ParcelFacts, day: date) -> list[KpiRow]:
        if parcel.vehicle_id is not None:
            depot = fleet.depot_of_vehicle(parcel.vehicle_id)
            return [row(day, depot, None), row(day, depot, parcel.vehicle_id)]
        if parcel.locker_id is not None:
            return [row(day, fleet.depot_of_locker(parcel.locker_id), None)]
        return [row(day, fleet.default_depot, None)]

    for vd in vehicle_days:
        if vd.day not in wanted:
            continue
        co2 = vd.distance_m / 1000 * fleet.emission_g_per_km_of(vd.vehicle_id)
        depot = fleet.depot_of_vehicle(vd.vehicle_id)
        for r in (row(vd.day, depot, None), row(vd.day, depot, vd.vehicle_id)):
            r.road_s += vd.road_s
            r.distance_m += vd.distance_m
            r.co2_g += co2

    locker_dwells: dict[tuple[date, str], list[float]] = defaultdict(list)
    occupied: dict[tuple[date, str], float] = defaultdict(float)
    for parcel in parcels:
        _count_parcel(parcel, wanted=wanted, rows_of=rows_of, locker_dwells=locker_dwells)
        if parcel.locker_id is not None:
            for span in occupancy(parcel, now=now):
                for day in wanted:
                    start = day_start(day)
                    seconds = _overlap_s(span, start, start + DAY)
                    if seconds > 0:
                        occupied[(day, parcel.locker_id)] += seconds

    locker_days: list[LockerDay] = []
    for locker in sorted(lockers, key=lambda lk: lk.locker_id):
        depot = fleet.depot_of_locker(locker.locker_id)
        for day in sorted(wanted):
            start = day_start(day)
            open_s = _overlap_s((start, start + DAY), start, now)
            dwell = locker_dwells.get((day, locker.locker_id), [])
            ld = LockerDay(
                day=day,
                locker_id=locker.locker_id,
                depot=depot,
                compartments=locker.compartments,
                occupied_s=occupied.get((day, locker.locker_id), 0.0),
                available_s=locker.compartments * open_s,
                pickups=len(dwell),
                dwell_median_s=percentile(dwell, 0.5) if dwell else None,
                dwell_p90_s=percentile(dwell, 0.9) if dwell else None,
            )
            locker_days.append(ld)
            if open_s > 0:
                r = row(day, depot, None)
                r.locker_occupied_s = (r.locker_occupied_s or 0.0) + ld.occupied_s
                r.locker_available_s = (r.locker_available_s or 0.0) + ld.available_s

    for r in rows.values():
        if r.dwells:
            r.dwell_median_s = percentile(r.dwells, 0.5)
            r.dwell_p90_s = percentile(r.dwells, 0.9)
    ordered = sorted(rows.values(), key=lambda r: (r.day, r.depot, r.vehicle_id or ""))
    return KpiReport(rows=tuple(ordered), lockers=tuple(locker_days))


def _count_parcel(
    parcel: ParcelFacts,
    *,
    wanted: set[date],
    rows_of: Callable[[ParcelFacts, date], list[KpiRow]],
    locker_dwells: dict[tuple[date, str], list[float]],
) -> None:
    first_attempt_seen = False
    deposited_at: datetime | None = None
    for tr in parcel.transitions:
        day = day_of(tr.at)
        if tr.from_status == "out_for_delivery" and tr.to_status in ATTEMPT_OUTCOMES:
            if not first_attempt_seen and day in wanted:
                for r in rows_of(parcel, day):
                    r.first_attempts += 1
                    r.first_attempt_successes += tr.to_status != "at_depot"
            first_attempt_seen = True
        if tr.to_status in HANDOVER and day in wanted:
            on_time = _on_time(parcel, tr)
            for r in rows_of(parcel, day):
                r.handovers += 1
                r.vehicle_handovers += parcel.vehicle_id is not None
                if on_time is not None:
                    r.on_time_eligible += 1
                    r.on_time += on_time
        if tr.to_status == "deposited":
            deposited_at = tr.at
        elif tr.to_status == "picked_up" and deposited_at is not None:
            dwell = (tr.at - deposited_at).total_seconds()
            if day in wanted:
                for r in rows_of(parcel, day):
                    r.pickups += 1
                    r.dwells.append(dwell)
                if parcel.locker_id is not None:
                    locker_dwells[(day, parcel.locker_id)].append(dwell)
            deposited_at = None


def _on_time(parcel: ParcelFacts, handover: Transition) -> bool | None:
    """None when the parcel was promised no window; see the module docstring for the rule."""
    if parcel.window_end is None:
        return None
    if handover.at > parcel.window_end:
        return False
    if handover.to_status == "deposited":
        return True
    return parcel.window_start is None or handover.at >= parcel.window_start


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None
