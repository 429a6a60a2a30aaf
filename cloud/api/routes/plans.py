"""``/plans``: start a planning job (ops), follow it, dispatch its routes, re-plan under way."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from cloud.api.deps import FleetReader, OutboxNotifierDep, SessionDep, SettingsDep, VehicleCommander
from cloud.api.plan_schemas import (
    DroppedParcelPublic,
    HubPlanCreate,
    PlanCreate,
    PlanJobPublic,
    PlanJobsPublic,
    ReplanCreate,
    RouteStatePublic,
    StopEtaPublic,
)
from cloud.api.problems import problem_responses
from cloud.models import PlanJob
from cloud.planning.errors import ProblemError
from cloud.services import day_plans
from cloud.services import plan_jobs as service

router = APIRouter(prefix="/plans", tags=["plans"], responses=problem_responses(401, 403, 404, 422))


def get_runner(request: Request) -> service.PlanRunner:
    runner = getattr(request.app.state, "plan_runner", None)
    if not isinstance(runner, service.PlanRunner):
        raise RuntimeError("the app was not built by cloud.api.app.create_app")
    return runner


RunnerDep = Annotated[service.PlanRunner, Depends(get_runner)]


def _public(session: SessionDep, row: PlanJob, *, detail: bool = True) -> PlanJobPublic:
    """``detail``: with route states and ETAs, which read the day's positions of every van (the
    list leaves them out, so listing 100 plans does not geofence 100 days of tracks)."""
    day = dt.date.fromisoformat(row.options["day"])
    origin = service.day_start(day)
    seen = service.progress(session, row=row) if detail else None
    routes, etas = [], []
    if seen is not None:
        for r in seen.routes:
            ack = r.ack
            routes.append(
                RouteStatePublic(
                    route_id=r.dispatch.route_id,
                    vehicle_id=r.dispatch.vehicle_id,
                    state="sent" if ack is None else "acknowledged" if ack.ok else "refused",
                    sent_at=r.dispatch.sent_at,
                    acked_at=None if ack is None else ack.received_at,
                    stops=r.dispatch.stops,
                    completed=list(r.completed),
                )
            )
        etas = [
            StopEtaPublic(
                stop_id=e.stop_id,
                van_id=e.van_id,
                eta=origin + dt.timedelta(seconds=e.eta),
                due=None if e.due is None else origin + dt.timedelta(seconds=e.due),
                late_by_s=e.late_by,
            )
            for e in seen.etas
        ]
    return PlanJobPublic(
        id=row.id,
        status=row.status,
        progress=row.progress,
        error=row.error,
        parent_id=row.parent_id,
        day=day,
        created_at=row.created_at,
        finished_at=row.finished_at,
        dispatched_at=row.dispatched_at,
        plan=row.result,
        routes=routes,
        etas=etas,
        late=sorted((e for e in etas if e.late_by_s > 0), key=lambda e: -e.late_by_s),
        **_from_hub(row),
    )


def _from_hub(row: PlanJob) -> dict[str, object]:
    """The parcels' side of a plan made from the hub's parcels (``POST /plans/from-hub``)."""
    hub = row.options.get("hub")
    if hub is None:
        return {}
    return {
        "depot": hub["depot"],
        "parcels": {k: [uuid.UUID(p) for p in v] for k, v in hub["parcels_of_stop"].items()},
        "dropped_parcels": [
            DroppedParcelPublic(parcel_id=uuid.UUID(d["parcel_id"]), reason=d["reason"])
            for d in day_plans.dropped_parcels(row.result, hub)
        ],
    }


@router.post("", response_model=PlanJobPublic, status_code=status.HTTP_202_ACCEPTED)
def create_plan(
    body: PlanCreate,
    session: SessionDep,
    settings: SettingsDep,
    runner: RunnerDep,
    caller: VehicleCommander,
) -> PlanJobPublic:
    """Queue a planning job. 202: follow ``GET /plans/{id}`` until ``done`` or ``failed``."""
    day = body.day or dt.datetime.now(dt.UTC).date()
    try:
        row = service.create_job(
            session,
            spec=body.problem,
            options={
                "time_limit_s": body.time_limit_s,
                "seed": body.seed,
                "engine": body.engine,
                "day": day.isoformat(),
            },
            created_by=caller.role,
            travel_servers=settings.travel_servers,
        )
    except ProblemError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"problem: {err}") from err
    runner.submit(row.id)
    return _public(session, row)


@router.post("/from-hub", response_model=PlanJobPublic, status_code=status.HTTP_202_ACCEPTED)
def create_plan_from_hub(
    body: HubPlanCreate,
    session: SessionDep,
    settings: SettingsDep,
    runner: RunnerDep,
    caller: VehicleCommander,
) -> PlanJobPublic:
    """Queue a plan of one depot's day from the parcels the hub holds: home parcels at the depot
    or out on its vans as delivery stops, locker parcels as one stop per locker within its free
    compartments, the depot's vans on shift. Parcels that cannot be planned are listed in
    ``dropped_parcels`` with the reason. Dispatching it puts each parcel on its van."""
    now = service.utcnow()
    day = body.day or now.date()
    try:
        built = day_plans.build_day_problem(
            session,
            depot_id=body.depot,
            day=day,
            fleet=settings.fleet,
            now=now,
            exclude_vans=frozenset(body.exclude_vans),
        )
        row = service.create_job(
            session,
            spec=built.spec,
            options={
                "time_limit_s": body.time_limit_s,
                "seed": body.seed,
                "engine": body.engine,
                "day": day.isoformat(),
                "hub": built.options(depot=body.depot),
            },
            created_by=caller.role,
        )
    except ProblemError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"problem: {err}") from err
    runner.submit(row.id)
    return _public(session, row)


@router.get("", response_model=PlanJobsPublic)
def read_plans(
    session: SessionDep, caller: FleetReader, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> PlanJobsPublic:
    """Newest first, without route states and ETAs (``GET /plans/{id}`` has them)."""
    data = [_public(session, r, detail=False) for r in service.list_jobs(session, limit=limit)]
    return PlanJobsPublic(data=data, count=len(data))


@router.get("/{plan_id}", response_model=PlanJobPublic)
def read_plan(plan_id: uuid.UUID, session: SessionDep, caller: FleetReader) -> PlanJobPublic:
    """Status and progress; once done the plan; once dispatched each van's route state, the stops
    it completed and ETAs refreshed from its last position, with the ones predicted late."""
    return _public(session, service.get_job(session, plan_id))


@router.post(
    "/{plan_id}/dispatch",
    response_model=PlanJobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(409),
)
def dispatch_plan(
    plan_id: uuid.UUID,
    session: SessionDep,
    notify_outbox: OutboxNotifierDep,
    caller: VehicleCommander,
    settings: SettingsDep,
) -> PlanJobPublic:
    """Send each van its route, signed with its key (retained, QoS 1). 202: routes are ``sent``
    until acknowledged (or ``refused``, with the van's reason). A plan from the hub's parcels
    also puts each parcel on its van, out for delivery, in the same transaction."""
    row = service.get_job(session, plan_id)
    hub = row.options.get("hub")
    if hub is not None and row.result is not None and row.dispatched_at is None:
        day_plans.assign_dispatched_parcels(
            session, plan_id=row.id, result=row.result, hub=hub, at=service.utcnow()
        )
    service.dispatch(
        session,
        job_id=plan_id,
        master_secret=settings.code_master_secret.get_secret_value().encode(),
    )
    notify_outbox()
    return _public(session, service.get_job(session, plan_id))


@router.post(
    "/{plan_id}/replan",
    response_model=PlanJobPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(409),
)
def replan_plan(
    plan_id: uuid.UUID,
    body: ReplanCreate,
    session: SessionDep,
    settings: SettingsDep,
    runner: RunnerDep,
    caller: VehicleCommander,
) -> PlanJobPublic:
    """Queue a re-plan of what remains, from live positions and the stops done: committed stops
    kept, new orders in, cancelled out, broken-down vans out. Dispatch the new plan when done."""
    try:
        row = service.create_replan(
            session,
            job_id=plan_id,
            new_stops=[s.model_dump(mode="json") for s in body.new_stops],
            cancelled=body.cancelled,
            broken=body.broken,
            time_limit_s=body.time_limit_s,
            seed=body.seed,
            created_by=caller.role,
            at=body.at,
            travel_servers=settings.travel_servers,
        )
    except ProblemError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"problem: {err}") from err
    runner.submit(row.id)
    return _public(session, row)
