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
- The best engine the constraints allow: PyVRP when it models the remaining problem (each van
  starting from its live position and time is a start depot and shift window of its own; the
  stop it is driving to is folded into that start), else OR-Tools warm-started from the current
  plan. Either way the result is compared with the current plan with the change applied
  naively (cancelled stops removed, the broken van's route gone, new orders unserved), by the
  engines' objective, and the current plan is kept unless the new one is strictly better: a
  re-plan is never worse than not re-planning, and a small change gives no needless edits.

Between re-plans, :func:`refresh_etas` projects arrival times from live positions along the planned
order (time-of-day speeds if the travel model has them) and flags stops predicted late.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from cloud.planning.errors import NoSolutionError, ProblemError
from cloud.planning.evaluate import RELOAD, RouteOrder, evaluate, rank
from cloud.planning.model import LOAD_KINDS, Depot, Load, Problem, ProblemBuilder, Stop
from cloud.planning.result import DroppedStop, Plan, Route
from cloud.planning.solve import plan as solve_plan
from cloud.planning.travel import TravelModel

COMMITTED_PRIORITY_FACTOR = 10
#: Matrix cells (vans x locations^2) up to which a re-plan uses PyVRP (one matrix pair per van).
PYVRP_MATRIX_BUDGET = 20_000_000
#: Share of a re-plan's time limit for PyVRP; OR-Tools, warm-started, polishes for the rest.
REPLAN_PYVRP_SHARE = 0.5
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
    # The current plan with the change applied and nothing else: what the drivers would do if
    # nobody re-planned. The re-plan is never worse than it (ties keep it: no needless edits).
    naive = evaluate(new_problem, initial, engine="kept", runtime=0.0)
    new_plan = _solve(
        new_problem, initial=initial, first=first, now=state.now, time_limit=time_limit, seed=seed
    )
    if new_plan is None or rank(new_problem, new_plan) >= rank(new_problem, naive):
        new_plan = replace(naive, runtime=new_plan.runtime if new_plan is not None else 0.0)
    return ReplanResult(problem=new_problem, plan=new_plan, stranded=stranded)


def _solve(
    problem: Problem,
    *,
    initial: Sequence[RouteOrder],
    first: Mapping[str, str],
    now: int,
    time_limit: float,
    seed: int,
) -> Plan | None:
    """The best engines the re-plan allows: PyVRP if it models it, then OR-Tools warm-started.

    PyVRP (half the time) plans the remaining problem afresh; OR-Tools then starts from the
    better of PyVRP's plan and ``initial`` (the current routes) and improves it, honouring the
    pinned first stops. Measured on Solomon re-plans, neither alone is always best: PyVRP wins
    early in the day (many stops left), the warm-started OR-Tools late (few stops, long fixed
    prefixes). The better of the two is returned. PyVRP takes vans starting anywhere at any time (a start depot per van, shift windows), but
    not a pinned first stop; that pin is folded into the van's start instead (:func:`_pin_first`).
    Returns ``None`` when the engine finds no plan (the caller keeps the current one).
    """
    from cloud.planning import pyvrp_engine

    n = len(problem.distance)
    pinned = _pin_first(problem, first, now) if pyvrp_engine.supports(problem) is None else None
    began = time.monotonic()
    found: Plan | None = None
    ortools_limit = time_limit
    # One routing profile (a matrix pair) per van in PyVRP (each van has its own on-board skill).
    if pinned is not None and len(problem.vans) * n * n <= PYVRP_MATRIX_BUDGET:
        reduced, prefix = pinned
        try:
            orders = pyvrp_engine.solve(
                reduced, time_limit=REPLAN_PYVRP_SHARE * time_limit, seed=seed
            )
        except NoSolutionError:
            orders = None
        if orders is not None:
            by_van = {o.van_id: o for o in orders}
            full = []
            for van in problem.vans:
                o = by_van.get(van.id)
                visits = prefix.get(van.id, ()) + (o.visits if o is not None else ())
                start = o.start if o is not None and van.id not in prefix else None
                if visits:
                    full.append(RouteOrder(van_id=van.id, visits=visits, start=start))
            found = evaluate(problem, full, engine="pyvrp", runtime=time.monotonic() - began)
            if rank(problem, found) < rank(
                problem, evaluate(problem, initial, engine="kept", runtime=0)
            ):
                initial = full  # OR-Tools polishes PyVRP's plan rather than the old one
        ortools_limit = max(0.1, time_limit - (time.monotonic() - began))
    try:
        polished = solve_plan(
            problem,
            time_limit=ortools_limit,
            seed=seed,
            engine="ortools",
            initial=initial,
            first_stop=dict(first),
        )
    except NoSolutionError:
        return found
    if found is not None and rank(problem, found) <= rank(problem, polished):
        return found
    return polished


def _pin_first(
    problem: Problem, first: Mapping[str, str], now: int
) -> tuple[Problem, dict[str, tuple[str, ...]]] | None:
    """The problem with each pinned first stop served already: the van starts there, later.

    A van driving to stop ``T`` starts, in the reduced problem, at ``T`` when it would leave it
    (arrival from its live position at ``now``, wait for the window, service), with the range it
    will have left. The stop leaves the reduced problem and is put back in front of that van's
    route afterwards. A pin it can no longer make on time is not folded (the stop is left free,
    to be dropped or served late by the solver's choice, as OR-Tools' pin allows). ``None`` when
    a pin is half of a pickup-and-delivery pair (the pair would be split).
    """
    paired = {p.pickup for p in problem.pairs} | {p.delivery for p in problem.pairs}
    idx = problem.index_of
    moved: dict[str, tuple[str, int, int]] = {}  # van -> (stop, leaves at, metres used)
    for van_id, sid in first.items():
        if sid in paired:
            return None
        van = problem.van(van_id)
        stop = problem.stop(sid)
        d0, s0 = idx[van.start_depot], idx[sid]
        leave = max(now, van.shift_start, problem.depot(van.start_depot).opens)
        arrive = leave + problem.leg_time(d0, s0, leave)
        w = stop.windows[0] if stop.windows else None
        if w is not None and arrive > w.end:
            continue
        begin = max(arrive, w.start) if w is not None else arrive
        moved[van_id] = (sid, begin + stop.service_time, int(problem.distance[d0, s0]))
    if not moved:
        return problem, {}
    gone = {sid for sid, _, _ in moved.values()}
    depots = list(problem.depots)
    rows = list(range(len(depots)))
    vans = []
    for van in problem.vans:
        if van.id not in moved:
            vans.append(van)
            continue
        sid, leaves, used = moved[van.id]
        if leaves >= van.shift_end:
            return None
        depot = Depot(
            id=f"@{van.id}@{sid}", location=problem.stop(sid).location, opens=leaves, closes=leaves
        )
        depots.append(depot)
        rows.append(idx[sid])
        left = None if van.max_distance is None else max(0, van.max_distance - used)
        vans.append(replace(van, start_depot=depot.id, shift_start=leaves, max_distance=left))
    stops = [s for s in problem.stops if s.id not in gone]
    rows += [idx[s.id] for s in stops]
    sel = np.ix_(rows, rows)
    dist, dur = problem.distance[sel].copy(), problem.duration[sel].copy()
    for m in (dist, dur):
        m.setflags(write=False)
    index_of = {d.id: i for i, d in enumerate(depots)}
    index_of.update({s.id: len(depots) + i for i, s in enumerate(stops)})
    reduced = replace(
        problem,
        depots=tuple(depots),
        vans=tuple(vans),
        stops=tuple(stops),
        distance=dist,
        duration=dur,
        index_of=index_of,
    )
    return reduced, {v: (sid,) for v, (sid, _, _) in moved.items()}


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
