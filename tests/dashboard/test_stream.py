"""The live stream over real HTTP, as any client (not only the page) would read it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.api.auth_keys import key_digest
from cloud.api.revocation import Credential, revoke
from cloud.api.routes.stream import event_stream as stream_events
from cloud.api.stream_guard import StreamGuard
from cloud.dashboard.live import LiveHub
from cloud.dashboard.rig import hub_settings_for, running_hub
from cloud.db import make_engine, make_session_factory
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import DeviceStatus, Position, TelemetryBatch
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud import plan_rigs
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, mqtt_client
from tests.cloud.token_rigs import JWT_SECRET, PASSWORDS, users

pytestmark = pytest.mark.slow


async def _sse(lines: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The server-sent events of ``lines`` as (event, parsed data), comments skipped."""
    event, data = "message", ""
    async for line in lines.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def _events(lines: httpx.Response, wanted: int) -> list[tuple[str, object]]:
    """Parse server-sent events off ``lines`` until ``wanted`` of them (comments skipped)."""
    out: list[tuple[str, object]] = []
    async for item in _sse(lines):
        out.append(item)
        if len(out) == wanted:
            break
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


async def _until_closed(resp: httpx.Response) -> list[tuple[str, object]]:
    """Every event of ``resp`` up to and including ``closed``, then the stream's end."""
    return [item async for item in _sse(resp)]


async def test_a_key_and_a_token_revoked_through_the_api_close_their_open_streams(
    tmp_path: Path, mqtt_settings: MqttSettings
) -> None:
    settings = hub_settings_for(
        state_dir=tmp_path,
        mqtt=mqtt_settings,
        master_secret=MASTER_SECRET,
        api_keys=KEYS,
        users=users(),
        jwt_secret=JWT_SECRET,
        stream_recheck_s=0.5,
    )
    async with running_hub(settings) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        signed_in = await client.post(
            "/api/v1/auth/token",
            data={"username": "viewer-user", "password": PASSWORDS[Role.VIEWER]},
        )
        token = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        async with (
            client.stream("GET", "/api/v1/stream", headers=token) as by_token,
            client.stream("GET", "/api/v1/stream", headers=auth(Role.VIEWER)) as by_key,
            client.stream("GET", "/api/v1/stream", headers=auth(Role.OPS)) as by_other,
        ):
            streams = (by_token, by_key, by_other)
            readers = [asyncio.create_task(_until_closed(r)) for r in streams]
            await asyncio.sleep(1.0)  # the streams are open and past a re-check
            assert not any(r.done() for r in readers)
            # ops revokes the viewer's token; the viewer revokes its own key (signing out)
            by_ops = await client.post(
                "/api/v1/auth/revoke",
                json={"token": signed_in.json()["access_token"]},
                headers=auth(Role.OPS),
            )
            by_self = await client.post(
                "/api/v1/auth/revoke", json={"token": KEYS[Role.VIEWER]}, headers=auth(Role.VIEWER)
            )
            # Another hub process revokes the ops key: only the database tells this one.
            engine = make_engine(settings.database_url)
            try:
                with make_session_factory(engine)() as session:
                    ops_key = Credential(kind="key", ident=key_digest(KEYS[Role.OPS]))
                    revoke(session, ops_key, by="another hub", now=datetime.now(UTC))
            finally:
                engine.dispose()
            token_events, key_events, other_events = await asyncio.wait_for(
                asyncio.gather(*readers), 20
            )
        after = [
            await client.get("/api/v1/vehicles", headers=token),
            await client.get("/api/v1/stream", headers=auth(Role.VIEWER)),
            await client.get("/api/v1/me", headers=auth(Role.INTEGRATION)),  # others still work
        ]
    assert by_ops.json() == {"revoked": True, "kind": "token", "detail": "bearer token revoked"}
    assert by_self.json() == {"revoked": True, "kind": "key", "detail": "API key revoked"}
    assert token_events[0] == ("hello", {})
    kind, body = token_events[-1]
    assert kind == "closed" and isinstance(body, dict)
    assert body["reason"].startswith("the bearer token was revoked"), body
    kind, body = key_events[-1]
    assert kind == "closed" and isinstance(body, dict)
    assert body["reason"].startswith("the API key was revoked"), body
    kind, body = other_events[-1]  # found at the periodic re-check of the database
    assert kind == "closed" and isinstance(body, dict)
    assert body["reason"].startswith("the API key was revoked at "), body
    assert [r.status_code for r in after] == [401, 401, 200]
    assert after[0].json()["detail"].startswith("this bearer token was revoked at ")
    assert after[0].headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert after[1].json()["detail"].startswith("this API key was revoked at ")


async def test_a_viewer_may_not_revoke_another_callers_key_and_unknown_values_are_no_secret(
    tmp_path: Path, mqtt_settings: MqttSettings
) -> None:
    settings = hub_settings_for(
        state_dir=tmp_path, mqtt=mqtt_settings, master_secret=MASTER_SECRET, api_keys=KEYS
    )
    async with running_hub(settings) as url, httpx.AsyncClient(base_url=url, timeout=20) as client:
        other = await client.post(
            "/api/v1/auth/revoke", json={"token": KEYS[Role.OPS]}, headers=auth(Role.VIEWER)
        )
        unknown = await client.post(
            "/api/v1/auth/revoke", json={"token": "no-such-key"}, headers=auth(Role.VIEWER)
        )
        still = await client.get("/api/v1/me", headers=auth(Role.OPS))
    assert other.status_code == 403
    assert other.json()["detail"] == "role viewer may revoke only the credential it uses itself"
    assert unknown.status_code == 200
    assert unknown.json() == {
        "revoked": False,
        "kind": None,
        "detail": "not an API key of this hub: nothing to revoke",
    }
    assert still.status_code == 200


async def test_a_stream_closes_when_its_token_expires(tmp_path: Path) -> None:
    """Expiry needs no database: the guard knows it from the token and caps its wait by it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'unused.db'}")
    live = LiveHub()
    expires = datetime.now(UTC) + timedelta(seconds=1)
    guard = StreamGuard(
        credential=Credential(kind="token", ident="jti-1", expires_at=expires),
        session_factory=make_session_factory(engine),
        recheck_s=3600,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(10):
            sent = [chunk async for chunk in stream_events(live, guard)]
    finally:
        engine.dispose()
    assert loop.time() - started >= 0.9
    assert sent[0].startswith("retry: 2000\nevent: hello")
    assert sent[-1].startswith("event: closed\ndata: ")
    reason = json.loads(sent[-1].split("data: ", 1)[1])["reason"]
    assert reason == f"the bearer token expired at {expires.isoformat()}; sign in again"


async def _late_alert(lines: httpx.Response, stop_id: str) -> dict[str, Any]:
    """Read the stream until the hub's ``route_late`` alert for ``stop_id`` (other events skipped)."""
    async for event, body in _sse(lines):
        late = event == "vehicle_event" and body["kind"] == "route_late"
        if late and body["evidence"]["stop_id"] == stop_id:
            return dict(body)
    raise AssertionError("the stream ended without the late-stop alert")


async def test_a_stop_predicted_late_is_pushed_to_open_streams_as_an_alert(
    tmp_path: Path, mqtt_settings: MqttSettings
) -> None:
    settings = hub_settings_for(
        state_dir=tmp_path,
        mqtt=mqtt_settings,
        master_secret=MASTER_SECRET,
        api_keys=KEYS,
        late_stop_check_s=0.3,
    )
    # Yesterday's plan: s1's window (until 12:00) has closed undone, late whatever the hour.
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    async with running_hub(settings) as url, httpx.AsyncClient(base_url=url) as client:
        r = await client.post(
            "/api/v1/plans", json=plan_rigs.request(day=day.isoformat()), headers=auth(Role.OPS)
        )
        assert r.status_code == 202, r.text
        done = await plan_rigs.finished(client, r.json()["id"], headers=auth(Role.OPS))
        assert done["status"] == "done", done
        holder = next(
            r["van_id"]
            for r in done["plan"]["routes"]
            if any(v["stop_id"] == "s1" for v in r["visits"])
        )
        r = await client.post(f"/api/v1/plans/{done['id']}/dispatch", headers=auth(Role.OPS))
        assert r.status_code == 202, r.text
        async with client.stream(
            "GET", "/api/v1/stream", headers=auth(Role.VIEWER), timeout=30
        ) as resp:
            reader = asyncio.create_task(_late_alert(resp, "s1"))
            await asyncio.sleep(0.5)  # subscribed; nothing is late for a van the hub never heard
            assert not reader.done()
            # The van reports from the depot that evening: the hub knows it, and s1 is late.
            depot = plan_rigs.PROBLEM["depots"][0]["location"]
            evening = datetime(day.year, day.month, day.day, 23, 50, tzinfo=UTC)
            fix = Position(t=evening, lat=depot[0], lon=depot[1], fix="3d")
            async with mqtt_client(mqtt_settings, "test-late-van") as van:
                batch = TelemetryBatch(vehicle_id=holder, seq=1, points=(fix,))
                await van.publish(vehicle_topic(holder, Channel.TELEMETRY), encode(batch), qos=1)
            alert = await asyncio.wait_for(reader, timeout=30)
        feed = await client.get(
            "/api/v1/events", params={"alerts_only": "true"}, headers=auth(Role.VIEWER)
        )
    assert alert["vehicle_id"] == holder
    assert alert["severity"] == "warning"
    assert alert["evidence"]["plan_id"] == done["id"]
    assert alert["evidence"]["late_by_s"] > 0
    # The same alert the event feed has stored (a page that reloads sees it once, not twice).
    stored = [e for e in feed.json()["data"] if e["kind"] == "route_late"]
    match = [e for e in stored if e["evidence"]["stop_id"] == "s1"]
    assert len(match) == 1, stored
    assert match[0]["device_id"] == holder
    assert match[0]["evidence"] == alert["evidence"]
    assert datetime.fromisoformat(match[0]["at"]) == datetime.fromisoformat(alert["at"])
