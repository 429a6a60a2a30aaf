"""A relaxation PyVRP can solve, whose solutions stay feasible for the full problem.

The ``hybrid`` engine solves this with PyVRP first and hands the routes to OR-Tools as its first
solution: PyVRP's search is much stronger, OR-Tools then enforces what PyVRP could not model.
The relaxation *tightens* rather than loosens where it can, so the routes are usually feasible:

- driver breaks are removed and each shift shortened by their total length;
- a stop with several windows keeps only its longest one.

Everything else (skills, pairs, reloads) the PyVRP engine models as it is. ``None`` is kept in
the signature for a future constraint that cannot be tightened.
"""

from __future__ import annotations

from dataclasses import replace

from cloud.planning.model import Problem


def relaxed(problem: Problem) -> Problem | None:
    vans = tuple(
        replace(
            v,
            breaks=(),
            shift_end=max(v.shift_start + 1, v.shift_end - sum(b.duration for b in v.breaks)),
            cost_per_km=float(round(v.cost_per_km)) if v.cost_per_km >= 1 else 1.0,
        )
        for v in problem.vans
    )
    stops = tuple(
        replace(s, windows=(max(s.windows, key=lambda w: w.end - w.start),))
        if len(s.windows) > 1
        else s
        for s in problem.stops
    )
    return replace(problem, vans=vans, stops=stops)
