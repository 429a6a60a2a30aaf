"""Errors of the route planner, by phase.

Every error names the offending item (``item``) so a caller can point at the bad row of an upload.
Third-party errors (OR-Tools, PyVRP, HTTP) are translated at the module that talks to them.
"""

from __future__ import annotations


class PlanningError(Exception):
    """Base of every error the planner raises."""


class ProblemError(PlanningError, ValueError):
    """The problem description is invalid; ``item`` names what is wrong (e.g. ``stop 's7'``)."""

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"{item}: {reason}")
        self.item = item
        self.reason = reason


class FormatError(PlanningError, ValueError):
    """A problem file could not be read: wrong format, missing section, garbage."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TravelError(PlanningError):
    """A travel-time source (e.g. an OSRM server) failed or answered something unusable."""


class EngineError(PlanningError):
    """A solver engine failed, or cannot handle the problem it was asked to solve."""


class NoSolutionError(EngineError):
    """The engine found no plan at all in the time given (a required stop cannot be served)."""
