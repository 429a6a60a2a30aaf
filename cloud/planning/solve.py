"""One entry point: ``plan(problem, *, time_limit, seed) -> Plan``, whichever engine runs.

``engine="auto"`` takes PyVRP when it models every constraint of the problem (it is much stronger
than OR-Tools' local search); ``hybrid`` when only breaks or several windows per stop are beyond
it (PyVRP solves a tightened relaxation, OR-Tools starts from its routes and enforces the rest);
OR-Tools alone when a warm start or a pinned first stop is given (re-planning), which only the
OR-Tools engine takes. ``iterations`` bounds the work: PyVRP iterations, OR-Tools solutions.

Determinism: for a given seed and work bound (``iterations`` for PyVRP, ``solution_limit`` for
OR-Tools) the plan is identical run to run. Under a wall-clock ``time_limit`` alone the engines
are deterministic in their search, but how far they get depends on the machine's load; on small
problems both reach the same plan well within the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from cloud.planning.errors import EngineError
from cloud.planning.evaluate import RELOAD, RouteOrder, evaluate, rank
from cloud.planning.model import Problem
from cloud.planning.result import Plan, Route

if TYPE_CHECKING:  # the engines are imported only when chosen
    from cloud.planning.ortools_engine import OrToolsSettings

Engine = Literal["auto", "ortools", "pyvrp", "hybrid"]
#: Share of the time limit the hybrid engine gives PyVRP on the relaxation; OR-Tools gets the rest.
HYBRID_PYVRP_SHARE = 0.6
#: Time-of-day speeds: re-timing rounds after the first solve, and each one's share of the limit.
RETIME_ROUNDS = 2
RETIME_SHARE = 0.15
#: ``progress(fraction_of_time_limit, best_cost_or_None)``, called from the solving thread.
Progress = Callable[[float, float | None], None]


def choose_engine(problem: Problem, *, warm: bool = False) -> Literal["ortools", "pyvrp", "hybrid"]:
    """PyVRP if it models everything; else PyVRP on a relaxation then OR-Tools; else OR-Tools."""
    from cloud.planning.pyvrp_engine import supports
    from cloud.planning.relax import relaxed

    if warm:
        return "ortools"
    if supports(problem) is None:
        return "pyvrp"
    loose = relaxed(problem)
    return "hybrid" if loose is not None and supports(loose) is None else "ortools"


def plan(
    problem: Problem,
    *,
    time_limit: float,
    seed: int = 0,
    engine: Engine = "auto",
    progress: Progress | None = None,
    iterations: int | None = None,
    initial: Sequence[RouteOrder] | None = None,
    first_stop: dict[str, str] | None = None,
    ortools_settings: OrToolsSettings | None = None,
) -> Plan:
    """Plan routes for ``problem`` within ``time_limit`` seconds.

    With time-of-day speeds (``problem.speed``) the engines still see one static duration matrix,
    so the plan is made in rounds (iterate and re-time): the first round solves with the matrix
    at the fleet's first shift start; each later round re-times every matrix row at the time the
    previous plan leaves that place (:func:`retimed`) and solves again (OR-Tools warm-started from
    the previous plan). Every round's plan is evaluated with the true time-dependent legs, and the
    best of them is returned, so its ETAs, lateness and cost are the time-dependent ones.

    Raises :class:`~cloud.planning.errors.NoSolutionError` when no plan exists that serves every
    required stop, and :class:`EngineError` when the engine asked for cannot model the problem.
    """
    if time_limit <= 0:
        raise ValueError(f"time_limit must be > 0 s, got {time_limit}")

    def once(
        p: Problem, limit: float, report: Progress | None, start: Sequence[RouteOrder] | None
    ) -> Plan:
        return _plan_static(
            p,
            time_limit=limit,
            seed=seed,
            engine=engine,
            progress=report,
            iterations=iterations,
            initial=start,
            first_stop=first_stop,
            ortools_settings=ortools_settings,
        )

    if problem.speed is None:
        return once(problem, time_limit, progress, initial)
    from cloud.planning.errors import NoSolutionError

    began = time.monotonic()
    shares = (1.0 - RETIME_SHARE * RETIME_ROUNDS,) + (RETIME_SHARE,) * RETIME_ROUNDS
    best: Plan | None = None
    current: Plan | None = None
    done = 0.0
    failure: NoSolutionError | None = None
    for k, share in enumerate(shares):
        timed = problem if current is None else retimed(problem, current)
        offset = done

        def part(f: float, c: float | None, offset: float = offset, share: float = share) -> None:
            if progress is not None and f < 1.0:
                progress(offset + f * share, c)

        warm = initial
        if current is not None and (initial or first_stop or engine == "ortools"):
            warm = [RouteOrder(r.van_id, _tokens(r)) for r in current.routes]
        try:
            candidate = once(
                timed, max(0.1, share * time_limit), part if progress is not None else None, warm
            )
        except NoSolutionError as err:
            if k == 0:
                failure = err
            break
        done += share
        current = candidate
        if best is None or rank(problem, candidate) < rank(problem, best):
            best = candidate
    if best is None:
        assert failure is not None
        raise failure
    if progress is not None:
        progress(1.0, None)
    return replace(best, runtime=time.monotonic() - began)


def retimed(problem: Problem, current: Plan) -> Problem:
    """``problem`` with each duration row re-timed at when ``current`` leaves that place.

    A stop's row is its legs leaving at the planned departure; a depot's, leaving at the earliest
    planned start from it; a stop the plan drops, leaving at its first window's start (or the first
    shift start) plus service. The engines then see rush hour where the plan actually drives.
    """
    speed = problem.speed
    if speed is None:
        return problem
    first_shift = min(v.shift_start for v in problem.vans)
    depart: dict[int, int] = {}
    for i, d in enumerate(problem.depots):
        starts = [r.start for r in current.routes if problem.van(r.van_id).start_depot == d.id]
        depart[i] = min(starts) if starts else max(d.opens, first_shift)
    for s in problem.stops:
        i = problem.index_of[s.id]
        w = s.windows[0].start if s.windows else first_shift
        depart[i] = max(w, first_shift) + s.service_time
    for r in current.routes:
        for v in r.visits:
            if v.kind == "stop":
                depart[problem.index_of[v.stop_id]] = v.departure
    dur = np.empty_like(problem.duration)
    for i in range(len(dur)):
        dur[i] = speed.leg_times(problem.distance[i], depart[i])
        dur[i, i] = 0
    dur.setflags(write=False)
    return replace(problem, duration=dur)


def _tokens(route: Route) -> tuple[str, ...]:
    return tuple(v.stop_id if v.kind == "stop" else RELOAD for v in route.visits)


def _plan_static(
    problem: Problem,
    *,
    time_limit: float,
    seed: int = 0,
    engine: Engine = "auto",
    progress: Progress | None = None,
    iterations: int | None = None,
    initial: Sequence[RouteOrder] | None = None,
    first_stop: dict[str, str] | None = None,
    ortools_settings: OrToolsSettings | None = None,
) -> Plan:
    """One solve with the problem's static duration matrix (see :func:`plan`)."""
    warm = bool(initial) or bool(first_stop)
    chosen = choose_engine(problem, warm=warm) if engine == "auto" else engine
    began = time.monotonic()
    if chosen == "pyvrp":
        from cloud.planning import pyvrp_engine

        why = pyvrp_engine.supports(problem)
        if why is not None or warm:
            raise EngineError(f"the PyVRP engine cannot model {why or 'a warm start'}")
        orders = pyvrp_engine.solve(
            problem, time_limit=time_limit, seed=seed, iterations=iterations, progress=progress
        )
    elif chosen in ("ortools", "hybrid"):
        from cloud.planning import ortools_engine, pyvrp_engine
        from cloud.planning.errors import NoSolutionError
        from cloud.planning.relax import relaxed

        ortools_limit = time_limit
        if chosen == "hybrid" and not warm:
            loose = relaxed(problem)
            if loose is None or pyvrp_engine.supports(loose) is not None:
                raise EngineError("the hybrid engine needs a relaxation PyVRP can model")
            share = HYBRID_PYVRP_SHARE * time_limit
            try:
                initial = pyvrp_engine.solve(
                    loose,
                    time_limit=share,
                    seed=seed,
                    iterations=iterations,
                    progress=None
                    if progress is None
                    else (lambda f, c: progress(f * HYBRID_PYVRP_SHARE, c)),
                )
            except NoSolutionError:
                initial = None  # OR-Tools constructs its own first solution
            # OR-Tools needs time to read the routes in and schedule breaks even on a loaded
            # machine; a hybrid run may overshoot its limit a little rather than fail.
            ortools_limit = max(
                (1 - HYBRID_PYVRP_SHARE) * time_limit, time_limit - (time.monotonic() - began)
            )

        settings = ortools_settings
        if iterations is not None and settings is None:
            settings = ortools_engine.OrToolsSettings(solution_limit=iterations)
        try:
            orders = ortools_engine.solve(
                problem,
                time_limit=max(0.1, ortools_limit),
                seed=seed,
                settings=settings,
                initial=initial,
                first_stop=first_stop,
                progress=progress,
            )
        except NoSolutionError:
            if chosen != "hybrid" or not initial:
                raise
            # OR-Tools found nothing in its share: PyVRP's routes, checked against the full
            # problem (the evaluator reports any constraint they break), beat no plan at all.
            orders = list(initial)
    else:
        raise EngineError(f"unknown engine {engine!r}; choose auto, ortools, pyvrp or hybrid")
    if progress is not None:
        progress(1.0, None)
    return evaluate(problem, orders, engine=chosen, runtime=time.monotonic() - began)
