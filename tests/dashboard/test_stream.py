"""The live stream over real HTTP, as any client (not only the page) would read it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cloud.dashboard.rig import hub_settings_for, running_hub
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import DeviceStatus, Position, TelemetryBatch
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, mqtt_client

pytestmark = pytest.mark.slow


async def _events(lines: httpx.Response, wanted: int) -> list[tuple[str, object]]:
    """Parse server-sent events off ``lines`` until ``wanted`` of them (comments skipped)."""
    out: list[tuple[str, object]] = []
    event, data = "message", ""
    async for line in lines.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and data:
            out.append((event, json.loads(data)))
            if len(out) == wanted:
                return out
            event, data = "message", ""
    return out


async def test_a_viewer_streams_what_devices_publish_and_the_stream_ends_with_the_hub(
    tmp_path: Path, mqtt_settings: MqttSettings
) -> None:
    settings = hub_settings_for(
        state_dir=tmp_path, mqtt=mqtt_settings, master_secret=MASTER_SECRET, api_keys=KEYS
    )
    fix = Position(t=datetime(2026, 3, 2, 8, 0, tzinfo=UTC), lat=52.1, lon=4.3, heading_deg=10.0)
    async with running_hub(settings) as url, httpx.AsyncClient(base_url=url) as client:
        refused = [
            (await client.get("/api/v1/stream")).status_code,
            (await client.get("/api/v1/stream", headers=auth(Role.INTEGRATION))).status_code,
        ]
        async with client.stream(
            "GET", "/api/v1/stream", headers=auth(Role.VIEWER), timeout=20
        ) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.create_task(_events(resp, 3))
            await asyncio.sleep(0.5)  # the hello is sent on subscribing; publish after it
            async with mqtt_client(mqtt_settings, "test-devices") as devices:
                batch = TelemetryBatch(vehicle_id="van-1", seq=1, points=(fix,))
                await devices.publish(vehicle_topic("van-1", Channel.TELEMETRY), encode(batch))
                status = DeviceStatus(device_id="locker-1", kind="locker", online=False)
                await devices.publish(locker_topic("locker-1", Channel.STATUS), encode(status))
            events = await asyncio.wait_for(reader, timeout=20)
    assert refused == [401, 403]
    assert events[0] == ("hello", {})
    kind, body = events[1]
    assert kind == "telemetry"
    assert body == {"vehicle_id": "van-1", "points": [fix.model_dump(mode="json")]}
    kind, body = events[2]
    assert kind == "status"
    assert isinstance(body, dict) and (body["device_id"], body["online"]) == ("locker-1", False)


async def test_the_stream_ends_when_the_hub_stops(
    tmp_path: Path, mqtt_settings: MqttSettings
) -> None:
    settings = hub_settings_for(
        state_dir=tmp_path, mqtt=mqtt_settings, master_secret=MASTER_SECRET, api_keys=KEYS
    )
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as client:
        async with running_hub(settings):
            resp = await client.send(
                client.build_request("GET", "/api/v1/stream", headers=auth(Role.OPS)),
                stream=True,
            )
            lines = resp.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            stopping = loop.time()
        stop_s = loop.time() - stopping
        async with asyncio.timeout(10):
            rest = [line async for line in lines]
        await resp.aclose()
    assert "event: hello" in rest
    # The hub ended the open stream itself: uvicorn would otherwise wait its graceful 5 s for it.
    assert stop_s < 4.5, stop_s
