"""The OR-Tools routing engine: the one module that imports ``ortools``.

It carries every constraint of the model: several depots, per-van capacities (parcels, volume,
weight), shifts, breaks, range, cost per km/hour, skills, multiple time windows, priorities as drop
penalties, pickup-and-delivery pairs, and multiple trips with reloads at the depot.

How the constraints are modelled, where it is not the textbook one:

- Loads with pickups/returns or reloads: per load kind, a ``load`` dimension whose start is free
  (the van leaves with what it needs), deliveries subtract and pickups add, and a ``picked``
  dimension counting pickups since the last reload; ``load == picked`` on arriving back at the depot
  makes the departure load equal to the trip's deliveries exactly. At a reload node both may reset
  (slack), so each trip gets its own departure load.
- Multiple trips: ``max_trips - 1`` optional reload nodes per van at its depot, usable by that van only.
- Multiple time windows: the cumul range spans the windows and the gaps are removed.

Search: parallel cheapest insertion + guided local search (lambda 0.1) stayed the best plain
OR-Tools setting in our trials on R101, RC105, C201 at 10 s under load (savings first: better on
RC105, worse on R101; lambda 0.05 and multi-armed-bandit operators: no better; OR-Tools 9.15's
iterated local search stopped at the first local optimum from Python). What closes the gap is
not a parameter but a better start: the ``hybrid`` engine (``cloud.planning.solve``) gives this
module PyVRP's routes as ``initial``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from cloud.planning.errors import NoSolutionError
from cloud.planning.evaluate import RELOAD, RouteOrder
from cloud.planning.model import Problem

Metaheuristic = Literal["gls", "sa", "tabu", "descent"]
FirstSolution = Literal["parallel_insertion", "savings", "local_insertion", "path_cheapest_arc"]
ProgressFn = Callable[[float, float | None], None]

log = logging.getLogger(__name__)

_FIRST = {
    "parallel_insertion": routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION,
    "savings": routing_enums_pb2.FirstSolutionStrategy.SAVINGS,
    "local_insertion": routing_enums_pb2.FirstSolutionStrategy.LOCAL_CHEAPEST_INSERTION,
    "path_cheapest_arc": routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC,
}
_META = {
    "gls": routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH,
    "sa": routing_enums_pb2.LocalSearchMetaheuristic.SIMULATED_ANNEALING,
    "tabu": routing_enums_pb2.LocalSearchMetaheuristic.TABU_SEARCH,
    "descent": routing_enums_pb2.LocalSearchMetaheuristic.GREEDY_DESCENT,
}


@dataclass(frozen=True, slots=True)
class OrToolsSettings:
    """Search settings; the defaults are the tuned ones (see the module docstring)."""

    first_solution: FirstSolution = "parallel_insertion"
    metaheuristic: Metaheuristic = "gls"
    gls_lambda: float = 0.1
    log_search: bool = False
    solution_limit: int | None = None


@dataclass(frozen=True, slots=True)
class _Layout:
    node_loc: list[int]  # node -> matrix row (problem index)
    node_stop: list[str | None]  # node -> stop id (None for depots and reloads)
    reload_van: dict[int, int]  # reload node -> vehicle
    depot_node: dict[str, int]
    stop_node: dict[str, int]


def _layout(problem: Problem) -> _Layout:
    used = sorted(
        {v.start_depot for v in problem.vans} | {v.end_depot for v in problem.vans},
        key=lambda d: problem.index_of[d],
    )
    node_loc: list[int] = []
    node_stop: list[str | None] = []
    depot_node = {}
    for d in used:
        depot_node[d] = len(node_loc)
        node_loc.append(problem.index_of[d])
        node_stop.append(None)
    stop_node = {}
    for s in problem.stops:
        stop_node[s.id] = len(node_loc)
        node_loc.append(problem.index_of[s.id])
        node_stop.append(s.id)
    reload_van = {}
    for v, van in enumerate(problem.vans):
        for _ in range(van.max_trips - 1):
            reload_van[len(node_loc)] = v
            node_loc.append(problem.index_of[van.start_depot])
            node_stop.append(None)
    return _Layout(node_loc, node_stop, reload_van, depot_node, stop_node)


def solve(
    problem: Problem,
    *,
    time_limit: float,
    seed: int,
    settings: OrToolsSettings | None = None,
    initial: Sequence[RouteOrder] | None = None,
    first_stop: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> list[RouteOrder]:
    """Solve with OR-Tools; return each van's visit order (empty routes included).

    ``initial`` warm-starts the search from given routes (re-planning); ``first_stop`` pins a van's
    first visit (the stop it is already driving to). The seed has no effect on OR-Tools' own
    search, which is deterministic for a given work limit; it is accepted for a uniform API.

    Raises :class:`NoSolutionError` when no assignment is found (a required stop cannot be served).
    """
    cfg = settings or OrToolsSettings()
    lay = _layout(problem)
    n_nodes = len(lay.node_loc)
    vans = problem.vans
    starts = [lay.depot_node[v.start_depot] for v in vans]
    ends = [lay.depot_node[v.end_depot] for v in vans]
    manager = pywrapcp.RoutingIndexManager(n_nodes, len(vans), starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    solver = routing.solver()
    loc = np.asarray(lay.node_loc)
    dist = problem.distance[np.ix_(loc, loc)]
    service = np.zeros(n_nodes, dtype=np.int64)
    for s in problem.stops:
        service[lay.stop_node[s.id]] = s.service_time
    for node, v in lay.reload_van.items():
        service[node] = vans[v].reload_time
    travel = problem.duration[np.ix_(loc, loc)] + service[:, None]

    # Arc costs: one matrix per distinct cost per km (milli-currency: cost/km x metres).
    cost_cbs: dict[float, int] = {}
    for v, van in enumerate(vans):
        if van.cost_per_km not in cost_cbs:
            cost = np.rint(dist * van.cost_per_km).astype(np.int64)
            cost_cbs[van.cost_per_km] = routing.RegisterTransitMatrix(cost.tolist())
        routing.SetArcCostEvaluatorOfVehicle(cost_cbs[van.cost_per_km], v)
        if van.fixed_cost:
            routing.SetFixedCostOfVehicle(round(van.fixed_cost * 1000), v)

    # Time.
    horizon = int(max(max(v.shift_end for v in vans), max(d.closes for d in problem.depots)))
    time_cb = routing.RegisterTransitMatrix(travel.tolist())
    routing.AddDimension(time_cb, horizon, horizon, False, "time")
    tdim = routing.GetDimensionOrDie("time")
    for s in problem.stops:
        index = manager.NodeToIndex(lay.stop_node[s.id])
        cumul = tdim.CumulVar(index)
        if s.windows:
            cumul.SetRange(s.windows[0].start, min(s.windows[-1].end, horizon))
            for a, b in itertools.pairwise(s.windows):
                if b.start - a.end > 1:
                    cumul.RemoveInterval(a.end + 1, b.start - 1)
    for v, van in enumerate(vans):
        opens = problem.depot(van.start_depot).opens
        closes = problem.depot(van.end_depot).closes
        leaves_by = min(van.shift_end, problem.depot(van.start_depot).closes)
        tdim.CumulVar(routing.Start(v)).SetRange(max(van.shift_start, opens), leaves_by)
        tdim.CumulVar(routing.End(v)).SetRange(
            max(van.shift_start, opens), min(van.shift_end, closes)
        )
        coef = round(van.cost_per_hour * 1000 / 3600)
        if coef:
            tdim.SetSpanCostCoefficientForVehicle(coef, v)
        routing.AddVariableMaximizedByFinalizer(tdim.CumulVar(routing.Start(v)))
        routing.AddVariableMinimizedByFinalizer(tdim.CumulVar(routing.End(v)))

    # Breaks.
    visit_transits = [int(service[manager.IndexToNode(i)]) for i in range(routing.Size())]
    break_vars: dict[int, list[Any]] = {}
    for v, van in enumerate(vans):
        if van.breaks:
            intervals = [
                solver.FixedDurationIntervalVar(
                    b.earliest, b.latest, b.duration, False, f"b{v}_{k}"
                )
                for k, b in enumerate(van.breaks)
            ]
            tdim.SetBreakIntervalsOfVehicle(intervals, v, visit_transits)
            break_vars[v] = intervals

    _add_loads(problem, lay, manager, routing)

    # Range.
    if any(v.max_distance is not None for v in vans):
        dist_cb = routing.RegisterTransitMatrix(dist.tolist())
        big = int(dist.max()) * (n_nodes + 1)
        caps = [v.max_distance if v.max_distance is not None else big for v in vans]
        routing.AddDimensionWithVehicleCapacity(dist_cb, 0, caps, True, "distance")

    # Skills, drops, pairs, reloads.
    for s in problem.stops:
        index = manager.NodeToIndex(lay.stop_node[s.id])
        if s.skills:
            allowed = [v for v, van in enumerate(vans) if s.skills <= van.skills]
            if not allowed and s.required:
                raise NoSolutionError(
                    f"required stop {s.id}: no van has the skills {sorted(s.skills)}"
                )
            # VehicleVar is -1 when the stop is dropped. (SetAllowedVehiclesForIndex takes an
            # absl::Span that this SWIG build does not map from a Python list.)
            routing.VehicleVar(index).SetValues(allowed if s.required else [-1, *allowed])
        if not s.required:
            routing.AddDisjunction([index], problem.drop_penalty * s.priority)
    for pair in problem.pairs:
        p = manager.NodeToIndex(lay.stop_node[pair.pickup])
        d = manager.NodeToIndex(lay.stop_node[pair.delivery])
        routing.AddPickupAndDelivery(p, d)
        solver.Add(routing.VehicleVar(p) == routing.VehicleVar(d))
        solver.Add(tdim.CumulVar(p) <= tdim.CumulVar(d))
    for node, v in lay.reload_van.items():
        index = manager.NodeToIndex(node)
        routing.VehicleVar(index).SetValues([-1, v])
        routing.AddDisjunction([index], 0)
    for van_id, stop_id in (first_stop or {}).items():
        v = next(i for i, van in enumerate(vans) if van.id == van_id)
        target = manager.NodeToIndex(lay.stop_node[stop_id])
        # First on this van if served at all: a stop it can no longer make may still be dropped.
        is_first = solver.IsEqualCstVar(routing.NextVar(routing.Start(v)), target)
        solver.Add(is_first >= routing.ActiveVar(target))

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = _FIRST[cfg.first_solution]
    params.local_search_metaheuristic = _META[cfg.metaheuristic]
    params.guided_local_search_lambda_coefficient = cfg.gls_lambda
    params.time_limit.FromMilliseconds(max(1, round(time_limit * 1000)))
    params.log_search = cfg.log_search
    if cfg.solution_limit is not None:
        params.solution_limit = cfg.solution_limit

    began = time.monotonic()
    if progress is not None:
        report = progress

        def on_solution() -> None:
            report(
                min(1.0, (time.monotonic() - began) / time_limit), float(routing.CostVar().Max())
            )

        routing.AddAtSolutionCallback(on_solution)

    routing.CloseModelWithParameters(params)
    if initial:
        routes = []
        by_van = {o.van_id: o for o in initial}
        reloads_left = {
            v: [n for n, w in lay.reload_van.items() if w == v] for v in range(len(vans))
        }
        for v, van in enumerate(vans):
            order = by_van.get(van.id)
            seq = []
            for token in order.visits if order else ():
                if token == RELOAD:
                    if reloads_left[v]:
                        seq.append(manager.NodeToIndex(reloads_left[v].pop(0)))
                elif token in lay.stop_node:
                    seq.append(manager.NodeToIndex(lay.stop_node[token]))
            routes.append(seq)
        start = routing.ReadAssignmentFromRoutes(routes, True)
        if start is None:
            # Not feasible for the full model (e.g. a break no longer fits): construct afresh.
            log.info("initial routes rejected by the full model; OR-Tools constructs its own")
        solution = (
            routing.SolveFromAssignmentWithParameters(start, params)
            if start is not None
            else routing.SolveWithParameters(params)
        )
    else:
        solution = routing.SolveWithParameters(params)
    if solution is None:
        status = routing.status()
        raise NoSolutionError(
            f"OR-Tools found no plan for {problem.name or 'the problem'} (status {status}): "
            "a required stop may be impossible to serve, or the time limit is too short"
        )

    out: list[RouteOrder] = []
    intervals = solution.IntervalVarContainer()
    starts_by_name = {}
    for i in range(intervals.Size()):
        el = intervals.Element(i)
        if el.PerformedValue():
            starts_by_name[el.Var().Name()] = el.StartValue()
    for v, van in enumerate(vans):
        index = routing.Start(v)
        tokens: list[str] = []
        index = solution.Value(routing.NextVar(index))
        while not routing.IsEnd(index):
            node = manager.IndexToNode(index)
            stop_id = lay.node_stop[node]
            tokens.append(stop_id if stop_id is not None else RELOAD)
            index = solution.Value(routing.NextVar(index))
        while tokens and tokens[-1] == RELOAD:
            tokens.pop()
        breaks = tuple(
            starts_by_name[iv.Name()] for iv in break_vars.get(v, ()) if iv.Name() in starts_by_name
        )
        out.append(
            RouteOrder(
                van_id=van.id,
                visits=tuple(tokens),
                start=solution.Min(tdim.CumulVar(routing.Start(v))),
                break_starts=breaks,
            )
        )
    return out


def _add_loads(
    problem: Problem,
    lay: _Layout,
    manager: pywrapcp.RoutingIndexManager,
    routing: pywrapcp.RoutingModel,
) -> None:
    vans = problem.vans
    paired_p = {p.pickup for p in problem.pairs}
    paired_d = {p.delivery for p in problem.pairs}
    exact = bool(problem.pairs) or problem.has_pickups or bool(lay.reload_van)
    solver = routing.solver()
    n = len(lay.node_loc)
    for kind in problem.load_kinds:
        caps = [van.capacity.of(kind) for van in vans]
        if not exact:
            demand = [0] * n
            for s in problem.stops:
                demand[lay.stop_node[s.id]] = s.load.of(kind)
            cb = routing.RegisterUnaryTransitVector(demand)
            routing.AddDimensionWithVehicleCapacity(cb, 0, caps, True, f"load_{kind}")
            continue
        change = [0] * n
        picked = [0] * n
        for s in problem.stops:
            q = s.load.of(kind)
            node = lay.stop_node[s.id]
            if s.id in paired_p:
                change[node] = q
            elif s.id in paired_d or s.kind in ("delivery", "locker"):
                change[node] = -q
            else:  # pickup / return to the depot
                change[node] = q
                picked[node] = q
        for node, v in lay.reload_van.items():
            change[node] = -caps[v]
            picked[node] = -caps[v]
        slack = 2 * max(caps)
        load_cb = routing.RegisterUnaryTransitVector(change)
        pick_cb = routing.RegisterUnaryTransitVector(picked)
        routing.AddDimensionWithVehicleCapacity(load_cb, slack, caps, False, f"load_{kind}")
        routing.AddDimensionWithVehicleCapacity(pick_cb, slack, caps, True, f"picked_{kind}")
        load = routing.GetDimensionOrDie(f"load_{kind}")
        pick = routing.GetDimensionOrDie(f"picked_{kind}")
        for index in range(routing.Size()):
            if manager.IndexToNode(index) not in lay.reload_van:
                load.SlackVar(index).SetValue(0)
                pick.SlackVar(index).SetValue(0)
        for v in range(len(vans)):
            solver.Add(load.CumulVar(routing.End(v)) == pick.CumulVar(routing.End(v)))
        for node in lay.reload_van:
            index = manager.NodeToIndex(node)
            solver.Add(load.CumulVar(index) == pick.CumulVar(index))
