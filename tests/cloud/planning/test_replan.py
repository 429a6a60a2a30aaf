"""Re-planning stories: a new order, a cancelled stop, a broken-down van, a van running late.

The town: a depot at (0, 0), three deliveries east (x = 10, 20, 30) and two west (x = -10, -20),
a return to collect at x = -15, vans of capacity 3, so one van goes each way. Distances and
times are Euclidean (1 unit = 1 m = 1 s).
"""

from __future__ import annotations

import pytest

from cloud.planning import Load, Plan, Problem, ProblemBuilder, ProblemError, plan
from cloud.planning.model import Stop, TimeWindow
from cloud.planning.replan import (
    AT_DEPOT,
    FleetState,
    VanPosition,
    late_stops,
    refresh_etas,
    replan,
)
from tests.cloud.planning.conftest import LINE, at

TL = 0.5


def _town() -> tuple[Problem, Plan, str, str]:
    b = ProblemBuilder(name="town")
    b.add_depot(id="d", location=at(0))
    for v in ("v1", "v2"):
        b.add_van(id=v, depot="d", capacity=Load(parcels=3), shift_start=0, shift_end=1000)
    b.add_stop(id="e1", location=at(10), windows=[(0, 15)])  # so east goes out e1, e2, e3
    b.add_stop(id="e2", location=at(20), windows=[(0, 25)])
    b.add_stop(id="e3", location=at(30), windows=[(0, 400)])
    b.add_stop(id="w1", location=at(-10))
    b.add_stop(id="w2", location=at(-20))
    b.add_stop(id="r1", kind="return", location=at(-15))
    problem = b.build(travel=LINE)
    p = plan(problem, time_limit=TL, seed=1, engine="ortools")
    assert p.is_feasible() and not p.dropped
    east = next(r.van_id for r in p.routes if "e1" in r.stop_ids)
    west = next(r.van_id for r in p.routes if "w1" in r.stop_ids)
    assert p.route_of(east).stop_ids == ("e1", "e2", "e3")  # type: ignore[union-attr]
    return problem, p, east, west


def _underway(east: str, west: str, *, now: int = 15) -> FleetState:
    # East van served e1 and drives on to e2; west van is 5 m out, heading to w1.
    return FleetState(
        now=now,
        positions={
            east: VanPosition(east, at(15), now),
            west: VanPosition(west, at(-5), now),
        },
        completed=frozenset({"e1"}),
        heading_to={east: "e2", west: "w1"},
    )


def test_a_new_pickup_is_inserted_and_what_is_done_or_committed_stays() -> None:
    problem, current, east, west = _town()
    order = Stop(
        id="n1",
        location=(25.0, 5.0),
        kind="pickup",
        load=Load(parcels=1),
        service_time=0,
        windows=(),
    )
    result = replan(
        problem, current, _underway(east, west), travel=LINE, new_stops=[order], time_limit=TL
    )
    p = result.plan
    assert p.is_feasible(), p.summary()
    assert not p.dropped and not result.stranded
    assert "e1" not in {s.id for s in result.problem.stops}  # done: gone from the problem
    route = p.route_of(east)
    assert route is not None and route.stop_ids[0] == "e2"  # already driving there
    assert {"e2", "e3", "n1"} <= set(route.stop_ids)
    assert route.start == 15  # from where it is, now
    assert p.route_of(west).stop_ids[0] == "w1"  # type: ignore[union-attr]


def test_a_cancelled_stop_is_removed_and_the_rest_is_kept() -> None:
    problem, current, east, west = _town()
    result = replan(
        problem, current, _underway(east, west), travel=LINE, cancelled=["e3"], time_limit=TL
    )
    assert result.plan.route_of(east).stop_ids == ("e2",)  # type: ignore[union-attr]
    assert "e3" not in {d.stop_id for d in result.plan.dropped}


def test_a_broken_down_van_strands_its_parcels_and_hands_its_pickup_over() -> None:
    problem, current, east, west = _town()
    assert "r1" in current.route_of(west).stop_ids  # type: ignore[union-attr]
    result = replan(
        problem, current, _underway(east, west), travel=LINE, broken=[west], time_limit=TL
    )
    assert [(s.stop_id, west in s.reason) for s in result.stranded] == [("w1", True), ("w2", True)]
    assert [r.van_id for r in result.plan.routes] == [east]
    assert "r1" in result.plan.route_of(east).stop_ids  # type: ignore[union-attr]
    assert result.plan.is_feasible()


def test_a_van_running_late_is_flagged_and_the_replan_drops_what_it_can_no_longer_make() -> None:
    problem, current, east, west = _town()
    on_time = refresh_etas(problem, current, _underway(east, west), travel=LINE)
    assert {e.stop_id: e.eta for e in on_time if e.van_id == east} == {"e2": 20, "e3": 30}
    assert late_stops(on_time) == []
    # Stuck in traffic: at 195 s the east van is only at x = 10. e2 (due by 25) will be late.
    stuck = FleetState(
        now=195,
        positions={east: VanPosition(east, at(10), 195), west: VanPosition(west, at(-5), 195)},
        completed=frozenset({"e1"}),
        heading_to={east: "e2"},
    )
    alerts = late_stops(refresh_etas(problem, current, stuck, travel=LINE))
    assert [(a.stop_id, a.eta, a.late_by) for a in alerts] == [("e2", 205, 180)]
    result = replan(problem, current, stuck, travel=LINE, time_limit=TL)
    dropped = {d.stop_id: d.reason for d in result.plan.dropped}
    assert list(dropped) == ["e2"] and "time windows" in dropped["e2"]
    assert result.plan.route_of(east).stop_ids == ("e3",)  # type: ignore[union-attr]


def test_a_new_delivery_waits_for_a_van_at_the_depot() -> None:
    problem, current, east, west = _town()
    parcel = Stop(
        id="n2", location=at(5), kind="delivery", load=Load(parcels=1), service_time=0, windows=()
    )
    result = replan(
        problem, current, _underway(east, west), travel=LINE, new_stops=[parcel], time_limit=TL
    )
    (dropped,) = result.plan.dropped
    assert dropped.stop_id == "n2" and AT_DEPOT in dropped.reason
    # Once a van is back at the depot (no longer departed), it can take it.
    at_home = FleetState(
        now=15,
        positions={east: VanPosition(east, at(15), 15)},
        completed=frozenset({"e1"}),
        departed=frozenset({east}),
    )
    result = replan(problem, current, at_home, travel=LINE, new_stops=[parcel], time_limit=TL)
    assert result.plan.visit_of("n2") is not None and result.plan.visit_of("n2")[0] == west  # type: ignore[index]


def test_changes_naming_unknown_stops_or_vans_are_refused() -> None:
    problem, current, east, west = _town()
    with pytest.raises(ProblemError, match="'ghost'"):
        replan(problem, current, _underway(east, west), travel=LINE, cancelled=["ghost"])
    with pytest.raises(ProblemError, match="van 'v9'"):
        replan(problem, current, _underway(east, west), travel=LINE, broken=["v9"])
    with pytest.raises(ProblemError, match="duplicate id"):
        replan(
            problem,
            current,
            _underway(east, west),
            travel=LINE,
            new_stops=[Stop("e2", at(1), "pickup", Load(parcels=1), 0, (TimeWindow(0, 9),))],
        )


def test_with_nothing_changed_the_replan_keeps_the_routes_the_drivers_have() -> None:
    problem, current, east, west = _town()
    result = replan(problem, current, _underway(east, west), travel=LINE, time_limit=TL)
    assert result.plan.route_of(east).stop_ids == ("e2", "e3")  # type: ignore[union-attr]
    assert result.plan.route_of(west).stop_ids == current.route_of(west).stop_ids  # type: ignore[union-attr]


def test_a_parcel_picked_up_for_a_pair_stays_on_its_van_and_is_stranded_if_it_breaks() -> None:
    b = ProblemBuilder(name="courier")
    b.add_depot(id="d", location=at(0))
    for v in ("v1", "v2"):
        b.add_van(id=v, depot="d", capacity=Load(parcels=3), shift_start=0, shift_end=1000)
    b.add_stop(id="P", kind="pickup", location=at(-5))
    b.add_stop(id="D", kind="delivery", location=at(-25))
    b.add_stop(id="e", location=at(30))
    b.add_pair(pickup="P", delivery="D")
    problem = b.build(travel=LINE)
    current = plan(problem, time_limit=TL, seed=1, engine="ortools")
    van = current.visit_of("P")[0]  # type: ignore[index]
    other = next(v.id for v in problem.vans if v.id != van)
    state = FleetState(
        now=10,
        positions={van: VanPosition(van, at(-8), 10), other: VanPosition(other, at(5), 10)},
        completed=frozenset({"P"}),
    )
    result = replan(problem, current, state, travel=LINE, time_limit=TL)
    assert result.plan.visit_of("D")[0] == van  # type: ignore[index]
    route = result.plan.route_of(van)
    assert route is not None  # it carries D (and e if it was its stop): all deliveries, on board
    assert route.departure_load.parcels == len(route.stop_ids)
    broken = replan(problem, current, state, travel=LINE, broken=[van], time_limit=TL)
    on_van = set(current.route_of(van).stop_ids) - {"P"}  # type: ignore[union-attr]
    assert {s.stop_id for s in broken.stranded} == on_van and "D" in on_van
