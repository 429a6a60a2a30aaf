"""The demo's dispatcher: plans the day's parcels for the simulated vans, dispatches the routes and
re-plans when a van falls behind, all through the hub's own ``/plans`` API (as an ops user would).

The parcels are home deliveries drawn on the streets around the depot (seeded, so each demo plans
the same day) plus one stop per locker. The simulated vans drive the route they are given
(``SimulatedGnss.follow_route``), so the geofence sees them arrive; the tightest windows are 15
minutes, so a van that dwells long somewhere falls behind for real, which is what makes the
re-plan fire.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger(__name__)

STOPS = 12
PLAN_TIME_LIMIT_S = 2.0
CHECK_EVERY_S = 20.0
REPLAN_AT_MOST_EVERY_S = 120.0


def demo_problem(
    *,
    depot: tuple[float, float],
    vans: list[str],
    lockers: Mapping[str, tuple[float, float]],
    now: datetime,
    rng: random.Random,
) -> dict[str, Any]:
    """Today's problem in our JSON format: times are seconds from midnight UTC, from ``now`` on."""
    t0 = now.hour * 3600 + now.minute * 60 + now.second
    stops: list[dict[str, Any]] = [
        {
            "id": f"home-{k}",
            "location": [
                round(depot[0] + rng.uniform(-0.006, 0.006), 6),
                round(depot[1] + rng.uniform(-0.009, 0.009), 6),
            ],
            "service_time": 60,
            # Tight windows for some: a van that dawdles makes them late, and the hub notices.
            "windows": [{"start": t0, "end": t0 + rng.choice((900, 1800, 3600))}],
        }
        for k in range(1, STOPS + 1)
    ]
    stops += [
        {"id": lid, "location": [loc[0], loc[1]], "service_time": 120, "load": {"parcels": 4}}
        for lid, loc in lockers.items()
    ]
    return {
        "name": "demo-day",
        "depots": [{"id": "depot", "location": [depot[0], depot[1]], "closes": t0 + 5 * 3600}],
        "vans": [
            {
                "id": v,
                "depot": "depot",
                "capacity": {"parcels": 8},  # 20 parcels: the day needs all three vans
                "shift_start": t0,
                "shift_end": t0 + 4 * 3600,
            }
            for v in vans
        ],
        "stops": stops,
    }


async def _finished(api: httpx.AsyncClient, plan_id: str) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await api.get(f"/plans/{plan_id}")).raise_for_status().json()
        if body["status"] in ("done", "failed"):
            return body
        await asyncio.sleep(0.5)


def _summary(plan: dict[str, Any]) -> str:
    p = plan["plan"]
    routes = ", ".join(
        f"{r['van_id']}: {sum(1 for v in r['visits'] if v['kind'] == 'stop')} stops"
        for r in p["routes"]
    )
    return (
        f"{routes}; {p['distance_m'] / 1000:.1f} km, {p['co2_kg']:.1f} kg CO2, "
        f"{len(p['dropped'])} dropped"
    )


async def _plan_and_dispatch(
    api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    queued = (await api.post(path, json=body)).raise_for_status().json()
    done = await _finished(api, queued["id"])
    if done["status"] != "done":
        log.warning("demo: planning failed: %s", done["error"])
        return None
    (await api.post(f"/plans/{done['id']}/dispatch")).raise_for_status()
    return done


async def run_dispatcher(
    *,
    api: str,
    api_key: str,
    depot: tuple[float, float],
    vans: list[str],
    lockers: Mapping[str, tuple[float, float]],
    rng: random.Random,
    check_every_s: float = CHECK_EVERY_S,
) -> None:
    """Plan, dispatch, then follow progress until cancelled; re-plan when a stop is predicted late."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=f"{api}/api/v1", headers=headers, timeout=30) as client:
        problem = demo_problem(
            depot=depot, vans=vans, lockers=lockers, now=datetime.now(UTC), rng=rng
        )
        current = await _plan_and_dispatch(
            client, "/plans", {"problem": problem, "time_limit_s": PLAN_TIME_LIMIT_S, "seed": 1}
        )
        if current is None:
            return
        print(f"demo: routes dispatched, plan {current['id']}: {_summary(current)}", flush=True)
        last_replan = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(check_every_s)
            seen = (await client.get(f"/plans/{current['id']}")).raise_for_status().json()
            acked = sum(1 for r in seen["routes"] if r["state"] == "acknowledged")
            done = sum(len(r["completed"]) for r in seen["routes"])
            late = seen["late"]
            log.info(
                "demo: plan %s: %d/%d routes acknowledged, %d stops done, %d predicted late",
                current["id"],
                acked,
                len(seen["routes"]),
                done,
                len(late),
            )
            now = asyncio.get_running_loop().time()
            if not late or now - last_replan < REPLAN_AT_MOST_EVERY_S:
                continue
            worst = late[0]
            print(
                f"demo: {worst['van_id']} is behind ({worst['stop_id']} "
                f"{worst['late_by_s'] // 60} min late); re-planning",
                flush=True,
            )
            replanned = await _plan_and_dispatch(
                client,
                f"/plans/{current['id']}/replan",
                {"time_limit_s": PLAN_TIME_LIMIT_S},
            )
            last_replan = now
            if replanned is not None:
                current = replanned
                print(f"demo: re-planned {current['id']}: {_summary(current)}", flush=True)
