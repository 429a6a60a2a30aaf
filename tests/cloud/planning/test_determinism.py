"""Same seed and work bound, same plan: the hub can re-run a plan and get what it dispatched."""

from __future__ import annotations

import random

from cloud.planning import Load, Plan, ProblemBuilder, plan
from cloud.planning.travel import HaversineTravel


def _city(seed: int) -> ProblemBuilder:
    rng = random.Random(seed)
    b = ProblemBuilder(name=f"city{seed}")
    b.add_depot(id="hub", location=(52.52, 13.40))
    for v in range(3):
        b.add_van(
            id=f"v{v}",
            depot="hub",
            capacity=Load(parcels=12),
            shift_start=8 * 3600,
            shift_end=14 * 3600,
        )
    for k in range(25):
        start = rng.randrange(8 * 3600, 12 * 3600, 900)
        b.add_stop(
            id=f"s{k}",
            location=(52.52 + rng.uniform(-0.03, 0.03), 13.40 + rng.uniform(-0.05, 0.05)),
            load=Load(parcels=rng.randint(1, 3)),
            service_time=120,
            windows=[(start, start + 7200)],
        )
    return b


def _shape(p: Plan) -> list[tuple[str, tuple[str, ...], tuple[int, ...]]]:
    return [(r.van_id, r.stop_ids, tuple(v.start for v in r.visits)) for r in p.routes]


def test_pyvrp_with_an_iteration_bound_repeats_itself_exactly() -> None:
    problem = _city(7).build(travel=HaversineTravel())
    runs = [
        _shape(plan(problem, time_limit=2, seed=3, engine="pyvrp", iterations=300))
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0]


def test_ortools_with_a_solution_bound_repeats_itself_exactly() -> None:
    problem = _city(7).build(travel=HaversineTravel())
    runs = [
        _shape(plan(problem, time_limit=2, seed=3, engine="ortools", iterations=50))
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0]


def test_the_plan_is_feasible_and_reports_totals() -> None:
    problem = _city(7).build(travel=HaversineTravel())
    p = plan(problem, time_limit=1, seed=3)
    assert p.is_feasible(), p.summary()
    assert p.distance == sum(r.distance for r in p.routes) > 0
    assert p.co2_kg == sum(r.co2_kg for r in p.routes) > 0
    assert "feasible" in p.summary().splitlines()[0]
    served = {s for r in p.routes for s in r.stop_ids} | {d.stop_id for d in p.dropped}
    assert served == {s.id for s in problem.stops}
