"""The PyVRP engine (hybrid genetic search), for the problems whose constraints PyVRP models.

PyVRP is far stronger than OR-Tools' local search on plain VRPTW/CVRP (0.09 % vs 2.1 % above the
best-known on Solomon at 30 s, measured on this machine), so ``plan(engine="auto")`` sends a problem
here when nothing in it needs OR-Tools: several depots, capacities in up to three kinds, deliveries
with pickups/returns on the same route, one time window per stop, shifts, range, integral costs per
km, optional stops with drop penalties, pickup-and-delivery pairs (PyVRP's shipments), and
skills (one routing profile per set of van skills, in which the stops a van may not serve are
out of reach), multiple trips (reloads at a twin of the depot). Breaks and several windows per
stop go to OR-Tools (:func:`supports` says which and why).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyvrp
from pyvrp.stop import MaxIterations, MaxRuntime

from cloud.planning.errors import NoSolutionError
from cloud.planning.evaluate import RELOAD, RouteOrder
from cloud.planning.model import Problem, Van

ProgressFn = Callable[[float, float | None], None]
_MAX = np.iinfo(np.int64).max // 4
#: Distance and duration to and from a stop a van lacks the skills for: never worth it, and
#: past every time window, so a route using it is infeasible rather than merely dear.
_OUT_OF_REACH = 10**9


def supports(problem: Problem) -> str | None:
    """``None`` if PyVRP can solve ``problem`` exactly as modelled, else the reason it cannot."""
    if any(v.breaks for v in problem.vans):
        return "driver breaks"
    if any(len(s.windows) > 1 for s in problem.stops):
        return "several time windows per stop"
    if any(not float(v.cost_per_km).is_integer() for v in problem.vans):
        return "fractional cost per km"
    return None


class _Progress:
    """A PyVRP stopping criterion that stops on time or iterations and reports progress."""

    def __init__(self, *, time_limit: float, iterations: int | None, report: ProgressFn | None):
        self._stop: Any = MaxIterations(iterations) if iterations else MaxRuntime(time_limit)
        self._time_limit = time_limit
        self._report = report
        self._began = time.monotonic()
        self._last = 0.0

    def __call__(self, best_cost: float) -> bool:
        done = bool(self._stop(best_cost))
        now = time.monotonic()
        if self._report is not None and (done or now - self._last > 0.2):
            self._last = now
            cost = None if best_cost == float("inf") else float(best_cost)
            self._report(min(1.0, (now - self._began) / self._time_limit), cost)
        return done


def _vehicle_key(van: Van) -> tuple[object, ...]:
    return (
        van.start_depot,
        van.end_depot,
        van.capacity,
        van.shift_start,
        van.shift_end,
        van.max_distance,
        van.cost_per_km,
        van.cost_per_hour,
        van.fixed_cost,
        tuple(sorted(van.skills)),
        van.max_trips,
        van.reload_time,
    )


def solve(
    problem: Problem,
    *,
    time_limit: float,
    seed: int,
    iterations: int | None = None,
    progress: ProgressFn | None = None,
) -> list[RouteOrder]:
    """Solve with PyVRP; return each used van's visit order.

    With ``iterations`` the search is bounded by work, not time, and so reproducible on a loaded
    machine. Raises :class:`NoSolutionError` if no feasible solution was found.
    """
    why = supports(problem)
    if why is not None:
        raise ValueError(f"PyVRP cannot model {why}; use the OR-Tools engine")
    kinds = problem.load_kinds or ("parcels",)
    m = pyvrp.Model()
    locs = [m.add_location(x=0.0, y=0.0) for _ in range(len(problem.depots) + len(problem.stops))]
    depots = {}
    for i, d in enumerate(problem.depots):
        depots[d.id] = m.add_depot(locs[i], tw_early=d.opens, tw_late=d.closes, name=d.id)
    # Reloads: a twin of the van's depot whose service time is the reload time.
    reload_depots = {}
    for van in problem.vans:
        key = (van.start_depot, van.reload_time)
        if van.max_trips > 1 and key not in reload_depots:
            d = problem.depot(van.start_depot)
            reload_depots[key] = m.add_depot(
                locs[problem.index_of[d.id]],
                tw_early=d.opens,
                tw_late=d.closes,
                service_duration=van.reload_time,
                name=f"{d.id}/reload",
            )
    base = len(problem.depots)
    paired = {p.pickup for p in problem.pairs} | {p.delivery for p in problem.pairs}
    client_ids: list[str] = []
    for i, s in enumerate(problem.stops):
        if s.id in paired:
            continue  # a shipment, below
        client_ids.append(s.id)
        pickup_like = s.kind in ("pickup", "return")
        amounts = [s.load.of(k) for k in kinds]
        zero = [0] * len(kinds)
        w = s.windows[0] if s.windows else None
        m.add_client(
            locs[base + i],
            delivery=zero if pickup_like else amounts,
            pickup=amounts if pickup_like else zero,
            service_duration=s.service_time,
            tw_early=w.start if w else 0,
            tw_late=w.end if w else _MAX,
            prize=0 if s.required else problem.drop_penalty * s.priority,
            required=s.required,
            name=s.id,
        )
    for pair in problem.pairs:
        up, down = problem.stop(pair.pickup), problem.stop(pair.delivery)
        pw = up.windows[0] if up.windows else None
        dw = down.windows[0] if down.windows else None
        m.add_shipment(
            locs[problem.index_of[up.id]],
            locs[problem.index_of[down.id]],
            pickup_tw_early=pw.start if pw else 0,
            pickup_tw_late=pw.end if pw else _MAX,
            pickup_service_duration=up.service_time,
            delivery_tw_early=dw.start if dw else 0,
            delivery_tw_late=dw.end if dw else _MAX,
            delivery_service_duration=down.service_time,
            amount=[up.load.of(k) for k in kinds],
            prize=0 if up.required else problem.drop_penalty * (up.priority + down.priority),
            required=up.required,
            name=f"{up.id}->{down.id}",
        )
    groups: dict[tuple[object, ...], list[Van]] = {}
    for van in problem.vans:
        groups.setdefault(_vehicle_key(van), []).append(van)
    type_vans: list[list[Van]] = []
    skill_sets = sorted({v.skills for v in problem.vans}, key=sorted)
    use_profiles = any(st.skills for st in problem.stops)
    profiles = [m.add_profile(name=",".join(sorted(k))) for k in skill_sets] if use_profiles else []
    for members in groups.values():
        van = members[0]
        m.add_vehicle_type(
            profile=profiles[skill_sets.index(van.skills)] if use_profiles else None,
            num_available=len(members),
            capacity=[van.capacity.of(k) for k in kinds],
            start_depot=depots[van.start_depot],
            end_depot=depots[van.end_depot],
            fixed_cost=round(van.fixed_cost * 1000),
            tw_early=max(van.shift_start, problem.depot(van.start_depot).opens),
            tw_late=min(van.shift_end, problem.depot(van.end_depot).closes),
            max_distance=van.max_distance if van.max_distance is not None else _MAX,
            unit_distance_cost=round(van.cost_per_km),
            unit_duration_cost=round(van.cost_per_hour * 1000 / 3600),
            reload_depots=[reload_depots[(van.start_depot, van.reload_time)]]
            if van.max_trips > 1
            else [],
            max_reloads=van.max_trips - 1,
            name=van.id,
        )
        type_vans.append(members)
    if use_profiles:
        dists, durs = [], []
        for skills in skill_sets:
            dist, dur = np.array(problem.distance), np.array(problem.duration)
            for i, st in enumerate(problem.stops):
                if not st.skills <= skills:
                    for mat in (dist, dur):
                        mat[base + i, :] = _OUT_OF_REACH
                        mat[:, base + i] = _OUT_OF_REACH
                        mat[base + i, base + i] = 0
            dists.append(dist)
            durs.append(dur)
        matrices: Any = (dists, durs)
    else:
        matrices = ([np.asarray(problem.distance)], [np.asarray(problem.duration)])
    data = m.data().replace(distance_matrices=matrices[0], duration_matrices=matrices[1])
    stop = _Progress(time_limit=time_limit, iterations=iterations, report=progress)
    params = pyvrp.SolveParams()
    prizes = [problem.drop_penalty * s.priority for s in problem.stops if not s.required]
    if prizes:
        # Excess load must cost more than any prize, or HGS keeps an overloaded route that
        # "collects" every prize (PyVRP caps its penalties at 1e5 by default).
        params = pyvrp.SolveParams(
            penalty=pyvrp.PenaltyParams(max_penalty=max(1e5, 10.0 * max(prizes)))
        )
    result = pyvrp.solve(data, stop, seed=seed, display=False, params=params)
    if not result.is_feasible():
        raise NoSolutionError(
            f"PyVRP found no feasible plan for {problem.name or 'the problem'} in {time_limit} s"
        )
    free = [list(vs) for vs in type_vans]
    orders = []
    for route in result.best.routes():
        van = free[route.vehicle_type()].pop(0)
        acts = list(route)  # start depot, visits (reloads are depots), end depot
        visits = tuple(
            RELOAD if a.is_depot() else _visit_id(problem, client_ids, a) for a in acts[1:-1]
        )
        orders.append(RouteOrder(van_id=van.id, visits=visits, start=int(route.start_time())))
    return orders


def _visit_id(problem: Problem, client_ids: list[str], activity: Any) -> str:
    """Our stop id for a PyVRP activity: a client, or one end of a shipment (a pair)."""
    idx: int = activity.idx
    if activity.is_client():
        return client_ids[idx]
    pair = problem.pairs[idx]
    return pair.pickup if bool(activity.is_pickup()) else pair.delivery
