"""The planning problem: a builder that validates as it goes and yields an immutable :class:`Problem`.

Modelled on PyVRP's ``Model``: every ``add_*`` call checks its own arguments at once and raises
:class:`~cloud.planning.errors.ProblemError` naming the item, so a bad upload is refused at the row
that is wrong rather than deep inside a solver. ``build()`` checks what spans items (pairs, skills,
lockers) and computes the travel matrices once.

Units are integers throughout, because both solvers work on integers: time in seconds (from an
arbitrary origin, usually midnight of the planning day), distance in metres, loads in parcels,
litres and kilograms. Benchmark instances use their own units (Solomon: tenths) in the same fields.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from cloud.planning.errors import ProblemError

if TYPE_CHECKING:
    from cloud.planning.travel import SpeedProfile, TravelModel

StopKind = Literal["delivery", "pickup", "return", "locker"]
CompartmentSize = Literal["S", "M", "L"]
_SIZES: tuple[CompartmentSize, ...] = ("S", "M", "L")
LOAD_KINDS = ("parcels", "volume", "weight")
Matrix = npt.NDArray[np.int64]
#: A cost of dropping a stop of priority 1, in cost units (milli-currency; 1 000 km at 1/km).
DEFAULT_DROP_PENALTY = 1_000_000


@dataclass(frozen=True, slots=True)
class Load:
    """What a stop adds or removes, or what a van holds: parcels, litres, kilograms."""

    parcels: int = 0
    volume: int = 0
    weight: int = 0

    def of(self, kind: str) -> int:
        return int(getattr(self, kind))

    def __add__(self, other: Load) -> Load:
        return Load(
            self.parcels + other.parcels, self.volume + other.volume, self.weight + other.weight
        )

    def fits_in(self, capacity: Load) -> bool:
        return all(self.of(k) <= capacity.of(k) for k in LOAD_KINDS)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Break:
    """A driver's break: ``duration`` seconds starting between ``earliest`` and ``latest``."""

    earliest: int
    latest: int
    duration: int


@dataclass(frozen=True, slots=True)
class Depot:
    id: str
    location: tuple[float, float]
    opens: int
    closes: int


@dataclass(frozen=True, slots=True)
class Van:
    id: str
    start_depot: str
    end_depot: str
    capacity: Load
    shift_start: int
    shift_end: int
    breaks: tuple[Break, ...] = ()
    max_distance: int | None = None
    cost_per_km: float = 1.0
    cost_per_hour: float = 0.0
    fixed_cost: float = 0.0
    skills: frozenset[str] = frozenset()
    max_trips: int = 1
    reload_time: int = 0
    co2_g_per_km: float = 180.0


@dataclass(frozen=True, slots=True)
class LockerInfo:
    """A parcel locker stop: the parcels' sizes and the locker's free compartments by size."""

    parcel_sizes: tuple[CompartmentSize, ...]
    free_compartments: Mapping[CompartmentSize, int]


@dataclass(frozen=True, slots=True)
class Stop:
    id: str
    location: tuple[float, float]
    kind: StopKind
    load: Load
    service_time: int
    windows: tuple[TimeWindow, ...]
    priority: int = 1
    skills: frozenset[str] = frozenset()
    required: bool = False
    locker: LockerInfo | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    """A pickup that must be delivered later by the same van (parcel picked up, dropped elsewhere)."""

    pickup: str
    delivery: str


@dataclass(frozen=True)
class Problem:
    """An immutable, validated planning problem with its travel matrices.

    Matrix index: depots first (in order), then stops (in order); ``index_of`` maps ids to rows.
    """

    depots: tuple[Depot, ...]
    vans: tuple[Van, ...]
    stops: tuple[Stop, ...]
    pairs: tuple[Pair, ...]
    distance: Matrix
    duration: Matrix
    drop_penalty: int = DEFAULT_DROP_PENALTY
    name: str = ""
    index_of: Mapping[str, int] = field(default_factory=dict)
    #: Time-of-day speeds, when the travel model has them (the haversine default): then a leg's
    #: time depends on when it starts (:meth:`leg_time`), and ``duration`` is only the solvers'
    #: static estimate (at the fleet's first shift start, or re-timed by ``solve.plan``).
    speed: SpeedProfile | None = None

    def leg_time(self, i: int, j: int, depart: int) -> int:
        """Seconds from matrix row ``i`` to ``j`` leaving at ``depart``: the truth for ETAs."""
        if self.speed is None or i == j:
            return int(self.duration[i, j])
        return self.speed.leg_time(float(self.distance[i, j]), depart)

    def stop(self, stop_id: str) -> Stop:
        return self.stops[self.index_of[stop_id] - len(self.depots)]

    def depot(self, depot_id: str) -> Depot:
        return self.depots[self.index_of[depot_id]]

    def van(self, van_id: str) -> Van:
        for van in self.vans:
            if van.id == van_id:
                return van
        raise KeyError(van_id)

    @property
    def load_kinds(self) -> tuple[str, ...]:
        """The load dimensions any stop uses; the others need not be modelled."""
        return tuple(k for k in LOAD_KINDS if any(s.load.of(k) for s in self.stops))

    @property
    def has_pickups(self) -> bool:
        paired = {p.pickup for p in self.pairs} | {p.delivery for p in self.pairs}
        return any(s.kind in ("pickup", "return") and s.id not in paired for s in self.stops)


def locker_fits(
    sizes: Sequence[CompartmentSize], free: Mapping[CompartmentSize, int]
) -> tuple[bool, str]:
    """Whether parcels fit the free compartments (a parcel fits its size or larger).

    Largest parcels first, each into the smallest free compartment that takes it: optimal for
    nested sizes, so a ``False`` is a real overflow, not a greedy miss.
    """
    left = {s: int(free.get(s, 0)) for s in _SIZES}
    for size in sorted(sizes, key=_SIZES.index, reverse=True):
        for bigger in _SIZES[_SIZES.index(size) :]:
            if left[bigger] > 0:
                left[bigger] -= 1
                break
        else:
            return False, f"no free compartment of size {size} or larger left"
    return True, ""


def _check_id(kind: str, item_id: str, seen: set[str]) -> None:
    if not isinstance(item_id, str) or not item_id:
        raise ProblemError(f"{kind} {item_id!r}", "an id must be a non-empty string")
    if item_id in seen:
        raise ProblemError(f"{kind} {item_id!r}", "duplicate id")
    seen.add(item_id)


def _check_location(item: str, location: tuple[float, float]) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in location)
    except (TypeError, ValueError) as err:
        raise ProblemError(item, f"location must be a pair of numbers, got {location!r}") from err
    if not (np.isfinite(a) and np.isfinite(b)):
        raise ProblemError(item, f"location must be finite, got {location!r}")
    return (a, b)


def _check_int(item: str, name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ProblemError(item, f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ProblemError(item, f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_load(item: str, load: Load) -> Load:
    for kind in LOAD_KINDS:
        _check_int(item, kind, load.of(kind))
    return load


class ProblemBuilder:
    """Collects depots, vans, stops and pairs, refusing each bad one as it is added.

    >>> b = ProblemBuilder()
    >>> b.add_depot(id="d", location=(52.52, 13.40), opens=0, closes=86_400)
    >>> b.add_van(id="v1", depot="d", capacity=Load(parcels=80), shift_start=28_800, shift_end=61_200)
    >>> b.add_stop(id="s1", location=(52.53, 13.41), load=Load(parcels=2))
    >>> problem = b.build(travel=HaversineTravel())  # doctest: +SKIP
    """

    def __init__(self, *, name: str = "", drop_penalty: int = DEFAULT_DROP_PENALTY) -> None:
        self._name = name
        self._drop_penalty = _check_int("problem", "drop_penalty", drop_penalty, minimum=1)
        self._depots: list[Depot] = []
        self._vans: list[Van] = []
        self._stops: list[Stop] = []
        self._pairs: list[Pair] = []
        self._ids: set[str] = set()
        self._van_ids: set[str] = set()

    def add_depot(
        self, *, id: str, location: tuple[float, float], opens: int = 0, closes: int = 86_400
    ) -> None:
        _check_id("depot", id, self._ids)
        item = f"depot {id!r}"
        opens = _check_int(item, "opens", opens)
        closes = _check_int(item, "closes", closes)
        if closes < opens:
            raise ProblemError(item, f"closes ({closes}) before it opens ({opens})")
        self._depots.append(Depot(id, _check_location(item, location), opens, closes))

    def add_van(
        self,
        *,
        id: str,
        depot: str,
        capacity: Load,
        shift_start: int,
        shift_end: int,
        end_depot: str | None = None,
        breaks: Iterable[Break] = (),
        max_distance: int | None = None,
        cost_per_km: float = 1.0,
        cost_per_hour: float = 0.0,
        fixed_cost: float = 0.0,
        skills: Iterable[str] = (),
        max_trips: int = 1,
        reload_time: int = 0,
        co2_g_per_km: float = 180.0,
    ) -> None:
        _check_id("van", id, self._van_ids)
        item = f"van {id!r}"
        depot_ids = {d.id for d in self._depots}
        for which in (depot, end_depot if end_depot is not None else depot):
            if which not in depot_ids:
                raise ProblemError(item, f"unknown depot {which!r} (add depots before vans)")
        _check_load(item, capacity)
        start = _check_int(item, "shift_start", shift_start)
        end = _check_int(item, "shift_end", shift_end)
        if end <= start:
            raise ProblemError(item, f"shift ends ({end}) before it starts ({start})")
        checked_breaks = []
        for b in breaks:
            _check_int(item, "break duration", b.duration, minimum=1)
            if b.latest < b.earliest or b.earliest < start or b.latest + b.duration > end:
                raise ProblemError(item, f"break {b} does not fit the shift {start}-{end}")
            checked_breaks.append(b)
        if max_distance is not None:
            _check_int(item, "max_distance", max_distance, minimum=1)
        for name, value in (
            ("cost_per_km", cost_per_km),
            ("cost_per_hour", cost_per_hour),
            ("fixed_cost", fixed_cost),
            ("co2_g_per_km", co2_g_per_km),
        ):
            if not isinstance(value, int | float) or value < 0 or not np.isfinite(value):
                raise ProblemError(item, f"{name} must be a finite number >= 0, got {value!r}")
        _check_int(item, "max_trips", max_trips, minimum=1)
        _check_int(item, "reload_time", reload_time)
        self._vans.append(
            Van(
                id=id,
                start_depot=depot,
                end_depot=end_depot if end_depot is not None else depot,
                capacity=capacity,
                shift_start=start,
                shift_end=end,
                breaks=tuple(sorted(checked_breaks, key=lambda b: b.earliest)),
                max_distance=max_distance,
                cost_per_km=float(cost_per_km),
                cost_per_hour=float(cost_per_hour),
                fixed_cost=float(fixed_cost),
                skills=frozenset(skills),
                max_trips=max_trips,
                reload_time=reload_time,
                co2_g_per_km=float(co2_g_per_km),
            )
        )

    def add_stop(
        self,
        *,
        id: str,
        location: tuple[float, float],
        kind: StopKind = "delivery",
        load: Load = Load(parcels=1),
        service_time: int = 0,
        windows: Iterable[tuple[int, int] | TimeWindow] = (),
        priority: int = 1,
        skills: Iterable[str] = (),
        required: bool = False,
    ) -> None:
        """A delivery (loaded at the depot), a pickup or a return (brought back to the depot).

        No windows means any time. ``required`` stops are never dropped: if one cannot be served the
        engine reports no plan instead of a plan without it.
        """
        _check_id("stop", id, self._ids)
        item = f"stop {id!r}"
        if kind not in ("delivery", "pickup", "return"):
            raise ProblemError(item, f"kind must be delivery, pickup or return, got {kind!r}")
        self._stops.append(
            Stop(
                id=id,
                location=_check_location(item, location),
                kind=kind,
                load=_check_load(item, load),
                service_time=_check_int(item, "service_time", service_time),
                windows=self._windows(item, windows),
                priority=_check_int(item, "priority", priority, minimum=1),
                skills=frozenset(skills),
                required=bool(required),
            )
        )

    def add_locker_stop(
        self,
        *,
        id: str,
        location: tuple[float, float],
        parcel_sizes: Sequence[CompartmentSize],
        free_compartments: Mapping[CompartmentSize, int],
        service_time: int = 0,
        per_parcel_time: int = 0,
        parcel_load: Load = Load(parcels=1),
        windows: Iterable[tuple[int, int] | TimeWindow] = (),
        priority: int = 1,
        required: bool = False,
    ) -> None:
        """Many parcels for one locker as one stop: one visit, service time grows per parcel.

        Refused if the parcels do not fit the locker's free compartments (a parcel fits its size or
        larger): planning a van to a locker that cannot take its load would strand parcels.
        """
        _check_id("stop", id, self._ids)
        item = f"locker stop {id!r}"
        if not parcel_sizes:
            raise ProblemError(item, "no parcels")
        for size in parcel_sizes:
            if size not in _SIZES:
                raise ProblemError(item, f"parcel size must be one of S, M, L, got {size!r}")
        for size, count in free_compartments.items():
            if size not in _SIZES:
                raise ProblemError(item, f"compartment size must be S, M or L, got {size!r}")
            _check_int(item, f"free {size} compartments", count)
        ok, why = locker_fits(parcel_sizes, free_compartments)
        if not ok:
            raise ProblemError(
                item,
                f"{len(parcel_sizes)} parcels do not fit the free compartments "
                f"{dict(free_compartments)}: {why}",
            )
        n = len(parcel_sizes)
        _check_load(item, parcel_load)
        self._stops.append(
            Stop(
                id=id,
                location=_check_location(item, location),
                kind="locker",
                load=Load(parcel_load.parcels * n, parcel_load.volume * n, parcel_load.weight * n),
                service_time=_check_int(item, "service_time", service_time)
                + n * _check_int(item, "per_parcel_time", per_parcel_time),
                windows=self._windows(item, windows),
                priority=_check_int(item, "priority", priority, minimum=1),
                required=bool(required),
                locker=LockerInfo(tuple(parcel_sizes), dict(free_compartments)),
            )
        )

    def add_existing(self, stop: Stop) -> None:
        """Re-add a stop taken from another problem (re-planning), checked like a new one."""
        _check_id("stop", stop.id, self._ids)
        item = f"stop {stop.id!r}"
        if stop.kind not in ("delivery", "pickup", "return", "locker"):
            raise ProblemError(item, f"unknown kind {stop.kind!r}")
        self._stops.append(
            replace(
                stop,
                location=_check_location(item, stop.location),
                load=_check_load(item, stop.load),
                service_time=_check_int(item, "service_time", stop.service_time),
                windows=self._windows(item, stop.windows),
                priority=_check_int(item, "priority", stop.priority, minimum=1),
            )
        )

    def add_pair(self, *, pickup: str, delivery: str) -> None:
        """The parcel picked up at ``pickup`` is carried by the same van to ``delivery``."""
        item = f"pair {pickup!r}->{delivery!r}"
        stops = {s.id: s for s in self._stops}
        for which in (pickup, delivery):
            if which not in stops:
                raise ProblemError(item, f"unknown stop {which!r} (add stops before pairs)")
        if pickup == delivery:
            raise ProblemError(item, "a stop cannot be paired with itself")
        used = {p.pickup for p in self._pairs} | {p.delivery for p in self._pairs}
        if pickup in used or delivery in used:
            raise ProblemError(item, "a stop can be in one pair only")
        if stops[pickup].kind != "pickup" or stops[delivery].kind != "delivery":
            raise ProblemError(item, "a pair joins a pickup stop to a delivery stop")
        if stops[pickup].load != stops[delivery].load:
            raise ProblemError(item, "the pickup and the delivery must carry the same load")
        if stops[pickup].required != stops[delivery].required:
            raise ProblemError(item, "both stops of a pair are required, or neither")
        self._pairs.append(Pair(pickup, delivery))

    @staticmethod
    def _windows(
        item: str, windows: Iterable[tuple[int, int] | TimeWindow]
    ) -> tuple[TimeWindow, ...]:
        out: list[TimeWindow] = []
        for w in windows:
            start, end = (w.start, w.end) if isinstance(w, TimeWindow) else w
            start = _check_int(item, "window start", start)
            end = _check_int(item, "window end", end)
            if end < start:
                raise ProblemError(item, f"window ends ({end}) before it starts ({start})")
            out.append(TimeWindow(start, end))
        out.sort(key=lambda w: w.start)
        for a, b in itertools.pairwise(out):
            if b.start <= a.end:
                raise ProblemError(item, f"windows {a} and {b} overlap")
        return tuple(out)

    def build(
        self,
        *,
        travel: TravelModel | None = None,
        distance: Matrix | None = None,
        duration: Matrix | None = None,
    ) -> Problem:
        """Check what spans items, compute the matrices with ``travel`` (or take given ones).

        Raises :class:`ProblemError` for a problem no plan can exist for in principle (no depot, no
        van); stops no van can serve are not an error here: the planner drops them with the reason.
        """
        if not self._depots:
            raise ProblemError("problem", "no depot")
        if not self._vans:
            raise ProblemError("problem", "no van")
        locations = [d.location for d in self._depots] + [s.location for s in self._stops]
        n = len(locations)
        if distance is None or duration is None:
            if travel is None:
                raise ProblemError("problem", "give a travel model or both matrices")
            start = min(v.shift_start for v in self._vans)
            distance, duration = travel.matrices(locations, depart_at=start)
        dist = np.array(distance, dtype=np.int64)
        dur = np.array(duration, dtype=np.int64)
        for name, m in (("distance", dist), ("duration", dur)):
            if m.shape != (n, n):
                raise ProblemError("problem", f"{name} matrix is {m.shape}, expected {(n, n)}")
            if (m < 0).any():
                raise ProblemError("problem", f"{name} matrix has negative entries")
            m.setflags(write=False)
        index_of = {d.id: i for i, d in enumerate(self._depots)}
        index_of.update({s.id: len(self._depots) + i for i, s in enumerate(self._stops)})
        speed = getattr(travel, "speed_profile", None) if travel is not None else None
        return Problem(
            depots=tuple(self._depots),
            vans=tuple(self._vans),
            stops=tuple(self._stops),
            pairs=tuple(self._pairs),
            distance=dist,
            duration=dur,
            drop_penalty=self._drop_penalty,
            name=self._name,
            index_of=index_of,
            speed=speed,
        )
