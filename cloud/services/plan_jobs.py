"""Planning jobs: recorded in ``plan_jobs``, solved on a worker thread, dispatched through the outbox.

The API only writes a ``queued`` row and hands its id to a :class:`PlanRunner`; the runner's one
worker thread solves (OR-Tools releases the GIL, so the event loop keeps serving) and writes
progress and the plan back to the row. A job is either a fresh plan (``spec`` is the problem) or
a re-plan of a parent (``options["replan"]`` holds the fleet state taken when it was asked for),
so a worker needs nothing but the row. Progress of a dispatched plan is derived on read: the
geofence runs over the positions ingest stored since the dispatch (:mod:`cloud.planning.geofence`).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.errors import ConflictError, NotFoundError
from cloud.models import OutboundMessage, PlanDispatch, PlanJob, PositionRow, VehicleCommandAck
from cloud.planning import PlanningError
from cloud.planning import plan as solve
from cloud.planning.errors import ProblemError, TravelError
from cloud.planning.formats import ProblemSpec, StopSpec
from cloud.planning.geofence import GeofenceDetector
from cloud.planning.plan_json import plan_from_json, plan_to_json
from cloud.planning.replan import FleetState, StopEta, VanPosition, refresh_etas, replan
from cloud.planning.result import Plan
from cloud.planning.travel import HaversineTravel
from protocol.codec import encode
from protocol.messages import RouteStop
from protocol.routes import hub_route_key, route_expiry, sign_route
from protocol.topics import Channel, vehicle_topic

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
#: Progress is written at most this often: a 30 s solve should not be 3,000 commits.
PROGRESS_EVERY_S = 0.5


def utcnow() -> datetime:
    return datetime.now(UTC)


def day_start(day: date) -> datetime:
    """Problem times are seconds from midnight UTC of the plan's day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def check_travel_server(spec: ProblemSpec, allowed: Collection[str]) -> None:
    """Refuse a problem whose OSRM or Valhalla ``travel.url`` is not one of ``allowed``.

    The hub fetches travel matrices from that URL while it plans: a URL taken from the request
    as is would let whoever submits a problem make the hub call any address it can reach, its
    own loopback and private network included (server-side request forgery). Routing servers
    usually sit on exactly such a network, so the webhooks' rule (public addresses only) does
    not fit; the hub's settings list the servers instead (``travel_servers``).
    """
    url = spec.travel.url
    if spec.travel.kind not in ("osrm", "valhalla") or url is None:
        return
    if url.rstrip("/") not in {a.rstrip("/") for a in allowed}:
        listed = ", ".join(sorted(allowed)) or "none"
        raise ProblemError(
            "travel.url",
            f"{url!r} is not one of the hub's travel_servers ({listed}): the hub calls only the "
            "routing servers its settings list",
        )


def create_job(
    session: Session,
    *,
    spec: ProblemSpec,
    options: dict[str, Any],
    created_by: str,
    parent: PlanJob | None = None,
    broken: Sequence[str] = (),
    travel_servers: Collection[str] = (),
    now: Callable[[], datetime] = utcnow,
) -> PlanJob:
    """Record a queued job; commit. ``spec`` is checked first, so a problem that cannot be built
    (unknown depot, bad window) is refused here, not found failed later; so is one whose travel
    model names a routing server not among ``travel_servers`` (:func:`check_travel_server`)."""
    check_travel_server(spec, travel_servers)
    spec.travel_model()  # raises ProblemError for a routing server without a URL
    # The problem's shape only (raises ProblemError with the field and the reason): with the
    # named travel model this would fetch matrices from a routing server inside the request,
    # and a server that is down would fail the request rather than the job.
    spec.to_problem(travel=HaversineTravel())
    row = PlanJob(
        id=uuid.uuid4(),
        status=QUEUED,
        progress=0.0,
        spec=spec.model_dump(mode="json"),
        broken=list(broken),
        options=options,
        result=None,
        error="",
        parent_id=None if parent is None else parent.id,
        created_by=created_by,
        created_at=now(),
        finished_at=None,
        dispatched_at=None,
    )
    session.add(row)
    session.commit()
    return row


def get_job(session: Session, job_id: uuid.UUID) -> PlanJob:
    row = session.get(PlanJob, job_id)
    if row is None:
        raise NotFoundError("plan", job_id)
    return row


def list_jobs(session: Session, *, limit: int) -> list[PlanJob]:
    return list(
        session.scalars(
            select(PlanJob).order_by(PlanJob.created_at.desc(), PlanJob.id).limit(limit)
        )
    )


def _solve(row: PlanJob, progress: Callable[[float, float | None], None]) -> dict[str, Any]:
    spec = ProblemSpec.model_validate(row.spec)
    opts = row.options
    limit, seed = float(opts["time_limit_s"]), int(opts.get("seed", 0))
    state = opts.get("replan")
    if state is None:
        problem = spec.to_problem()
        return plan_to_json(
            solve(
                problem,
                time_limit=limit,
                seed=seed,
                engine=opts.get("engine", "auto"),
                progress=progress,
            )
        )
    # A re-plan: the parent's problem against the parent's plan; new orders go in as new stops,
    # so replan() applies its rule for them (a new delivery waits at the depot).
    added = [StopSpec.model_validate(x) for x in state["new_stops"]]
    with_new = spec.model_copy(update={"stops": [*spec.stops, *added]}).to_problem()
    result = replan(
        spec.to_problem(),
        plan_from_json(state["parent_plan"]),
        FleetState(
            now=int(state["now"]),
            positions={
                vid: VanPosition(vid, (float(p[0]), float(p[1])), int(p[2]))
                for vid, p in state["positions"].items()
            },
            completed=frozenset(state["completed"]),
            heading_to=dict(state["heading_to"]),
        ),
        travel=spec.travel_model(),
        new_stops=[with_new.stop(x.id) for x in added],
        cancelled=state["cancelled"],
        broken=row.broken,
        time_limit=limit,
        seed=seed,
    )
    stranded = [{"stop_id": s.stop_id, "reason": s.reason} for s in result.stranded]
    out = plan_to_json(result.plan)
    out["dropped"] += stranded
    out["completed"] = sorted(state["completed"])
    return out


def run_job(session_factory: sessionmaker[Session], job_id: uuid.UUID) -> None:
    """Solve one job and store the outcome; never raises (a failure is the job's status)."""
    with session_factory() as session:
        row = session.get(PlanJob, job_id)
        if row is None or row.status != QUEUED:
            return
        row.status = RUNNING
        session.commit()
        last = [0.0]

        def progress(elapsed: float, _objective: float | None) -> None:
            if time.monotonic() - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = time.monotonic()
            row.progress = min(0.99, elapsed / float(row.options["time_limit_s"]))
            session.commit()

        try:
            row.result = _solve(row, progress)
            row.status, row.progress = DONE, 1.0
            if "spec_after" in row.options:  # a re-plan: its cancelled stops are gone now
                row.spec = row.options["spec_after"]
        except (PlanningError, ValueError) as err:
            row.status, row.error = FAILED, str(err)[:1000]
        except Exception as err:  # the worker must survive any one job
            log.exception("planning job %s failed", job_id)
            row.status, row.error = FAILED, f"internal error: {type(err).__name__}"
        row.finished_at = utcnow()
        session.commit()


class PlanRunner:
    """One worker thread for planning jobs (a solve uses a core; two would halve each other)."""

    def __init__(self, *, session_factory: sessionmaker[Session], workers: int = 1) -> None:
        self._session_factory = session_factory
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="planner")

    def recover(self) -> int:
        """After a restart: a job that was running died with the old process (failed, say so);
        queued ones are queued again. Returns how many were queued again."""
        with self._session_factory() as session:
            rows = list(
                session.scalars(select(PlanJob).where(PlanJob.status.in_((QUEUED, RUNNING))))
            )
            for row in rows:
                if row.status == RUNNING:
                    row.status, row.error = FAILED, "interrupted: the hub restarted while solving"
                    row.finished_at = utcnow()
            session.commit()
            queued = [r.id for r in rows if r.status == QUEUED]
        for job_id in queued:
            self.submit(job_id)
        return len(queued)

    def submit(self, job_id: uuid.UUID) -> Future[None]:
        return self._pool.submit(run_job, self._session_factory, job_id)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- dispatch and progress ---------------------------------------------------------------------


def _done_plan(row: PlanJob) -> Plan:
    if row.status != DONE or row.result is None:
        raise ConflictError(f"plan {row.id} is {row.status}, not done")
    return plan_from_json(row.result)


def dispatch(
    session: Session,
    *,
    job_id: uuid.UUID,
    master_secret: bytes,
    now: Callable[[], datetime] = utcnow,
) -> list[PlanDispatch]:
    """Queue each van's route on ``fleet/{van}/route`` (retained, QoS 1) with the rows that track
    it, in one transaction; commit. A plan is dispatched once (re-plan to change it).

    Each route is signed with its van's route key (:mod:`protocol.routes`, from
    ``master_secret``) and expires :data:`~protocol.routes.ROUTE_GRACE` after the later of the
    van's shift end and its last visit, within the protocol's bounds."""
    row = get_job(session, job_id)
    plan = _done_plan(row)
    if row.dispatched_at is not None:
        raise ConflictError(f"plan {row.id} was dispatched at {row.dispatched_at.isoformat()}")
    # Stops and vans only: no travel matrices, so no call to the plan's routing server.
    problem = ProblemSpec.model_validate(row.spec).to_problem(travel=HaversineTravel())
    origin = day_start(date.fromisoformat(row.options["day"]))
    sent = now()
    out: list[PlanDispatch] = []
    for route in plan.routes:
        stops = []
        for v in route.visits:
            if v.kind != "stop":
                continue
            s = problem.stop(v.stop_id)
            due = s.windows[-1].end if s.windows else None
            stops.append(
                RouteStop(
                    stop_id=s.id,
                    lat=s.location[0],
                    lon=s.location[1],
                    eta=origin + timedelta(seconds=v.start),
                    due=None if due is None else origin + timedelta(seconds=due),
                    kind=s.kind,
                )
            )
        shift_end = max([problem.van(route.van_id).shift_end, *(v.departure for v in route.visits)])
        message = sign_route(
            key=hub_route_key(master_secret, route.van_id),
            device_id=route.van_id,
            route_id=uuid.uuid4(),
            plan_id=row.id,
            stops=stops,
            issued_at=sent,
            expires_at=route_expiry(
                issued_at=sent, shift_end=origin + timedelta(seconds=shift_end)
            ),
        )
        d = PlanDispatch(
            route_id=message.route_id,
            plan_id=row.id,
            vehicle_id=route.van_id,
            stops=[s.model_dump(mode="json") for s in stops],
            sent_at=sent,
        )
        session.add(d)
        session.add(
            OutboundMessage(
                topic=vehicle_topic(route.van_id, Channel.ROUTE),
                payload=encode(message),
                qos=1,
                retain=True,
                created_at=sent,
                sent_at=None,
            )
        )
        out.append(d)
    row.dispatched_at = sent
    session.commit()
    return out


@dataclass(frozen=True, slots=True)
class RouteProgress:
    dispatch: PlanDispatch
    ack: VehicleCommandAck | None
    completed: tuple[str, ...]
    position: VanPosition | None


@dataclass(frozen=True, slots=True)
class PlanProgress:
    routes: tuple[RouteProgress, ...]
    etas: tuple[StopEta, ...]
    now: int


def _seconds(origin: datetime, t: datetime) -> int:
    return int((t - origin).total_seconds())


def progress(
    session: Session,
    *,
    row: PlanJob,
    radius_m: float = 40.0,
    now: Callable[[], datetime] = utcnow,
) -> PlanProgress | None:
    """Per-van route state of a dispatched plan, derived from what ingest stored: the ack, the
    stops the geofence saw the van reach on the plan's day (so a re-plan's routes count what the
    van did under the parent plan), and ETAs refreshed from its last fix.
    None for a plan not dispatched."""
    if row.dispatched_at is None or row.result is None:
        return None
    dispatches = list(session.scalars(select(PlanDispatch).where(PlanDispatch.plan_id == row.id)))
    acks = {
        a.command_id: a
        for a in session.scalars(
            select(VehicleCommandAck)
            .where(VehicleCommandAck.command_id.in_([d.route_id for d in dispatches]))
            .order_by(VehicleCommandAck.id.desc())
        )
    }
    origin = day_start(date.fromisoformat(row.options["day"]))
    routes: list[RouteProgress] = []
    for d in dispatches:
        fence = GeofenceDetector(
            stops={s["stop_id"]: (s["lat"], s["lon"]) for s in d.stops}, radius_m=radius_m
        )
        done: list[str] = []
        last: VanPosition | None = None
        fixes = session.execute(
            select(PositionRow.t, PositionRow.lat, PositionRow.lon)
            .where(
                PositionRow.vehicle_id == d.vehicle_id,
                PositionRow.t >= origin,
                PositionRow.t < origin + timedelta(days=1),
            )
            .order_by(PositionRow.t)
        )
        for t, lat, lon in fixes:
            last = VanPosition(d.vehicle_id, (lat, lon), _seconds(origin, t))
            for event in fence.update(last):
                if event.kind == "arrived" and event.stop_id not in done:
                    done.append(event.stop_id)
        routes.append(RouteProgress(d, acks.get(d.route_id), tuple(done), last))
    state = _fleet_state(routes, now=_seconds(origin, now()))
    spec = ProblemSpec.model_validate(row.spec)
    try:
        etas = refresh_etas(
            spec.to_problem(), plan_from_json(row.result), state, travel=spec.travel_model()
        )
    except TravelError as err:  # the plan's routing server is down: progress without ETAs
        log.warning("no ETAs for plan %s: %s", row.id, err)
        etas = []
    return PlanProgress(tuple(routes), tuple(etas), state.now)


def _fleet_state(routes: Sequence[RouteProgress], *, now: int) -> FleetState:
    positions = {r.dispatch.vehicle_id: r.position for r in routes if r.position is not None}
    completed = frozenset(s for r in routes for s in r.completed)
    heading: dict[str, str] = {}
    for r in routes:
        left = [s["stop_id"] for s in r.dispatch.stops if s["stop_id"] not in completed]
        if left and r.position is not None:
            heading[r.dispatch.vehicle_id] = left[0]
    return FleetState(now=now, positions=positions, completed=completed, heading_to=heading)


def create_replan(
    session: Session,
    *,
    job_id: uuid.UUID,
    new_stops: Sequence[Mapping[str, Any]],
    cancelled: Sequence[str],
    broken: Sequence[str],
    time_limit_s: float,
    seed: int,
    created_by: str,
    at: datetime | None = None,
    travel_servers: Collection[str] = (),
    now: Callable[[], datetime] = utcnow,
) -> PlanJob:
    """A queued re-plan of a done plan from the fleet state now (live positions, stops the
    geofence saw done). Raises ConflictError for a plan not done, ProblemError for a change that
    names what the problem does not have, or when the plan's routing server is no longer one of
    ``travel_servers``."""
    parent = get_job(session, job_id)
    current = _done_plan(parent)
    # Before the progress below asks the plan's routing server for ETAs.
    check_travel_server(ProblemSpec.model_validate(parent.spec), travel_servers)
    clock = now if at is None else (lambda: at)
    seen = progress(session, row=parent, now=clock)
    origin = day_start(date.fromisoformat(parent.options["day"]))
    t_now = _seconds(origin, clock())
    state = _fleet_state(seen.routes if seen else (), now=t_now)
    raw = dict(parent.spec)
    stop_ids = {s["id"] for s in raw["stops"]} | {lk["id"] for lk in raw["lockers"]}
    for sid in cancelled:
        if sid not in stop_ids:
            raise ProblemError(f"stop {sid!r}", "cancelled, but not in the plan's problem")
    van_ids = {v["id"] for v in raw["vans"]}
    for vid in broken:
        if vid not in van_ids:
            raise ProblemError(f"van {vid!r}", "broken down, but not in the plan's problem")
    # The new orders are checked now (with the parent's problem, so an id clash is refused here).
    ProblemSpec.model_validate({**raw, "stops": [*raw["stops"], *new_stops]}).to_problem(
        travel=HaversineTravel()
    )
    gone = set(cancelled)
    after = {
        **raw,
        "stops": [x for x in [*raw["stops"], *new_stops] if x["id"] not in gone],
        "lockers": [lk for lk in raw["lockers"] if lk["id"] not in gone],
    }
    options = {
        **parent.options,
        "time_limit_s": time_limit_s,
        "seed": seed,
        "replan": {
            "parent_plan": plan_to_json(current),
            "now": t_now,
            "positions": {vid: [*p.location, p.at] for vid, p in state.positions.items()},
            "completed": sorted(state.completed),
            "heading_to": dict(state.heading_to),
            "cancelled": list(cancelled),
            "new_stops": [dict(x) for x in new_stops],
        },
        # What is left once the re-plan is done: the next re-plan starts from it.
        "spec_after": after,
    }
    job = create_job(
        session,
        spec=ProblemSpec.model_validate(raw),
        options=options,
        created_by=created_by,
        parent=parent,
        broken=sorted({*parent.broken, *broken}),
        travel_servers=travel_servers,
    )
    return job
