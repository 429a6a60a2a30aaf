"""Route planning: a validated problem model, two engines (OR-Tools, PyVRP) and re-planning.

Hub-side only: it needs the ``cloud`` extra (OR-Tools, PyVRP, NumPy); the agents never import it.
"""

from cloud.planning.errors import (
    EngineError,
    FormatError,
    NoSolutionError,
    PlanningError,
    ProblemError,
    TravelError,
)
from cloud.planning.model import Break, Load, Problem, ProblemBuilder, TimeWindow
from cloud.planning.result import DroppedStop, Plan, Route, Visit
from cloud.planning.solve import plan

__all__ = [
    "Break",
    "DroppedStop",
    "EngineError",
    "FormatError",
    "Load",
    "NoSolutionError",
    "Plan",
    "PlanningError",
    "Problem",
    "ProblemBuilder",
    "ProblemError",
    "Route",
    "TimeWindow",
    "TravelError",
    "Visit",
    "plan",
]
