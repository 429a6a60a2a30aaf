"""A stop predicted late reaches an open page as it happens: the hub's late-stop watcher pushes
its alert into the live stream, and the alerts feed says which van, which stop, how late."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from cloud.settings import Role
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, mqtt_client
from tests.dashboard.conftest import Stack, screenshot, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture
def hub_overrides() -> dict[str, Any]:
    return {"late_stop_check_s": 0.3}


async def test_a_stop_predicted_late_shows_in_the_alerts_feed_without_a_reload(
    stack: Stack, browser: Browser
) -> None:
    # Yesterday's plan: s1's window (until 12:00) has closed undone, late whatever the hour.
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    r = await stack.api.post(
        "/api/v1/plans", json=plan_rigs.request(day=day.isoformat()), headers=auth(Role.OPS)
    )
    assert r.status_code == 202, r.text
    done = await plan_rigs.finished(stack.api, r.json()["id"], headers=auth(Role.OPS))
    assert done["status"] == "done", done
    holder = next(
        r["van_id"]
        for r in done["plan"]["routes"]
        if any(v["stop_id"] == "s1" for v in r["visits"])
    )
    r = await stack.api.post(f"/api/v1/plans/{done['id']}/dispatch", headers=auth(Role.OPS))
    assert r.status_code == 202, r.text

    viewer = await sign_in(browser, stack, Role.VIEWER)
    page = viewer.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    late = page.locator('#alert-feed li[data-kind="route_late"]')
    await expect(late).to_have_count(0)  # the hub has not heard of the van yet: no alert

    # The van reports from the depot that evening: the watcher finds s1 late and pushes it.
    depot = plan_rigs.PROBLEM["depots"][0]["location"]
    evening = datetime(day.year, day.month, day.day, 23, 50, tzinfo=UTC)
    batch = TelemetryBatch(
        vehicle_id=holder,
        seq=1,
        points=(Position(t=evening, lat=depot[0], lon=depot[1], fix="3d"),),
    )
    async with mqtt_client(stack.mqtt, f"test-{uuid.uuid4().hex[:6]}") as client:
        await client.publish(vehicle_topic(holder, Channel.TELEMETRY), encode(batch), qos=1)

    s1 = late.filter(has_text="stop s1")
    await expect(s1).to_have_count(1, timeout=30_000)
    await expect(s1).to_contain_text(f"vehicle {holder}")
    await expect(s1).to_contain_text(re.compile(r"stop predicted late: stop s1, \d+ min late"))
    await expect(s1).to_have_class(re.compile(r"\bwarning\b"))
    await expect(page.locator("#alert-badge")).to_be_visible()
    stored = (
        await stack.api.get(
            "/api/v1/events", params={"alerts_only": "true"}, headers=auth(Role.VIEWER)
        )
    ).json()["data"]
    late_by_s = next(
        e["evidence"]["late_by_s"]
        for e in stored
        if e["kind"] == "route_late" and e["evidence"]["stop_id"] == "s1"
    )
    await expect(s1).to_contain_text(f"{max(1, round(late_by_s / 60))} min late")
    await page.get_by_role("button", name="Alerts").click()
    await screenshot(page, "alerts-late-stop")
    # Reloaded, the page reads the same alert from /events: once, worded alike.
    await page.reload()
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await expect(s1).to_have_count(1)
    await expect(s1).to_contain_text("stop predicted late: stop s1")
    assert viewer.errors == []
