"""Random rich problems: whatever an engine returns, the independent evaluator finds no violation.

This is where a mismatch between how an engine models a constraint and what the constraint means
shows up (a load counted at the wrong point, a break the schedule cannot hold, a skill ignored).
"""

from __future__ import annotations

import random

import pytest

from cloud.planning import Break, Load, Problem, ProblemBuilder, plan
from cloud.planning.travel import HaversineTravel


def _rich(seed: int, *, breaks: bool, trips: int, multi: bool = True) -> Problem:
    rng = random.Random(seed)
    b = ProblemBuilder(name=f"rich{seed}")
    b.add_depot(id="north", location=(52.55, 13.40), opens=6 * 3600, closes=20 * 3600)
    b.add_depot(id="south", location=(52.48, 13.42), opens=6 * 3600, closes=20 * 3600)
    for k in range(4):
        b.add_van(
            id=f"v{k}",
            depot="north" if k % 2 else "south",
            capacity=Load(parcels=10, weight=200),
            shift_start=8 * 3600,
            shift_end=15 * 3600,
            breaks=[Break(11 * 3600, 13 * 3600, 1800)] if breaks and k < 2 else [],
            skills=["cooled"] if k == 0 else [],
            max_distance=60_000 if k == 3 else None,
            cost_per_hour=20.0,
            max_trips=trips,
            reload_time=600,
        )

    def loc() -> tuple[float, float]:
        return (52.51 + rng.uniform(-0.04, 0.04), 13.40 + rng.uniform(-0.07, 0.07))

    for i in range(18):
        start = rng.randrange(8 * 3600, 13 * 3600, 600)
        windows = [(start, start + 3600)]
        if multi and i % 5 == 0:
            windows.append((start + 7200, start + 9000))
        b.add_stop(
            id=f"s{i}",
            location=loc(),
            kind="return" if i % 6 == 1 else "delivery",
            load=Load(parcels=rng.randint(1, 3), weight=rng.randint(1, 40)),
            service_time=180,
            windows=windows,
            priority=rng.randint(1, 3),
            skills=["cooled"] if i % 7 == 3 else [],
        )
    for j in range(2):
        b.add_stop(
            id=f"p{j}",
            kind="pickup",
            location=loc(),
            load=Load(parcels=1, weight=5),
            service_time=120,
        )
        b.add_stop(
            id=f"d{j}",
            kind="delivery",
            location=loc(),
            load=Load(parcels=1, weight=5),
            service_time=120,
        )
        b.add_pair(pickup=f"p{j}", delivery=f"d{j}")
    b.add_locker_stop(
        id="locker",
        location=loc(),
        parcel_sizes=["S", "M", "M"],
        free_compartments={"S": 1, "M": 3},
        service_time=120,
        per_parcel_time=20,
    )
    return b.build(travel=HaversineTravel())


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(
    ("engine", "breaks", "trips"),
    [
        ("auto", False, 1),
        ("auto", True, 1),
        ("ortools", True, 2),
        ("pyvrp", False, 1),
        ("pyvrp", False, 2),
    ],
)
def test_every_engine_returns_plans_the_evaluator_accepts(
    seed: int, engine: str, breaks: bool, trips: int
) -> None:
    problem = _rich(seed, breaks=breaks, trips=trips, multi=engine != "pyvrp")
    # 3 s: with time-of-day speeds the limit is shared by three solves (solve.plan).
    p = plan(problem, time_limit=3.0, seed=seed, engine=engine)  # type: ignore[arg-type]
    assert p.violations == (), p.summary()
    served = sum(len(r.stop_ids) for r in p.routes)
    assert served + len(p.dropped) == len(problem.stops) and served >= len(problem.stops) // 2
