"""The hub side of the dashboard without a browser: the page route, the read routes the page uses,
and the live fan-out."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dashboard.live import LiveFeed, LiveHub, LiveUpdate
from cloud.dashboard.pages import STATIC_DIR, MapConfig, mount_dashboard
from cloud.models import Locker, LockerEventRow, Parcel, ParcelStatus, Vehicle, VehicleEventRow
from cloud.settings import Role
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import LockerEvent
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import auth, hub_settings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def test_the_page_says_how_to_build_its_files_when_they_are_missing(tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static, ignore=shutil.ignore_patterns("vendor"))
    app = FastAPI()
    mount_dashboard(app, map_config=MapConfig(), static_dir=static)

    async def story() -> httpx.Response:
        async with _client(app) as client:
            return await client.get("/")

    r = asyncio.run(story())
    assert r.status_code == 503
    assert "scripts/build-dashboard" in r.text
    assert "vendor/leaflet/leaflet.js" in r.text


def test_the_page_carries_the_map_settings_escaped(database_url: str, session_factory) -> None:  # type: ignore[no-untyped-def]
    settings = hub_settings(
        database_url=database_url,
        map_tile_url='https://tiles.test/{z}/{x}/{y}.png?a="><script>',
        map_locker_sites={"locker-1": (52.1, 4.2)},
    )
    app = create_app(settings=settings, session_factory=session_factory)

    async def story() -> tuple[httpx.Response, httpx.Response]:
        async with _client(app) as client:
            return await client.get("/"), await client.get("/dashboard/js/main.js")

    page, script = asyncio.run(story())
    assert page.status_code == 200, page.text
    assert "<script>" not in page.text.split('name="lastmile-config"')[1].split(">")[0]
    assert "&quot;tileUrl&quot;: &quot;https://tiles.test/{z}/{x}/{y}.png" in page.text
    assert "&quot;locker-1&quot;: [52.1, 4.2]" in page.text
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")


def test_a_tile_url_without_its_placeholders_or_a_site_off_the_globe_is_refused(
    database_url: str,
) -> None:
    with pytest.raises(ValidationError, match="map_tile_url"):
        hub_settings(database_url=database_url, map_tile_url="https://tiles.test/tile.png")
    with pytest.raises(ValidationError, match="map_locker_sites"):
        hub_settings(database_url=database_url, map_locker_sites={"locker-1": (95.0, 4.0)})


@pytest.fixture
def seeded(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
        session.add(Locker(id="locker-1", compartments=4, online=True, version=""))
        session.flush()
        rows = [
            ("door_opened", 1, 0),
            ("door_closed", 1, 1),
            ("door_opened", 2, 2),
            ("door_left_open", 2, 3),
            ("unlock_not_opened", 3, 4),
            ("door_closed", 3, 5),
        ]
        for seq, (kind, n, minutes) in enumerate(rows, start=1):
            session.add(
                LockerEventRow(
                    locker_id="locker-1",
                    seq=seq,
                    kind=kind,
                    at=T0 + timedelta(minutes=minutes),
                    compartment=n,
                    reason="",
                    message_id=uuid.uuid4(),
                )
            )
        session.add(
            VehicleEventRow(
                vehicle_id="van-1",
                seq=1,
                kind="overspeed",
                at=T0 + timedelta(minutes=10),
                lat=52.0,
                lon=4.0,
                evidence={"speed_kmh": 71},
                message_id=uuid.uuid4(),
            )
        )
    return session_factory


def _deposit(factory: sessionmaker[Session], parcel_id: uuid.UUID, *, compartment: int) -> None:
    """As the courier's deposit would leave it (that flow has its own end-to-end tests)."""
    with factory() as session, session.begin():
        parcel = session.get(Parcel, parcel_id)
        assert parcel is not None
        parcel.status = ParcelStatus.DEPOSITED
        parcel.compartment = compartment


def test_the_grid_the_feed_and_the_search_read_what_the_hub_stored(
    seeded: sessionmaker[Session], database_url: str
) -> None:
    app = create_app(settings=hub_settings(database_url=database_url), session_factory=seeded)
    viewer = auth(Role.VIEWER)

    async def story() -> dict[str, httpx.Response]:
        async with _client(app) as client:
            made = await client.post(
                "/api/v1/parcels", json={"locker_id": "locker-1", "reference": "R-7"},
                headers=auth(Role.OPS),
            )  # fmt: skip
            assert made.status_code == 201, made.text
            parcel_id = made.json()["id"]
            _deposit(seeded, uuid.UUID(parcel_id), compartment=4)
            return {
                "grid": await client.get("/api/v1/lockers/locker-1/compartments", headers=viewer),
                "no grid": await client.get("/api/v1/lockers/nope/compartments", headers=viewer),
                "all": await client.get("/api/v1/events", headers=viewer),
                "alerts": await client.get("/api/v1/events?alerts_only=true", headers=viewer),
                "later": await client.get(
                    "/api/v1/events", params={"since": "2026-03-02T08:04:00Z"}, headers=viewer
                ),
                "one compartment": await client.get(
                    "/api/v1/events",
                    params={
                        "device_id": "locker-1",
                        "compartment": 2,
                        "until": "2026-03-02T08:03:00Z",
                    },
                    headers=viewer,
                ),
                "backwards": await client.get(
                    "/api/v1/events",
                    params={"since": "2026-03-02T08:03:00Z", "until": "2026-03-02T08:02:00Z"},
                    headers=viewer,
                ),
                "by locker": await client.get("/api/v1/parcels?q=LOCKER-", headers=viewer),
                "by reference": await client.get("/api/v1/parcels?q=r-7", headers=viewer),
                "bad search": await client.get("/api/v1/parcels?q=a%20b", headers=viewer),
                "in the locker": await client.get(
                    "/api/v1/parcels?status=deposited", headers=viewer
                ),
                "by id": await client.get(f"/api/v1/parcels?q={parcel_id}", headers=viewer),
                "other id": await client.get(f"/api/v1/parcels?q={uuid.uuid4()}", headers=viewer),
                "picked": await client.get("/api/v1/parcels?status=picked_up", headers=viewer),
                "me": await client.get("/api/v1/me", headers=viewer),
                "parcel_id": httpx.Response(200, text=parcel_id),
            }

    r = asyncio.run(story())
    grid = {c["number"]: c for c in r["grid"].json()["data"]}
    assert [(grid[n]["door"], grid[n]["alarm"], grid[n]["occupied"]) for n in (1, 2, 3, 4)] == [
        ("closed", None, False),
        ("open", "door_left_open", False),
        ("closed", None, False),  # the door shut after the alarm: cleared
        ("unknown", None, True),
    ]
    assert grid[4]["parcel_id"] == r["parcel_id"].text
    assert r["no grid"].status_code == 404
    feed = r["all"].json()["data"]
    assert [e["kind"] for e in feed[:2]] == ["overspeed", "door_closed"]
    assert feed[0]["severity"] == "warning" and feed[0]["evidence"] == {"speed_kmh": 71}
    assert [e["kind"] for e in r["alerts"].json()["data"]] == [
        "overspeed",
        "unlock_not_opened",
        "door_left_open",
    ]
    assert [e["kind"] for e in r["later"].json()["data"]] == [
        "overspeed",
        "door_closed",
        "unlock_not_opened",
    ]
    assert [e["kind"] for e in r["one compartment"].json()["data"]] == ["door_opened"]
    assert r["backwards"].status_code == 422
    assert r["by locker"].json()["count"] == 1
    assert r["by reference"].json()["data"][0]["reference"] == "R-7"
    assert r["bad search"].status_code == 422
    assert r["in the locker"].json()["data"][0]["compartment"] == 4
    assert "tracking_token" not in r["by id"].json()["data"][0]
    assert r["by id"].json()["data"][0]["id"] == r["parcel_id"].text
    assert "code" not in r["by id"].json()["data"][0]
    assert r["other id"].json()["count"] == 0
    assert r["picked"].json()["count"] == 0
    assert r["me"].json() == {"role": "viewer", "permissions": ["read fleet", "read parcels"]}


def test_a_slow_page_loses_its_oldest_updates_not_the_feed() -> None:
    async def story() -> tuple[list[int], int]:
        hub = LiveHub(queue_size=3)
        got: list[int] = []
        with hub.subscribe() as sub:
            for i in range(6):
                hub.publish(LiveUpdate("status", {"i": i}))
            hub.close()
            while (update := await sub.next()) is not None:
                got.append(update.data["i"])
        return got, hub.dropped

    got, dropped = asyncio.run(story())
    assert got == [3, 4, 5]
    assert dropped == 3


def test_the_live_feed_counts_and_skips_what_it_cannot_read() -> None:
    async def story() -> tuple[LiveFeed, list[LiveUpdate]]:
        feed = LiveFeed(settings=MqttSettings(port=1), client_id="t", hub=LiveHub())
        with feed.hub.subscribe() as sub:
            good = LockerEvent(locker_id="locker-1", seq=1, kind="door_forced", at=T0)
            results = [
                feed.handle(locker_topic("locker-1", Channel.EVENTS), encode(good)),
                feed.handle(locker_topic("locker-1", Channel.EVENTS), b"{not json"),
                feed.handle(vehicle_topic("van-1", Channel.TELEMETRY), encode(good)),
                feed.handle("elsewhere/x/y", b"{}"),
                feed.handle(locker_topic("locker-1", Channel.GRANTS), encode(good)),
            ]
            assert results[1:] == [None, None, None, None]
            first = await sub.next()
            assert first is not None
            return feed, [first]

    feed, updates = asyncio.run(story())
    assert (feed.received, feed.rejected) == (1, 4)
    assert updates[0].kind == "locker_event"
    assert updates[0].data["severity"] == "critical"
    assert updates[0].data["locker_id"] == "locker-1"
