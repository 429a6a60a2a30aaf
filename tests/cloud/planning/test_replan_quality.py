"""A re-plan is never worse than the current plan with the change applied naively.

"Naively": the drivers keep their routes; cancelled and completed stops are skipped, the broken
van's route is gone, new orders are not served (their drop penalty counts). Compared by the
engines' objective (``evaluate.rank``: feasible first, then route cost plus drop penalties), for
each story of ``test_replan`` and with the engine the constraints allow (PyVRP, or OR-Tools when
a van has a break PyVRP cannot model).
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from cloud.planning import Load, Plan, Problem, ProblemBuilder, plan
from cloud.planning.evaluate import RELOAD, RouteOrder, evaluate, rank
from cloud.planning.model import Break, Stop
from cloud.planning.replan import FleetState, ReplanResult, VanPosition, replan
from tests.cloud.planning.conftest import LINE, at
from tests.cloud.planning.test_replan import _town, _underway

TL = 1.0


def _naive(result: ReplanResult, current: Plan, broken: Iterable[str] = ()) -> Plan:
    present = {s.id for s in result.problem.stops}
    vans = {v.id for v in result.problem.vans}
    orders = [
        RouteOrder(
            r.van_id,
            tuple(
                v.stop_id if v.kind == "stop" else RELOAD
                for v in r.visits
                if v.kind != "stop" or v.stop_id in present
            ),
        )
        for r in current.routes
        if r.van_id in vans and r.van_id not in set(broken)
    ]
    return evaluate(result.problem, orders, engine="naive", runtime=0)


def _pickup(sid: str, x: float, y: float) -> Stop:
    return Stop(
        id=sid, location=(x, y), kind="pickup", load=Load(parcels=1), service_time=0, windows=()
    )


def _story(
    name: str, problem: Problem, current: Plan, east: str, west: str
) -> tuple[ReplanResult, Plan]:
    if name == "new order":
        r = replan(
            problem,
            current,
            _underway(east, west),
            travel=LINE,
            new_stops=[_pickup("n1", 25.0, 5.0)],
            time_limit=TL,
        )
        return r, _naive(r, current)
    if name == "cancelled stop":
        r = replan(
            problem, current, _underway(east, west), travel=LINE, cancelled=["e3"], time_limit=TL
        )
        return r, _naive(r, current)
    if name == "broken-down van":
        r = replan(
            problem, current, _underway(east, west), travel=LINE, broken=[west], time_limit=TL
        )
        return r, _naive(r, current, broken=[west])
    stuck = FleetState(
        now=195,
        positions={east: VanPosition(east, at(10), 195), west: VanPosition(west, at(-5), 195)},
        completed=frozenset({"e1"}),
        heading_to={east: "e2"},
    )
    r = replan(problem, current, stuck, travel=LINE, time_limit=TL)
    return r, _naive(r, current)


STORIES = ["new order", "cancelled stop", "broken-down van", "van running late"]


@pytest.mark.parametrize("story", STORIES)
def test_the_replan_costs_no_more_than_keeping_the_routes(story: str) -> None:
    problem, current, east, west = _town()
    result, naive = _story(story, problem, current, east, west)
    assert rank(result.problem, result.plan) <= rank(result.problem, naive), (
        result.plan.summary(),
        naive.summary(),
    )
    # Plain time windows, no breaks: PyVRP plans, OR-Tools may polish, or the routes are kept.
    assert result.plan.engine in ("pyvrp", "ortools", "kept")


def test_where_keeping_the_routes_is_bad_the_replan_is_strictly_better() -> None:
    problem, current, east, west = _town()
    for story in ("new order", "broken-down van", "van running late"):
        result, naive = _story(story, problem, current, east, west)
        assert rank(result.problem, result.plan) < rank(result.problem, naive), story
        assert result.plan.engine in ("pyvrp", "ortools")


def test_the_stop_a_van_drives_to_is_folded_into_its_start_for_pyvrp() -> None:
    from cloud.planning.replan import _pin_first

    problem, current, east, west = _town()
    result = replan(problem, current, _underway(east, west), travel=LINE, time_limit=TL)
    reduced, prefix = _pin_first(result.problem, {east: "e2", west: "w1"}, 15)  # type: ignore[misc]
    assert prefix == {east: ("e2",), west: ("w1",)}
    assert {s.id for s in reduced.stops} == {s.id for s in result.problem.stops} - {"e2", "w1"}
    van = reduced.van(east)
    # At x = 15 at t = 15, e2 is at x = 20: there at 20, service 0, so it "starts" there then.
    assert (reduced.depot(van.start_depot).opens, van.shift_start) == (20, 20)
    i = reduced.index_of
    assert reduced.distance[i[van.start_depot], i["e3"]] == 10  # from e2's place


def test_a_van_with_a_break_replans_with_ortools_and_is_still_no_worse() -> None:
    b = ProblemBuilder(name="breaks")
    b.add_depot(id="d", location=at(0))
    b.add_van(
        id="v1",
        depot="d",
        capacity=Load(parcels=5),
        shift_start=0,
        shift_end=2000,
        breaks=[Break(100, 400, 30)],
    )
    b.add_van(id="v2", depot="d", capacity=Load(parcels=5), shift_start=0, shift_end=2000)
    for k, x in enumerate((10, 20, 30, -10, -20, -30)):
        b.add_stop(id=f"s{k}", location=at(x))
    problem = b.build(travel=LINE)
    current = plan(problem, time_limit=TL, seed=1)
    assert current.is_feasible() and not current.dropped
    van = current.routes[0].van_id
    done = current.routes[0].stop_ids[0]
    state = FleetState(
        now=12,
        positions={r.van_id: VanPosition(r.van_id, at(0), 12) for r in current.routes},
        completed=frozenset({done}),
    )
    result = replan(
        problem, current, state, travel=LINE, new_stops=[_pickup("n", 15.0, 3.0)], time_limit=TL
    )
    naive = _naive(result, current)
    assert result.plan.engine in ("ortools", "kept")
    assert rank(result.problem, result.plan) <= rank(result.problem, naive)
    assert result.plan.visit_of("n") is not None  # worth a detour: strictly better here
    assert result.plan.route_of(van) is not None
