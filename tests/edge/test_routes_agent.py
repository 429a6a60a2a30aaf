"""A whole van agent on a real Mosquitto: the route it kept expired while it was off, so on start
it drops it, says so in its log, and acknowledges the drop on ``fleet/{id}/cmd/ack``; then the
hub's retained copy of that same expired route arrives and is refused once more, and garbage on
the route topic costs one refusal ack, never the agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import pytest

from edge.agent import VehicleAgent
from edge.app import build_gnss
from edge.config import VehicleSettings
from edge.outbox import Outbox
from edge.routes import DurableRoutes, RouteKeeper
from edge.settings import MqttSettings, load_settings
from protocol.codec import decode, encode
from protocol.messages import CommandAck
from protocol.routes import hub_route_key
from protocol.topics import Channel, vehicle_topic
from tests.edge.test_routes import Clock, _route
from tests.van_rig import MASTER, sim_van_config

VAN = "van-1"


async def test_a_route_that_expired_while_the_van_was_off_is_dropped_on_start(
    tmp_path: Path, mqtt_settings: MqttSettings, caplog: pytest.LogCaptureFixture
) -> None:
    config = sim_van_config(tmp_path, mqtt_settings, VAN, time_scale=10, seed=1, batch_age_s=1)
    settings = load_settings(VehicleSettings, config)
    command_key = settings.command_secret()
    assert command_key is not None
    yesterday = datetime.now(UTC) - timedelta(days=1)
    route = _route(
        issued_at=yesterday, ttl=timedelta(hours=12), key=hub_route_key(MASTER.encode(), VAN)
    )
    path = settings.state_dir / f"{VAN}-route.db"
    kept = DurableRoutes(path)
    RouteKeeper(
        device_id=VAN, store=kept, reply=lambda _: None, key=command_key, clock=Clock(yesterday)
    ).handle(encode(route))
    kept.close()

    route_topic = vehicle_topic(VAN, Channel.ROUTE)
    acks: list[CommandAck] = []
    async with aiomqtt.Client(mqtt_settings.host, mqtt_settings.port, identifier="hub") as hub:
        await hub.subscribe(vehicle_topic(VAN, Channel.CMD_ACK), qos=1)
        # the hub's retained copy, still on the broker the van reconnects to
        await hub.publish(route_topic, encode(route), qos=1, retain=True)

        routes = DurableRoutes(path)
        outbox = Outbox(settings.state_dir / "outbox.db", limits=settings.outbox)
        caplog.set_level(logging.WARNING, logger="edge.routes")
        agent = VehicleAgent(
            settings=settings, gnss=build_gnss(settings), outbox=outbox, routes=routes
        )
        assert agent.routes.current is None and routes.load() is None
        assert f"kept route {route.route_id} dropped on start: expired" in caplog.text
        task = asyncio.create_task(agent.run())
        try:

            async def collect(n: int) -> None:
                async with asyncio.timeout(30):
                    async for message in hub.messages:
                        assert isinstance(message.payload, bytes)
                        acks.append(decode(message.payload, CommandAck))
                        if len(acks) >= n:
                            return

            await collect(2)  # the drop on start, then the retained copy refused
            await hub.publish(route_topic, b"\xffnot a route", qos=1)
            await collect(3)
            assert not task.done(), "the agent keeps running"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await hub.publish(route_topic, b"", qos=1, retain=True)  # clear the retained copy
            routes.close()
            outbox.close()
    assert [(a.command_id, a.ok, a.reason, a.name) for a in acks] == [
        (route.route_id, False, "expired", "route"),
        (route.route_id, False, "expired", "route"),
        (acks[2].command_id, False, "malformed", "route"),
    ]
    assert agent.routes.refused == {"expired": 2, "malformed": 1}
