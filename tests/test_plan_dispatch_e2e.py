"""Planned routes end to end through a real Mosquitto: ``POST /plans`` → worker → dispatch through
the outbox (retained, QoS 1, signed for the van) → a real van agent verifies, keeps and
acknowledges its route → hub ingest → ``GET /plans/{id}``; a tampered, replayed older, unsigned or
garbage route on the van's topic is refused and counted while the route in force stays; the route
survives a van restart (on disk, and from the broker's retained copy), and stops are completed by
the geofence from positions the hub ingests."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import VehicleSettings
from edge.outbox import Outbox
from edge.routes import DurableRoutes, MemoryRoutes, RouteStore
from edge.settings import MqttSettings, load_settings
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.routes import MAX_ROUTE_LIFETIME, RouteMark, hub_route_key, sign_route, verify_route
from protocol.topics import Channel, vehicle_topic
from tests import test_end_to_end as e2e
from tests.cloud import plan_rigs
from tests.test_end_to_end import Hub
from tests.van_rig import MASTER, sim_van_config

hub = e2e.hub  # run_hub on SQLite with a real uvicorn

VAN = "van-1"


def _config(tmp_path: Path, mqtt: MqttSettings, state: str) -> Path:
    return sim_van_config(
        tmp_path, mqtt, VAN, time_scale=10, seed=5, batch_age_s=1, state=state, status_interval_s=1
    )


@contextlib.asynccontextmanager
async def van(config: Path, routes: RouteStore) -> AsyncIterator[VehicleAgent]:
    settings = load_settings(VehicleSettings, config)
    outbox = Outbox(settings.state_dir / "outbox.db", limits=settings.outbox)
    agent = VehicleAgent(settings=settings, gnss=build_gnss(settings), outbox=outbox, routes=routes)
    task = asyncio.create_task(agent.run())
    try:
        yield agent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        outbox.close()


async def until(check: Callable[[], Awaitable[bool]], *, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_a_dispatched_route_reaches_the_van_is_acked_kept_and_followed(
    tmp_path: Path, hub: Hub, mqtt_settings: MqttSettings
) -> None:
    today = dt.datetime.now(dt.UTC).date()
    routes_file = tmp_path / "route.db"
    async with httpx.AsyncClient(headers=hub.headers, base_url=hub.api) as api:
        stored = DurableRoutes(routes_file)
        async with van(_config(tmp_path, mqtt_settings, "state-a"), stored) as agent:

            async def known() -> bool:
                r = await api.get(f"/api/v1/vehicles/{VAN}/positions")
                return r.status_code == 200

            await until(known)
            r = await api.post(
                "/api/v1/plans", json=plan_rigs.request(day=today.isoformat(), time_limit_s=0.5)
            )
            assert r.status_code == 202, r.text
            done = await plan_rigs.finished(api, r.json()["id"])
            assert done["status"] == "done", done
            planned = {
                x["van_id"]: [v["stop_id"] for v in x["visits"] if v["kind"] == "stop"]
                for x in done["plan"]["routes"]
            }
            assert set(planned) == {"van-1", "van-2"}
            r = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
            assert r.status_code == 202, r.text
            plan_url = f"/api/v1/plans/{done['id']}"
            route_topic = vehicle_topic(VAN, Channel.ROUTE)
            seen: dict[str, Any] = {}

            async def acked() -> bool:
                seen.update((await api.get(plan_url)).json())
                states = {x["vehicle_id"]: x["state"] for x in seen["routes"]}
                return states.get(VAN) == "acknowledged"

            await until(acked)
            mine = next(x for x in seen["routes"] if x["vehicle_id"] == VAN)
            assert {x["vehicle_id"]: x["state"] for x in seen["routes"]}["van-2"] == "sent"
            assert agent.routes.current is not None
            assert agent.routes.refused == {}
            assert str(agent.routes.current.route_id) == mine["route_id"]
            assert [s.stop_id for s in agent.routes.current.stops] == planned[VAN]
            assert mine["acked_at"] is not None

            # The route is signed for this van and expires after its shift: the van verified it.
            in_force = agent.routes.current
            now = dt.datetime.now(dt.UTC)
            assert in_force.issued_at <= now < in_force.expires_at
            assert in_force.expires_at - in_force.issued_at <= MAX_ROUTE_LIFETIME
            verify_route(
                in_force,
                key=hub_route_key(MASTER.encode(), VAN),
                device_id=VAN,
                now=now,
                newest=RouteMark.of(in_force),
            )
            # Anyone else on the topic is refused, once each, and the route in force stays:
            # a tampered copy, a replayed older route (validly signed), an unsigned one, garbage.
            tampered = json.loads(encode(in_force))
            tampered["stops"][0]["lat"] += 0.001  # the first stop moved, by someone else
            older = sign_route(
                key=hub_route_key(MASTER.encode(), VAN),
                device_id=VAN,
                route_id=uuid.uuid4(),
                plan_id=uuid.uuid4(),
                stops=(),
                issued_at=in_force.issued_at - dt.timedelta(minutes=5),
                expires_at=in_force.expires_at,
            )
            unsigned = {k: v for k, v in json.loads(encode(older)).items() if k != "signature"}
            async with aiomqtt.Client(
                mqtt_settings.host, mqtt_settings.port, identifier="route-intruder"
            ) as intruder:
                for payload in (
                    json.dumps(tampered).encode(),
                    encode(older),
                    json.dumps(unsigned).encode(),
                    b"\x00garbage",
                ):
                    await intruder.publish(route_topic, payload, qos=1, retain=False)

            async def all_refused() -> bool:
                return sum(agent.routes.refused.values()) >= 4

            await until(all_refused)
            assert agent.routes.refused == {
                "bad_signature": 1,
                "stale": 1,
                "unsigned": 1,
                "malformed": 1,
            }
            assert agent.routes.current == in_force

            async def reported() -> bool:  # the refusals ride the van's status to the hub
                vans = (await api.get("/api/v1/vehicles")).json()["data"]
                status = next(v for v in vans if v["id"] == VAN)["status"] or {}
                return bool(status.get("health", {}).get("routes_refused") == "4")

            await until(reported)

            # The simulated van drives its route: the hub's geofence sees it reach its first stop.
            async def reached() -> bool:
                body = (await api.get(plan_url)).json()
                route = next(x for x in body["routes"] if x["vehicle_id"] == VAN)
                return bool(route["completed"][:1] == planned[VAN][:1])

            await until(reached, timeout=90)
        stored.close()

        # Restart on the same state: the route is there before the van is even online.
        reopened = DurableRoutes(routes_file)
        try:
            async with van(_config(tmp_path, mqtt_settings, "state-a"), reopened) as agent:
                assert agent.routes.current is not None
                assert str(agent.routes.current.route_id) == mine["route_id"]
        finally:
            reopened.close()

        # A van that lost its disk gets the route back from the broker's retained copy.
        async with van(_config(tmp_path, mqtt_settings, "state-b"), MemoryRoutes()) as agent:

            async def retained() -> bool:
                return agent.routes.current is not None

            await until(retained)
            assert agent.routes.current is not None
            assert str(agent.routes.current.route_id) == mine["route_id"]

        # van-2 (no agent here: its positions are published as its modem would) reaches its first
        # stop and waits there; ingest stores the fixes and the geofence marks the stop done.
        first = planned["van-2"][0]
        lat, lon = next(s["location"] for s in plan_rigs.PROBLEM["stops"] if s["id"] == first)
        t0 = dt.datetime.now(dt.UTC)
        batch = TelemetryBatch(
            vehicle_id="van-2",
            seq=1,
            points=tuple(
                Position(t=t0 + dt.timedelta(seconds=k), lat=lat, lon=lon) for k in range(3)
            ),
        )
        async with aiomqtt.Client(
            mqtt_settings.host, mqtt_settings.port, identifier="van-2-modem"
        ) as modem:
            await modem.publish(vehicle_topic("van-2", Channel.TELEMETRY), encode(batch), qos=1)

        async def completed() -> bool:
            body = (await api.get(plan_url)).json()
            route = next(x for x in body["routes"] if x["vehicle_id"] == "van-2")
            return bool(route["completed"] == [first])

        await until(completed)
