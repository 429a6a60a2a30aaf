"""The plan an engine returns: routes with per-stop ETAs and loads, totals, dropped stops with reasons.

A :class:`Plan` is built by :mod:`cloud.planning.evaluate` from the visit order alone, never from a
solver's own numbers, so ``is_feasible()`` is an independent check of what the solver claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cloud.planning.model import Load

VisitKind = Literal["stop", "reload"]


@dataclass(frozen=True, slots=True)
class Visit:
    """One call on a route. ``start`` is when service starts (the ETA a customer sees)."""

    stop_id: str
    kind: VisitKind
    arrival: int
    start: int
    departure: int
    load_after: Load
    late_by: int = 0


@dataclass(frozen=True, slots=True)
class TakenBreak:
    start: int
    duration: int


@dataclass(frozen=True, slots=True)
class Route:
    van_id: str
    start: int
    end: int
    distance: int
    driving: int
    visits: tuple[Visit, ...]
    breaks: tuple[TakenBreak, ...]
    departure_load: Load
    co2_kg: float
    cost: float

    @property
    def stop_ids(self) -> tuple[str, ...]:
        return tuple(v.stop_id for v in self.visits if v.kind == "stop")


@dataclass(frozen=True, slots=True)
class DroppedStop:
    stop_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    """Routes (non-empty ones), stops left out with why, and what the checker found wrong."""

    routes: tuple[Route, ...]
    dropped: tuple[DroppedStop, ...]
    engine: str
    runtime: float
    violations: tuple[str, ...] = ()
    problem_name: str = ""
    distance_unit: float = 1.0
    required_dropped: tuple[str, ...] = field(default=())

    def is_feasible(self) -> bool:
        """Every hard constraint holds and no required stop is left out."""
        return not self.violations and not self.required_dropped

    @property
    def distance(self) -> int:
        return sum(r.distance for r in self.routes)

    @property
    def driving(self) -> int:
        return sum(r.driving for r in self.routes)

    @property
    def co2_kg(self) -> float:
        return sum(r.co2_kg for r in self.routes)

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.routes)

    def route_of(self, van_id: str) -> Route | None:
        return next((r for r in self.routes if r.van_id == van_id), None)

    def visit_of(self, stop_id: str) -> tuple[str, Visit] | None:
        for r in self.routes:
            for v in r.visits:
                if v.kind == "stop" and v.stop_id == stop_id:
                    return r.van_id, v
        return None

    def summary(self) -> str:
        """A few lines for a terminal: totals, one line per route, then the dropped stops."""
        served = sum(len(r.stop_ids) for r in self.routes)
        lines = [
            f"plan {self.problem_name or '(unnamed)'} by {self.engine} in {self.runtime:.1f} s: "
            f"{'feasible' if self.is_feasible() else 'INFEASIBLE'}",
            f"  {len(self.routes)} routes, {served} stops served, {len(self.dropped)} dropped",
            f"  distance {self.distance * self.distance_unit / 1000:.3f} km, "
            f"driving {self.driving / 3600:.2f} h, CO2 {self.co2_kg:.1f} kg, cost {self.cost:.2f}",
        ]
        for r in self.routes:
            lines.append(
                f"  {r.van_id}: {len(r.stop_ids)} stops, {r.distance * self.distance_unit / 1000:.2f} km, "
                f"{_clock(r.start)}-{_clock(r.end)}, leaves with {r.departure_load.parcels} parcels"
            )
        for d in self.dropped:
            lines.append(f"  dropped {d.stop_id}: {d.reason}")
        for v in self.violations:
            lines.append(f"  VIOLATION {v}")
        return "\n".join(lines)


def _clock(t: int) -> str:
    return f"{t // 3600:02d}:{t % 3600 // 60:02d}"
