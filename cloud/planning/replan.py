"""Re-planning under way, as a pure library: no clock, no I/O, no solver state kept between calls.

The hub calls :func:`replan` with what telemetry says (each van's position, the stops done, the stop
each van is driving to) and what changed (new orders, cancellations, a broken-down van):

- Completed stops leave the problem; each van starts from where it is, at ``now``.
- Committed stops stay put: a van's uncompleted deliveries are on board, so they may only go on that
  van (a per-van skill does it); the stop a van is driving to stays its first stop.
- New delivery orders wait at the depot, so only vans that have not left yet may take them; new
  pickups and returns may go on any van.
- A broken-down van is taken out: its pickups go to others; the parcels on board are reported as
  stranded (nobody else has them) rather than silently replanned.
- The search starts from the current plan (warm start in OR-Tools), so a small change gives a
  small edit of the routes rather than a new plan the drivers have never seen.

Between re-plans, :func:`refresh_etas` projects arrival times from live positions along the planned
order (time-of-day speeds if the travel model has them) and flags stops predicted late.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from cloud.planning.errors import ProblemError
from cloud.planning.evaluate import RELOAD, RouteOrder
from cloud.planning.model import LOAD_KINDS, Load, Problem, ProblemBuilder, Stop
from cloud.planning.result import DroppedStop, Plan, Route
from cloud.planning.solve import plan as solve_plan
from cloud.planning.travel import TravelModel

COMMITTED_PRIORITY_FACTOR = 10
#: The skill of a van still at its depot: new deliveries (parcels at the depot) need it.
AT_DEPOT = "at-depot"


@dataclass(frozen=True, slots=True)
class VanPosition:
    van_id: str
    location: tuple[float, float]
    at: int


@dataclass(frozen=True)
class FleetState:
    """What telemetry says at ``now``. ``heading_to`` maps a van to the stop it is driving to."""

    now: int
    positions: Mapping[str, VanPosition]
    completed: frozenset[str] = frozenset()
    heading_to: Mapping[str, str] = field(default_factory=dict)
    departed: frozenset[str] | None = (
        None  # vans that left the depot; default: those with a position
    )


@dataclass(frozen=True)
class ReplanResult:
    problem: Problem
    plan: Plan
    stranded: tuple[DroppedStop, ...]


def _van_skill(van_id: str) -> str:
    return f"onboard:{van_id}"


def replan(
    problem: Problem,
    current: Plan,
    state: FleetState,
    *,
    travel: TravelModel,
    new_stops: Sequence[Stop] = (),
    cancelled: Iterable[str] = (),
    broken: Iterable[str] = (),
    time_limit: float = 5.0,
    seed: int = 0,
) -> ReplanResult:
    """Plan what remains from ``state``; see the module docstring for the rules.

    Raises :class:`ProblemError` for a change that names an unknown stop or van.
    """
    cancelled = frozenset(cancelled)
    broken = frozenset(broken)
    known = {s.id for s in problem.stops}
    for sid in cancelled:
        if sid not in known:
            raise ProblemError(f"stop {sid!r}", "cancelled, but not in the plan's problem")
    van_ids = {v.id for v in problem.vans}
    for vid in broken | set(state.positions):
        if vid not in van_ids:
            raise ProblemError(f"van {vid!r}", "not in the plan's problem")
    departed = state.departed if state.departed is not None else frozenset(state.positions)
    owner: dict[str, str] = {}
    for route in current.routes:
        for sid in route.stop_ids:
            owner[sid] = route.van_id
    # On board: a departed van's undelivered depot parcels, and the parcels of pairs whose pickup
    # is done (the delivery of a pair not yet picked up is not on board yet).
    pair_of = {p.delivery: p.pickup for p in problem.pairs}
    onboard: dict[str, str] = {}
    for sid, vid in owner.items():
        s = problem.stop(sid)
        if sid in state.completed or s.kind not in ("delivery", "locker"):
            continue
        if sid in pair_of:
            if pair_of[sid] in state.completed:
                onboard[sid] = vid
        elif vid in departed:
            onboard[sid] = vid
    stranded = tuple(
        DroppedStop(sid, f"parcels on board van {vid}, which broke down")
        for sid, vid in sorted(onboard.items())
        if vid in broken and sid not in cancelled
    )
    gone = set(state.completed) | cancelled | {d.stop_id for d in stranded}
    # A pair half done keeps its delivery as a plain stop on the same van (parcel on board).
    b = ProblemBuilder(name=f"{problem.name}@{state.now}", drop_penalty=problem.drop_penalty)
    for d in problem.depots:
        b.add_depot(id=d.id, location=d.location, opens=d.opens, closes=d.closes)
    active = [v for v in problem.vans if v.id not in broken]
    for van in active:
        pos = state.positions.get(van.id)
        start_depot = van.start_depot
        if pos is not None:
            start_depot = f"@{van.id}"
            # Opens and closes at ``now``: a van under way cannot wait to set off.
            b.add_depot(id=start_depot, location=pos.location, opens=state.now, closes=state.now)
        shift_start = max(van.shift_start, state.now)
        capacity = van.capacity
        if van.id in departed:  # returns already picked up ride along until the depot
            for sid, vid in owner.items():
                s = problem.stop(sid)
                if vid == van.id and sid in state.completed and s.kind in ("pickup", "return"):
                    capacity = Load(*(capacity.of(k) - s.load.of(k) for k in LOAD_KINDS))
        if shift_start >= van.shift_end:
            continue
        b.add_van(
            id=van.id,
            depot=start_depot,
            end_depot=van.end_depot,
            capacity=Load(*(max(0, capacity.of(k)) for k in LOAD_KINDS)),
            shift_start=shift_start,
            shift_end=van.shift_end,
            breaks=[br for br in van.breaks if br.earliest >= shift_start],
            max_distance=van.max_distance,
            cost_per_km=van.cost_per_km,
            cost_per_hour=van.cost_per_hour,
            fixed_cost=van.fixed_cost,
            skills=set(van.skills)
            | {_van_skill(van.id)}
            | ({AT_DEPOT} if van.id not in departed else set()),
            max_trips=van.max_trips,
            reload_time=van.reload_time,
            co2_g_per_km=van.co2_g_per_km,
        )
    keep = [s for s in problem.stops if s.id not in gone]
    pairs = [p for p in problem.pairs if p.pickup not in gone and p.delivery not in gone]
    half = {p.delivery for p in problem.pairs if p.pickup in state.completed} - gone
    for s in keep:
        skills = set(s.skills)
        priority = s.priority
        if s.id in onboard:
            skills.add(_van_skill(onboard[s.id]))
            priority *= COMMITTED_PRIORITY_FACTOR
        b.add_existing(replace(s, skills=frozenset(skills), priority=priority))
    for s in new_stops:
        skills = set(s.skills)
        if s.kind in ("delivery", "locker"):
            # The parcel waits at the depot: only a van still there can take it.
            skills.add(AT_DEPOT)
        b.add_existing(replace(s, skills=frozenset(skills)))
    for p in pairs:
        if p.pickup in half or p.delivery in half:
            continue
        b.add_pair(pickup=p.pickup, delivery=p.delivery)
    new_problem = b.build(travel=travel)
    initial = []
    present = {s.id for s in new_problem.stops}
    first: dict[str, str] = {}
    for route in current.routes:
        if route.van_id in broken:
            continue
        visits = tuple(v for v in _tokens(route) if v == RELOAD or v in present)
        initial.append(RouteOrder(van_id=route.van_id, visits=visits))
        target = state.heading_to.get(route.van_id)
        if target is not None and target in present:
            first[route.van_id] = target
    vans_now = {v.id for v in new_problem.vans}
    initial = [o for o in initial if o.van_id in vans_now]
    first = {k: v for k, v in first.items() if k in vans_now}
    new_plan = solve_plan(
        new_problem,
        time_limit=time_limit,
        seed=seed,
        engine="ortools",
        initial=initial,
        first_stop=first,
    )
    return ReplanResult(problem=new_problem, plan=new_plan, stranded=stranded)


def _tokens(route: Route) -> list[str]:
    return [v.stop_id if v.kind == "stop" else RELOAD for v in route.visits]


@dataclass(frozen=True, slots=True)
class StopEta:
    stop_id: str
    van_id: str
    eta: int
    due: int | None
    late_by: int

    @property
    def late(self) -> bool:
        return self.late_by > 0


def refresh_etas(
    problem: Problem,
    plan: Plan,
    state: FleetState,
    *,
    travel: TravelModel,
    tolerance: int = 0,
) -> list[StopEta]:
    """Projected service start of every remaining stop, from each van's live position.

    Legs use the problem's distances and, when the travel model has ``leg_time(distance, depart)``
    (the haversine model with its speed profile), the speed at the real departure time. A stop is
    late when its projected start is after its last window's end by more than ``tolerance`` s.
    """
    out: list[StopEta] = []
    leg_time = getattr(travel, "leg_time", None)
    for route in plan.routes:
        pos = state.positions.get(route.van_id)
        remaining = [
            v for v in route.visits if v.kind == "stop" and v.stop_id not in state.completed
        ]
        if pos is None or not remaining:
            continue
        first = problem.stop(remaining[0].stop_id)
        d, t = travel.matrices([pos.location, first.location], depart_at=state.now)
        t_now = max(state.now, pos.at)
        leg = int(leg_time(float(d[0, 1]), t_now)) if callable(leg_time) else int(t[0, 1])
        clock = t_now + leg
        prev = problem.index_of[first.id]
        for k, visit in enumerate(remaining):
            stop = problem.stop(visit.stop_id)
            here = problem.index_of[stop.id]
            if k > 0:
                if callable(leg_time):
                    clock += int(leg_time(float(problem.distance[prev, here]), clock))
                else:
                    clock += int(problem.duration[prev, here])
            begin = clock
            for w in stop.windows:
                if clock <= w.end:
                    begin = max(clock, w.start)
                    break
            due = stop.windows[-1].end if stop.windows else None
            late_by = max(0, begin - due) if due is not None else 0
            out.append(
                StopEta(stop.id, route.van_id, begin, due, late_by if late_by > tolerance else 0)
            )
            clock = begin + stop.service_time
            prev = here
    return out


def late_stops(etas: Iterable[StopEta]) -> list[StopEta]:
    """The stops predicted late, most late first: what raises an alert."""
    return sorted((e for e in etas if e.late), key=lambda e: -e.late_by)
