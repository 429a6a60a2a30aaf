"""The demo's dispatcher: plans each depot's day from the hub's own parcels, dispatches the routes,
delivers at each stop the geofence saw reached, and re-plans when a van falls behind -- all through
the hub's API (``/depots``, ``/plans/from-hub``, ``/plans/{id}/replan``), as an ops user would.

At start it sets the depots' sites, their vans and the lockers' positions (``PUT /depots/...``),
waits for the desk's morning parcels and the lockers' first report, then plans every depot. The
simulated vans drive the route they are given (``SimulatedGnss.follow_route``); one of them is held
up at each of its stops for minutes (``SimGnssSettings.route_dwell_s``), so it really falls behind:
a van with stops left that has stood still for ``stall_after_s`` is taken out (re-planned as
broken down) and its stops go to the depot's other vans; a stop predicted late re-plans too.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from locker.errors import KeypadError
from locker.keypad import SimKeypad

log = logging.getLogger(__name__)

PLAN_TIME_LIMIT_S = 2.0
CHECK_EVERY_S = 10.0
REPLAN_AT_MOST_EVERY_S = 120.0
#: A van standing this long with stops left has broken down (a delivery dwell is 40-90 s).
STALL_AFTER_S = 120.0
#: Moving less than this between checks is standing still (GNSS noise is a few metres).
STILL_M = 25.0
#: Around the clock: the demo runs whenever someone starts it (times past 24 h are tomorrow).
DAY_END_S = 2 * 86_400


@dataclass(frozen=True)
class DemoSites:
    """What the demo tells the hub of its sites: depots, each van's depot and type, lockers."""

    depots: Mapping[str, tuple[float, float]]
    vans: Mapping[str, tuple[str, str]]  # van -> (depot, vehicle type)
    lockers: Mapping[str, tuple[str, tuple[float, float]]]  # locker -> (depot, position)
    van_capacity: int = 6


@dataclass
class _Watch:
    """What the dispatcher remembers of a depot's current plan and its vans."""

    plan: dict[str, Any]
    last_replan: float
    broken: set[str] = field(default_factory=set)
    handled: set[str] = field(default_factory=set)  # stops whose parcels were handed over
    still: dict[str, tuple[tuple[float, float], float]] = field(default_factory=dict)


async def seed_sites(client: httpx.AsyncClient, sites: DemoSites) -> None:
    """``PUT`` every depot, van and locker site (idempotent: a restart sets the same)."""
    for depot, (lat, lon) in sites.depots.items():
        hours = {"lat": lat, "lon": lon, "opens_s": 0, "closes_s": DAY_END_S}
        (await client.put(f"/depots/{depot}", json=hours)).raise_for_status()
    for van, (depot, kind) in sites.vans.items():
        body: dict[str, object] = {
            "type": kind,
            "capacity_parcels": sites.van_capacity,
            "shift_start_s": 0,
            "shift_end_s": DAY_END_S,
        }
        (await client.put(f"/depots/{depot}/vans/{van}", json=body)).raise_for_status()
    for locker, (depot, (lat, lon)) in sites.lockers.items():
        where = {"lat": lat, "lon": lon}
        (await client.put(f"/depots/{depot}/lockers/{locker}", json=where)).raise_for_status()


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
        f"{len(plan.get('dropped_parcels', []))} parcels dropped"
    )


async def _plan_and_dispatch(
    api: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    r = await api.post(path, json=body)
    if r.status_code == 422:
        log.warning("demo: cannot plan (%s): %s", path, r.json().get("detail"))
        return None
    queued = r.raise_for_status().json()
    done = await _finished(api, queued["id"])
    if done["status"] != "done":
        log.warning("demo: planning failed: %s", done["error"])
        return None
    for d in done.get("dropped_parcels", []):
        log.info("demo: parcel %s not planned: %s", d["parcel_id"], d["reason"])
    (await api.post(f"/plans/{done['id']}/dispatch")).raise_for_status()
    return done


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    k = 111_320.0
    return math.hypot((a[0] - b[0]) * k, (a[1] - b[1]) * k * math.cos(math.radians(a[0])))


async def _wait_for_lockers(client: httpx.AsyncClient, lockers: set[str]) -> None:
    """The plan counts free compartments by size: wait until every locker has reported them."""
    while True:
        seen = (await client.get("/lockers")).raise_for_status().json()["data"]
        if lockers <= {lk["id"] for lk in seen if lk["compartments"] > 0}:
            return
        await asyncio.sleep(0.5)


async def _hand_over(
    client: httpx.AsyncClient,
    seen: dict[str, Any],
    watch: _Watch,
    keypads: Mapping[str, SimKeypad],
) -> None:
    """At each stop the geofence saw a van reach: the driver scans the home parcel (proof of
    delivery), or types each locker parcel's courier code on the locker's keypad."""
    parcels: dict[str, list[str]] = seen.get("parcels", {})
    for route in seen["routes"]:
        for stop_id in route["completed"]:
            if stop_id in watch.handled or stop_id not in parcels:
                continue
            watch.handled.add(stop_id)
            where = next((s for s in route["stops"] if s["stop_id"] == stop_id), None)
            for pid in parcels[stop_id]:
                try:
                    if stop_id in keypads:
                        code = (
                            (await client.post(f"/parcels/{pid}/codes", json={"kind": "courier"}))
                            .raise_for_status()
                            .json()
                        )
                        await asyncio.sleep(2)  # the grant reaches the locker
                        keypads[stop_id].press(code["code"] + "#")
                        await asyncio.sleep(8)  # the door opens, the parcel goes in, it shuts
                        log.info("demo: courier deposits parcel %s at %s", pid, stop_id)
                    elif where is not None:
                        body = {"lat": where["lat"], "lon": where["lon"]}
                        body["vehicle_id"] = route["vehicle_id"]
                        r = await client.post(f"/parcels/{pid}/delivery", json=body)
                        r.raise_for_status()
                        log.info("demo: %s delivered parcel %s", route["vehicle_id"], pid)
                except (httpx.HTTPStatusError, KeypadError) as err:
                    log.info("demo: parcel %s at %s not handed over: %s", pid, stop_id, err)


async def _stalled_van(
    client: httpx.AsyncClient, seen: dict[str, Any], watch: _Watch, now: float
) -> tuple[str, int] | None:
    """A van of the plan with stops left that has not moved for ``STALL_AFTER_S``."""
    vehicles = {
        v["id"]: v for v in (await client.get("/vehicles")).raise_for_status().json()["data"]
    }
    for route in seen["routes"]:
        van = route["vehicle_id"]
        left = [s for s in route["stops"] if s["stop_id"] not in route["completed"]]
        pos = (vehicles.get(van) or {}).get("last_position")
        if van in watch.broken or not left or pos is None:
            watch.still.pop(van, None)
            continue
        here = (float(pos["lat"]), float(pos["lon"]))
        anchor = watch.still.get(van)
        if anchor is None or _metres(anchor[0], here) > STILL_M:
            watch.still[van] = (here, now)
        elif now - anchor[1] >= STALL_AFTER_S:
            return van, len(left)
    return None


async def run_dispatcher(
    *,
    api: str,
    api_key: str,
    sites: DemoSites,
    parcels_ready: asyncio.Event | None = None,
    planned: asyncio.Event | None = None,
    keypads: Mapping[str, SimKeypad] | None = None,
    check_every_s: float = CHECK_EVERY_S,
) -> None:
    """Seed the sites, plan and dispatch every depot, then follow progress until cancelled."""
    headers = {"Authorization": f"Bearer {api_key}"}
    keypads = keypads or {}
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=f"{api}/api/v1", headers=headers, timeout=30) as client:
        await seed_sites(client, sites)
        await _wait_for_lockers(client, set(sites.lockers))
        if parcels_ready is not None:
            await parcels_ready.wait()
        watches: dict[str, _Watch] = {}
        for depot in sites.depots:
            body = {"depot": depot, "time_limit_s": PLAN_TIME_LIMIT_S, "seed": 1}
            plan = await _plan_and_dispatch(client, "/plans/from-hub", body)
            if plan is None:
                continue
            watches[depot] = _Watch(plan=plan, last_replan=loop.time())
            print(
                f"demo: routes dispatched, plan {plan['id']} ({depot}): {_summary(plan)}",
                flush=True,
            )
        if planned is not None:
            planned.set()
        while True:
            await asyncio.sleep(check_every_s)
            for depot, watch in watches.items():
                await _follow(client, depot, watch, keypads, loop.time())


async def _follow(
    client: httpx.AsyncClient,
    depot: str,
    watch: _Watch,
    keypads: Mapping[str, SimKeypad],
    now: float,
) -> None:
    current = watch.plan
    seen = (await client.get(f"/plans/{current['id']}")).raise_for_status().json()
    acked = sum(1 for r in seen["routes"] if r["state"] == "acknowledged")
    done = sum(len(r["completed"]) for r in seen["routes"])
    late = seen["late"]
    log.info(
        "demo: plan %s (%s): %d/%d routes acknowledged, %d stops done, %d predicted late",
        current["id"],
        depot,
        acked,
        len(seen["routes"]),
        done,
        len(late),
    )
    await _hand_over(client, seen, watch, keypads)
    body: dict[str, Any] = {"time_limit_s": PLAN_TIME_LIMIT_S}
    stalled = await _stalled_van(client, seen, watch, now)
    if stalled is not None:
        van, left = stalled
        print(
            f"demo: {van} has stood still for {STALL_AFTER_S:.0f} s with {left} stops left "
            "(broken down); re-planning without it",
            flush=True,
        )
        watch.broken.add(van)
        body["broken"] = [van]
    elif late and now - watch.last_replan >= REPLAN_AT_MOST_EVERY_S:
        worst = late[0]
        print(
            f"demo: {worst['van_id']} is behind ({worst['stop_id']} "
            f"{worst['late_by_s'] // 60} min late); re-planning",
            flush=True,
        )
    else:
        return
    watch.last_replan = now
    replanned = await _plan_and_dispatch(client, f"/plans/{current['id']}/replan", body)
    if replanned is None:
        return
    watch.plan = replanned
    print(f"demo: re-planned {replanned['id']} ({depot}): {_summary(replanned)}", flush=True)
    if stalled is not None:
        await _rescue(client, depot, watch, replanned)


async def _rescue(
    client: httpx.AsyncClient, depot: str, watch: _Watch, replanned: dict[str, Any]
) -> None:
    """The parcels stranded on a broken-down van go back to the depot (a failed attempt with the
    reason) and the depot's day is planned again from the hub, without the broken vans."""
    stranded = [d["parcel_id"] for d in replanned["dropped_parcels"] if "broke down" in d["reason"]]
    for pid in stranded:
        reason = {"reason": f"van {', '.join(sorted(watch.broken))} broke down"}
        r = await client.post(f"/parcels/{pid}/attempts", json=reason)
        if r.status_code != 200:
            log.info("demo: parcel %s not taken back: %s", pid, r.text)
    body = {
        "depot": depot,
        "exclude_vans": sorted(watch.broken),
        "time_limit_s": PLAN_TIME_LIMIT_S,
        "seed": 1,
    }
    rescue = await _plan_and_dispatch(client, "/plans/from-hub", body)
    if rescue is not None:
        watch.plan = rescue
        print(
            f"demo: {len(stranded)} parcels back at {depot}; planned again {rescue['id']}: "
            f"{_summary(rescue)}",
            flush=True,
        )
