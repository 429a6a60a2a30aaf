"""Tiny instances on a line, so every optimum can be checked by hand.

Locations are plane points (x, 0) with :class:`EuclideanTravel` at scale 1: the distance and the
driving time between x=a and x=b are both |a - b| (metres, seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud.planning.model import Load, ProblemBuilder
from cloud.planning.travel import EuclideanTravel

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks" / "vrptw"
LINE = EuclideanTravel(scale=1)


def at(x: float) -> tuple[float, float]:
    return (float(x), 0.0)


def line_builder(*, vans: int = 1, capacity: int = 10, shift_end: int = 10_000) -> ProblemBuilder:
    b = ProblemBuilder(name="line")
    b.add_depot(id="d", location=at(0), opens=0, closes=shift_end)
    for k in range(vans):
        b.add_van(
            id=f"v{k + 1}",
            depot="d",
            capacity=Load(parcels=capacity),
            shift_start=0,
            shift_end=shift_end,
        )
    return b


def one_van(
    *, id: str = "v", capacity: Load | None = None, shift_end: int = 9_999, **van: Any
) -> ProblemBuilder:
    """A depot "d" at x=0 and one van with the given settings (defaults: 9 parcels, long shift)."""
    b = ProblemBuilder()
    b.add_depot(id="d", location=at(0))
    cap = capacity or Load(parcels=9)
    b.add_van(id=id, depot="d", capacity=cap, shift_start=0, shift_end=shift_end, **van)
    return b
