"""Schemas of ``/plans``: a planning request, a job with its plan, and the dispatched routes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud.fleet import DepotName
from cloud.planning.formats import ProblemSpec, StopSpec
from protocol.messages import DeviceId

#: Tests and the demo plan in a second or two; a real fleet's morning plan in a minute or so.
MAX_TIME_LIMIT_S = 300.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanCreate(_Strict):
    """A problem in our JSON format (see ``lastmile plan``) and how long to search."""

    problem: ProblemSpec
    day: dt.date | None = Field(
        default=None, description="the day the times are in (seconds from midnight UTC); today"
    )
    time_limit_s: float = Field(default=5.0, gt=0, le=MAX_TIME_LIMIT_S)
    seed: int = Field(default=0, ge=0)
    engine: Literal["auto", "ortools", "pyvrp", "hybrid"] = "auto"


class ReplanCreate(_Strict):
    """What changed since the plan: new orders, cancelled stops, vans that broke down."""

    new_stops: list[StopSpec] = Field(default=[], max_length=1000)
    cancelled: list[str] = Field(default=[], max_length=1000)
    broken: list[str] = Field(default=[], max_length=100)
    at: AwareDatetime | None = Field(
        default=None, description="plan from this moment (a what-if); default now"
    )
    time_limit_s: float = Field(default=5.0, gt=0, le=MAX_TIME_LIMIT_S)
    seed: int = Field(default=0, ge=0)


class StopEtaPublic(BaseModel):
    stop_id: str
    van_id: str
    eta: dt.datetime
    due: dt.datetime | None
    late_by_s: int


class RouteStatePublic(BaseModel):
    """One van's dispatched route: ``sent`` until the van acknowledges it, then ``acknowledged``
    (or ``refused``); ``completed`` the stops the geofence saw it reach, in order."""

    route_id: uuid.UUID
    vehicle_id: str
    state: Literal["sent", "acknowledged", "refused"]
    sent_at: dt.datetime
    acked_at: dt.datetime | None
    stops: list[dict[str, Any]]
    completed: list[str]


class DroppedParcelPublic(BaseModel):
    parcel_id: uuid.UUID
    reason: str


class PlanJobPublic(BaseModel):
    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    progress: float = Field(description="0..1, elapsed share of the time limit while running")
    error: str
    parent_id: uuid.UUID | None
    day: dt.date
    created_at: dt.datetime
    finished_at: dt.datetime | None
    dispatched_at: dt.datetime | None
    plan: dict[str, Any] | None = Field(
        description="per-van visits with times in s from midnight UTC, km, CO2, dropped stops"
    )
    routes: list[RouteStatePublic] = []
    etas: list[StopEtaPublic] = []
    late: list[StopEtaPublic] = Field(default=[], description="stops predicted late, most first")
    depot: str | None = Field(default=None, description="planned from the hub: the depot")
    parcels: dict[str, list[uuid.UUID]] = Field(
        default={}, description="planned from the hub: stop id -> the parcels it delivers"
    )
    dropped_parcels: list[DroppedParcelPublic] = Field(
        default=[], description="planned from the hub: parcels left out, with the reason"
    )


class PlanJobsPublic(BaseModel):
    data: list[PlanJobPublic]
    count: int


class HubPlanCreate(_Strict):
    """Plan a depot's day from the parcels the hub holds (``POST /plans/from-hub``)."""

    depot: DepotName = Field(description="a depot with a site")
    exclude_vans: list[DeviceId] = Field(
        default=[], max_length=100, description="vans of the depot not to plan (broken down)"
    )
    day: dt.date | None = Field(default=None, description="today when left out")
    time_limit_s: float = Field(default=5.0, gt=0, le=MAX_TIME_LIMIT_S)
    seed: int = Field(default=0, ge=0)
    engine: Literal["auto", "ortools", "pyvrp", "hybrid"] = "auto"
