"""Time-of-day speeds in the planner: rush hour is where the van drives, not at one departure.

The town: 60 km/h all day except 08:00-09:00 (12 km/h), straight roads (circuity 1), one stop
20 km north of the depot. At 60 km/h that is 20 min; in rush hour 100 min.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.planning import Load, ProblemBuilder, plan
from cloud.planning.evaluate import RouteOrder, evaluate
from cloud.planning.travel import HaversineTravel, SpeedProfile

H = 3600
RUSH = SpeedProfile(kmh=(60.0,) * 8 + (12.0,) + (60.0,) * 15)
TOWN = HaversineTravel(circuity=1.0, profile=RUSH)
DEPOT = (52.0, 13.0)
NORTH_20KM = (52.0 + 20 / 111.195, 13.0)


def _one_stop(*, shift_start: int, window: tuple[int, int]) -> ProblemBuilder:
    b = ProblemBuilder(name="rush")
    b.add_depot(id="d", location=DEPOT, opens=6 * H, closes=14 * H)
    b.add_van(
        id="v", depot="d", capacity=Load(parcels=5), shift_start=shift_start, shift_end=13 * H
    )
    b.add_stop(id="s", location=NORTH_20KM, windows=[window], service_time=600)
    return b


def test_the_van_leaves_early_enough_for_rush_hour_and_the_eta_says_so() -> None:
    # Window 08:20-08:30. A static 20-min leg says "leave at 08:00"; in rush hour that arrives
    # at 09:40. The time-dependent plan leaves before the rush and arrives in the window.
    problem = _one_stop(shift_start=7 * H, window=(8 * H + 20 * 60, 8 * H + 30 * 60)).build(
        travel=TOWN
    )
    assert problem.speed == RUSH
    p = plan(problem, time_limit=5, seed=1, iterations=200)
    assert p.is_feasible(), p.summary()
    (route,) = p.routes
    (visit,) = route.visits
    assert visit.start == 8 * H + 20 * 60 and visit.late_by == 0
    assert visit.arrival <= visit.start  # reached in time, maybe a little early
    # It leaves at about 07:44: 16 km before the rush, the last 4 km at 12 km/h (20 min).
    assert 7 * H + 40 * 60 <= route.start <= 7 * H + 45 * 60
    # The ETA is the time-dependent one: from the planned departure, leg by leg.
    d = problem.index_of
    assert visit.arrival == route.start + problem.leg_time(d["d"], d["s"], route.start)
    # What a one-departure model would have done: leave at 08:00 and be 38 min late (12 km in
    # the rush hour, 8 km at 60 km/h: there at 09:08, the window closed at 08:30).
    static_leave = [RouteOrder(van_id="v", visits=("s",), start=8 * H)]
    naive = evaluate(replace(problem, speed=None), static_leave, engine="static", runtime=0)
    assert naive.is_feasible()  # the static model believes it
    there = 8 * H + problem.leg_time(d["d"], d["s"], 8 * H)
    assert abs(there - (9 * H + 8 * 60)) <= 1


def test_a_stop_the_rush_hour_matrix_drops_is_served_once_the_plan_is_re_timed() -> None:
    # Shift from 08:00, window 09:05-09:20. The solvers' first matrix prices the leg at 08:00
    # speed throughout (100 min: too late, dropped); really the rush ends at 09:00 and the van is
    # there at 09:08 (12 km in the rush hour, 8 km at 60 km/h).
    problem = _one_stop(shift_start=8 * H, window=(9 * H + 5 * 60, 9 * H + 20 * 60)).build(
        travel=TOWN
    )
    static = plan(replace(problem, speed=None), time_limit=5, seed=1, iterations=200)
    assert [d.stop_id for d in static.dropped] == ["s"]
    p = plan(problem, time_limit=5, seed=1, iterations=200)
    assert p.is_feasible() and not p.dropped, p.summary()
    (visit,) = p.routes[0].visits
    assert 9 * H + 7 * 60 <= visit.arrival <= 9 * H + 9 * 60
    assert visit.start == visit.arrival and visit.late_by == 0


def test_a_row_of_legs_times_like_one_leg_at_a_time() -> None:
    rows = [0, 500, 3_000, 20_000, 65_000]
    for depart in (7 * H + 1_234, 8 * H + 3_599, 23 * H + 3_000):
        assert list(RUSH.leg_times(rows, depart)) == [RUSH.leg_time(x, depart) for x in rows]  # type: ignore[arg-type]


def test_a_van_under_way_leaves_its_live_position_now_even_when_it_will_wait() -> None:
    from cloud.planning.replan import FleetState, VanPosition, replan

    b = _one_stop(shift_start=7 * H, window=(10 * H, 11 * H))
    b.add_stop(id="t", location=(52.0 + 5 / 111.195, 13.0), windows=[(10 * H, 12 * H)])
    problem = b.build(travel=TOWN)
    current = plan(problem, time_limit=5, seed=1, iterations=200)
    assert current.is_feasible() and not current.dropped, current.summary()
    now = 7 * H + 600
    state = FleetState(now=now, positions={"v": VanPosition("v", (52.01, 13.0), now)})
    result = replan(problem, current, state, travel=TOWN, time_limit=2)
    assert result.plan.is_feasible(), result.plan.violations
    (route,) = result.plan.routes
    assert route.start == now and set(route.stop_ids) == {"s", "t"}
