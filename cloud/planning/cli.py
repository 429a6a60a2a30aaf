"""``lastmile plan FILE --time-limit S``: plan a Solomon/VRPLIB file or our JSON, print the summary.

The progress bar goes to stderr (so stdout stays the summary, for pipes); ``--geojson OUT`` also
writes the routes as GeoJSON. Exit status 0 for a feasible plan, 1 for an infeasible one, 2 for a
file that could not be read or a problem that was refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from cloud.planning.errors import PlanningError
from cloud.planning.formats import read_problem
from cloud.planning.geojson import plan_geojson
from cloud.planning.solve import plan


class ProgressBar:
    """A one-line text bar on stderr, redrawn in place (``\\r``) at most once per cell."""

    def __init__(self, *, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self._shown = -1
        self._done = False

    def __call__(self, fraction: float, best: float | None) -> None:
        if self._done:
            return
        filled = round(self.width * max(0.0, min(1.0, fraction)))
        if filled == self._shown and fraction < 1.0:
            return
        self._shown = filled
        cost = f" cost {best:,.0f}" if best is not None else ""
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\rplanning [{bar}] {100 * fraction:3.0f}%{cost}   ")
        if fraction >= 1.0:
            self._done = True
            self.stream.write("\n")
        self.stream.flush()


def run(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        problem = read_problem(args.file)
        result = plan(
            problem,
            time_limit=args.time_limit,
            seed=args.seed,
            engine=args.engine,
            progress=ProgressBar(stream=err),
        )
    except PlanningError as e:
        err.write(f"lastmile plan: {e}\n")
        return 2
    out.write(result.summary() + "\n")
    if args.geojson is not None:
        args.geojson.write_text(json.dumps(plan_geojson(problem, result)), encoding="utf-8")
    return 0 if result.is_feasible() else 1
