"""Turn a visit order into a :class:`Plan`, checking every constraint on the way.

Engines only decide *who visits what in which order* (and when breaks and departures happen);
the schedule, loads, totals and violations are recomputed here from the problem itself. That gives
one definition of feasibility for both engines and for re-planning, and it catches solver modelling
mistakes instead of trusting them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloud.planning.model import LOAD_KINDS, Break, Load, Problem, Stop, Van
from cloud.planning.result import DroppedStop, Plan, Route, TakenBreak, Visit

RELOAD = "@reload"


@dataclass(frozen=True, slots=True)
class RouteOrder:
    """What an engine decided for one van: the visit order, and optionally when it leaves/breaks."""

    van_id: str
    visits: tuple[str, ...]  # stop ids, or RELOAD for a reload at the van's depot
    start: int | None = None
    break_starts: tuple[int, ...] = ()


def _window_start(stop: Stop, arrival: int) -> tuple[int, int]:
    """Service start at ``arrival`` (waiting for the next window if needed) and lateness."""
    if not stop.windows:
        return arrival, 0
    for w in stop.windows:
        if arrival <= w.end:
            return max(arrival, w.start), 0
    return arrival, arrival - stop.windows[-1].end


def _trip_loads(problem: Problem, van: Van, visits: Sequence[str]) -> list[Load]:
    """Load on leaving the depot for each trip: everything the trip delivers from the depot."""
    paired_deliveries = {p.delivery for p in problem.pairs}
    loads, cur = [], Load()
    for v in visits:
        if v == RELOAD:
            loads.append(cur)
            cur = Load()
            continue
        s = problem.stop(v)
        if s.kind in ("delivery", "locker") and s.id not in paired_deliveries:
            cur = cur + s.load
    loads.append(cur)
    return loads


def evaluate(
    problem: Problem,
    orders: Sequence[RouteOrder],
    *,
    engine: str,
    runtime: float,
    dropped_reasons: Mapping[str, str] | None = None,
) -> Plan:
    idx = problem.index_of
    dist = problem.distance
    paired_pickups = {p.pickup: p.delivery for p in problem.pairs}
    violations: list[str] = []
    routes: list[Route] = []
    seen: dict[str, tuple[str, int]] = {}
    for order in orders:
        if not order.visits:
            continue
        van = problem.van(order.van_id)
        start_t = max(order.start if order.start is not None else van.shift_start, van.shift_start)
        start_t = max(start_t, problem.depot(van.start_depot).opens)
        if problem.speed is not None:
            latest = min(problem.depot(van.start_depot).closes, van.shift_end)
            start_t = td_departure(problem, van, order.visits, earliest=start_t, latest=latest)
        if start_t > problem.depot(van.start_depot).closes:
            violations.append(
                f"van {van.id}: leaves at {start_t}, after depot {van.start_depot} closes"
            )
        trip_loads = _trip_loads(problem, van, order.visits)
        trip = 0
        load = trip_loads[0]
        departure_load = load
        if not load.fits_in(van.capacity):
            violations.append(f"van {van.id}: leaves with {load}, over capacity {van.capacity}")
        here = idx[van.start_depot]
        t = start_t
        total_dist = total_drive = 0
        visits: list[Visit] = []
        pending_breaks = list(van.breaks)
        planned_breaks = list(order.break_starts)
        taken: list[TakenBreak] = []
        # A break the engine put before departure is taken at the depot (the driver's shift runs).
        while (
            pending_breaks
            and len(planned_breaks) > len(taken)
            and planned_breaks[len(taken)] + pending_breaks[0].duration <= start_t
        ):
            taken.append(TakenBreak(planned_breaks[len(taken)], pending_breaks.pop(0).duration))
        for pos, token in enumerate(order.visits):
            if token == RELOAD:
                node = idx[van.start_depot]
                stop = None
            else:
                if token in seen:
                    violations.append(f"stop {token}: visited twice")
                seen[token] = (van.id, pos)
                node = idx[token]
                stop = problem.stop(token)
            leg = problem.leg_time(here, node, t)
            arrival = (
                t
                + leg
                + _leg_breaks(pending_breaks, planned_breaks, taken, t, leg, van, violations)
            )
            total_dist += int(dist[here, node])
            total_drive += leg
            if stop is None:
                trip += 1
                load = trip_loads[trip]
                begin, late = arrival, 0
                departure = arrival + van.reload_time
                if not load.fits_in(van.capacity):
                    violations.append(f"van {van.id}: trip {trip + 1} over capacity")
                visits.append(Visit(RELOAD, "reload", arrival, begin, departure, load))
            else:
                begin, late = _window_start(stop, arrival)
                if pending_breaks:
                    begin = _wait_breaks(pending_breaks, planned_breaks, taken, arrival, begin)
                    begin, late = _window_start(stop, begin)
                if late:
                    violations.append(f"stop {stop.id}: served {late} s after its last window")
                departure = begin + stop.service_time
                if stop.kind in ("pickup", "return") or stop.id in paired_pickups:
                    load = load + stop.load
                else:
                    load = Load(*(load.of(k) - stop.load.of(k) for k in LOAD_KINDS))
                if not load.fits_in(van.capacity):
                    violations.append(f"van {van.id}: over capacity after stop {stop.id}")
                if stop.skills - van.skills:
                    violations.append(
                        f"stop {stop.id}: needs {sorted(stop.skills)}, van {van.id} lacks them"
                    )
                visits.append(Visit(stop.id, "stop", arrival, begin, departure, load, late))
            t, here = departure, node
        end_node = idx[van.end_depot]
        leg = problem.leg_time(here, end_node, t)
        end = t + leg + _leg_breaks(pending_breaks, planned_breaks, taken, t, leg, van, violations)
        for b in pending_breaks:
            if b.latest < end and not planned_breaks[len(taken) :]:
                violations.append(f"van {van.id}: break due by {b.latest} never taken")
        total_dist += int(dist[here, end_node])
        total_drive += leg
        if end > van.shift_end:
            violations.append(f"van {van.id}: back at {end}, after its shift end {van.shift_end}")
        if end > problem.depot(van.end_depot).closes:
            violations.append(f"van {van.id}: back after depot {van.end_depot} closes")
        if van.max_distance is not None and total_dist > van.max_distance:
            violations.append(f"van {van.id}: {total_dist} m over its range {van.max_distance} m")
        trips = sum(1 for v in order.visits if v == RELOAD) + 1
        if trips > van.max_trips:
            violations.append(f"van {van.id}: {trips} trips, at most {van.max_trips}")
        cost = (
            van.cost_per_km * total_dist / 1000
            + van.cost_per_hour * (end - start_t) / 3600
            + van.fixed_cost
        )
        routes.append(
            Route(
                van_id=van.id,
                start=start_t,
                end=end,
                distance=total_dist,
                driving=total_drive,
                visits=tuple(visits),
                breaks=tuple(taken),
                departure_load=departure_load,
                co2_kg=van.co2_g_per_km * total_dist / 1e6,
                cost=cost,
            )
        )
    for pickup, delivery in paired_pickups.items():
        at_p, at_d = seen.get(pickup), seen.get(delivery)
        if (at_p is None) != (at_d is None):
            violations.append(f"pair {pickup}->{delivery}: only one end is served")
        elif at_p is not None and at_d is not None and (at_p[0] != at_d[0] or at_p[1] > at_d[1]):
            violations.append(
                f"pair {pickup}->{delivery}: not picked up before delivery on one van"
            )
    reasons = dict(dropped_reasons or {})
    dropped = tuple(
        DroppedStop(s.id, reasons.get(s.id) or why_dropped(problem, s))
        for s in problem.stops
        if s.id not in seen
    )
    required = tuple(d.stop_id for d in dropped if problem.stop(d.stop_id).required)
    return Plan(
        routes=tuple(routes),
        dropped=dropped,
        engine=engine,
        runtime=runtime,
        violations=tuple(violations),
        problem_name=problem.name,
        required_dropped=required,
    )


def td_departure(
    problem: Problem, van: Van, visits: Sequence[str], *, earliest: int, latest: int
) -> int:
    """When a van should leave under time-of-day speeds, for a given visit order.

    The engines' departure times come from a static matrix, so they are not kept: the van leaves
    as late as it can without waiting at its first stop, but never so late that the route is
    later anywhere than if it left at ``earliest``, nor after ``latest`` (the depot closes: a van
    under way leaves its live position now). Travel times obey first-in-first-out (leaving
    later never arrives earlier), so arrival and lateness only grow with the departure time and
    both bounds are found by bisection. Breaks are left to the full evaluation.
    """
    stops = [v for v in visits if v != RELOAD]
    if not stops:
        return earliest
    first = problem.stop(stops[0])
    if not first.windows:
        return earliest
    d0, s0 = problem.index_of[van.start_depot], problem.index_of[first.id]

    def arrival(at: int) -> int:
        return at + problem.leg_time(d0, s0, at)

    target = first.windows[0].start
    if arrival(earliest) >= target or latest <= earliest:
        return earliest
    if arrival(latest) <= target:
        hi = lo = latest
    else:
        lo, hi = earliest, min(latest, max(earliest, target))  # arrival(lo) < target <= arrival(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if arrival(mid) <= target:
            lo = mid
        else:
            hi = mid
    best = _lateness(problem, van, visits, earliest)
    if _lateness(problem, van, visits, lo) <= best:
        return lo
    good, bad = earliest, lo
    while bad - good > 1:
        mid = (good + bad) // 2
        if _lateness(problem, van, visits, mid) <= best:
            good = mid
        else:
            bad = mid
    return good


def _lateness(problem: Problem, van: Van, visits: Sequence[str], start: int) -> int:
    """Seconds late over the route (windows, and back after the shift) leaving at ``start``."""
    idx = problem.index_of
    here, t, late = idx[van.start_depot], start, 0
    for token in visits:
        node = idx[van.start_depot] if token == RELOAD else idx[token]
        t += problem.leg_time(here, node, t)
        if token == RELOAD:
            t += van.reload_time
        else:
            stop = problem.stop(token)
            t, over = _window_start(stop, t)
            late += over
            t += stop.service_time
        here = node
    t += problem.leg_time(here, idx[van.end_depot], t)
    return late + max(0, t - min(van.shift_end, problem.depot(van.end_depot).closes))


def objective(problem: Problem, plan: Plan) -> float:
    """What the engines minimise, in their unit (milli-currency): routes plus drop penalties.

    Re-planning and re-timing compare plans with it; a plan that breaks a constraint or drops a
    required stop is worse than any that does not (compare ``(not feasible, objective)``).
    """
    penalties = sum(
        problem.drop_penalty * problem.stop(d.stop_id).priority
        for d in plan.dropped
        if not problem.stop(d.stop_id).required
    )
    return 1000 * plan.cost + penalties


def rank(problem: Problem, plan: Plan) -> tuple[int, int, float]:
    """Sort key of plans for the same problem: feasible first, then fewer violations, then cost."""
    broken = len(plan.violations) + len(plan.required_dropped)
    return (0 if broken == 0 else 1, broken, objective(problem, plan))


def _leg_breaks(
    pending: list[Break],
    planned: list[int],
    taken: list[TakenBreak],
    t: int,
    leg: int,
    van: Van,
    violations: list[str],
) -> int:
    """Breaks taken while driving the coming leg (it is interrupted); returns the added delay.

    A break is taken on this leg when the engine planned it to start by the end of the leg or,
    without a plan, when its latest start would pass before the leg ends.
    """
    delay = 0
    while pending:
        b = pending[0]
        planned_at = planned[len(taken)] if len(taken) < len(planned) else None
        if planned_at is not None:
            if planned_at > t + leg + delay:
                break
            begin = max(t, planned_at)
        else:
            if t + leg + delay <= b.latest:
                break
            begin = max(t, b.earliest)
        if begin > b.latest:
            violations.append(f"van {van.id}: break due by {b.latest} starts at {begin}")
        taken.append(TakenBreak(begin, b.duration))
        pending.pop(0)
        delay += b.duration
    return delay


def _wait_breaks(
    pending: list[Break], planned: list[int], taken: list[TakenBreak], arrival: int, begin: int
) -> int:
    """Breaks taken while waiting at a stop for its window; returns the (maybe later) service start."""
    while pending:
        b = pending[0]
        planned_at = planned[len(taken)] if len(taken) < len(planned) else None
        start = max(arrival, b.earliest, planned_at or 0)
        if start > b.latest:
            break
        if planned_at is None and start + b.duration > begin:
            break  # only absorb it for free; otherwise the next leg takes it when due
        if planned_at is not None and planned_at > begin:
            break
        taken.append(TakenBreak(start, b.duration))
        pending.pop(0)
        begin = max(begin, start + b.duration)
    return begin


def why_dropped(problem: Problem, stop: Stop) -> str:
    """The first reason we can prove why no van could serve ``stop``, else the cost/time reason."""
    vans = [v for v in problem.vans if stop.skills <= v.skills]
    if not vans:
        return f"no van has the skills {sorted(stop.skills)}"
    vans = [v for v in vans if stop.load.fits_in(v.capacity)]
    if not vans:
        return f"its load {stop.load} exceeds every suitable van's capacity"
    idx = problem.index_of
    s = idx[stop.id]
    reachable = []
    for v in vans:
        d0, d1 = idx[v.start_depot], idx[v.end_depot]
        leave = max(v.shift_start, problem.depot(v.start_depot).opens)
        begin, late = _window_start(stop, leave + problem.leg_time(d0, s, leave))
        done = begin + stop.service_time
        back = done + problem.leg_time(s, d1, done)
        if not late and back <= min(v.shift_end, problem.depot(v.end_depot).closes):
            reachable.append(v)
    if not reachable:
        return "no van can reach it within its time windows and be back before its shift ends"
    in_range = [
        v
        for v in reachable
        if v.max_distance is None
        or problem.distance[idx[v.start_depot], s] + problem.distance[s, idx[v.end_depot]]
        <= v.max_distance
    ]
    if not in_range:
        return "beyond the range (max route distance) of every van that could reach it"
    return (
        "no room left on any route (capacity, time, or the detour costs more than its drop "
        "penalty) within the time limit"
    )
