"""Stories of the ops dashboard in a real browser, against a real hub, broker and locker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from cloud.db import make_engine, make_session_factory
from cloud.models import Parcel
from cloud.settings import Role
from locker.grants import GrantStore
from protocol.codec import encode
from protocol.codes import derive_locker_key
from protocol.messages import LockerEvent, Position, TelemetryBatch
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import MASTER_SECRET, auth, eventually, mqtt_client
from tests.dashboard.conftest import COMPARTMENTS, LOCKER, Stack, screenshot, sign_in
from tests.locker.story import relay_history

pytestmark = pytest.mark.slow


async def publish_fix(stack: Stack, van: str, seq: int, lat: float, lon: float, **extra: float) -> None:
    """As a van's agent would: one telemetry batch, QoS 1, on the van's own topic."""
    batch = TelemetryBatch(
        vehicle_id=van,
        seq=seq,
        points=(Position(t=datetime.now(UTC), lat=lat, lon=lon, fix="3d", **extra),),
    )
    async with mqtt_client(stack.mqtt, f"test-{van}-{uuid.uuid4().hex[:6]}") as client:
        await client.publish(vehicle_topic(van, Channel.TELEMETRY), encode(batch), qos=1)


async def test_the_map_loads_without_console_errors_and_shows_vans_and_lockers(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await publish_fix(stack, "van-1", 1, 52.3702, 4.8952, speed_mps=8.0, heading_deg=90.0)
    van = page.locator('.van-marker[data-vehicle="van-1"]')
    await expect(van).to_have_attribute("data-lat", "52.3702", timeout=10_000)
    await expect(page.locator('.locker-marker[data-locker="locker-1"]')).to_contain_text(
        f"0/{COMPARTMENTS}"
    )
    row = page.locator('#van-table tr[data-vehicle="van-1"]')
    await expect(row).to_contain_text("29 km/h")
    await expect(row).to_contain_text("90° E")
    assert "no-tiles" in (await page.locator("#map").get_attribute("class") or "")
    await screenshot(page, "map")
    assert ops.errors == []
