"""Stories of the ops dashboard in a real browser, against a real hub, broker and locker."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Route, expect
from sqlalchemy import select

from cloud.db import make_engine, make_session_factory
from cloud.models import Parcel
from cloud.settings import Role
from locker.grants import GrantStore
from protocol.codec import encode
from protocol.codes import derive_locker_key
from protocol.messages import DeviceStatus, LockerEvent, Position, TelemetryBatch
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, eventually, mqtt_client
from tests.dashboard.conftest import (
    COMPARTMENTS,
    LOCKER,
    Stack,
    screenshot,
    sign_in,
    unlabelled_controls,
)
from tests.locker.story import relay_history

pytestmark = pytest.mark.slow


async def publish_fix(
    stack: Stack,
    van: str,
    seq: int,
    lat: float,
    lon: float,
    *,
    age_s: float = 0.0,
    **extra: float,
) -> None:
    """As a van's agent would: one telemetry batch, QoS 1, on the van's own topic."""
    t = datetime.now(UTC) - timedelta(seconds=age_s)
    batch = TelemetryBatch(
        vehicle_id=van,
        seq=seq,
        points=(Position(t=t, lat=lat, lon=lon, fix="3d", **extra),),
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
    for view in ("Map", "Lockers", "Parcels", "Alerts"):
        await page.get_by_role("button", name=view).click()
        assert await unlabelled_controls(page) == [], view
    # The check itself sees a bare field:
    await page.evaluate("document.body.append(document.createElement('input'))")
    assert len(await unlabelled_controls(page)) == 1
    assert ops.errors == []


async def test_a_van_marker_moves_when_the_van_publishes_a_fix(
    stack: Stack, browser: Browser
) -> None:
    page = (await sign_in(browser, stack, Role.VIEWER)).page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    van = page.locator('.van-marker[data-vehicle="van-7"]')
    await publish_fix(stack, "van-7", 1, 52.3650, 4.8900, heading_deg=45.0)
    await expect(van).to_have_attribute("data-lat", "52.365", timeout=10_000)
    locker = page.locator(f'.locker-marker[data-locker="{LOCKER}"]')

    async def offset_from_locker() -> tuple[float, float]:
        # Relative to a fixed marker, so that panning or zooming the map does not count as moving.
        v, lk = await van.bounding_box(), await locker.bounding_box()
        assert v is not None and lk is not None
        return v["x"] - lk["x"], v["y"] - lk["y"]

    before = await offset_from_locker()
    await publish_fix(stack, "van-7", 2, 52.3680, 4.8950, heading_deg=45.0)
    await expect(van).to_have_attribute("data-lat", "52.368", timeout=10_000)
    after = await offset_from_locker()
    # North-east on the screen: right and up, by more than a few pixels.
    assert after[0] - before[0] > 5 and before[1] - after[1] > 5, (before, after)
    arrow = van.locator(".arrow")
    assert "rotate(45deg)" in (await arrow.get_attribute("style") or "")


async def test_a_parcel_created_in_the_page_gives_a_code_that_opens_the_locker(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await page.get_by_role("button", name="Parcels").click()
    await page.get_by_label("Locker", exact=True).fill(LOCKER)
    await page.get_by_role("button", name="Create parcel").click()
    code_box = page.locator("#new-code-value")
    await expect(code_box).to_have_text(re.compile(r"^\d{8}$"))
    code = await code_box.inner_text()
    compartment = int((await page.locator("#new-code-compartment").inner_text()).split("#")[1])
    await screenshot(page, "parcels-new-code")
    await page.get_by_role("button", name="I have passed it on, hide it").click()
    await expect(page.locator("#new-code")).to_be_hidden()
    row = page.locator("#parcel-table tbody tr").first
    await expect(row).to_contain_text("awaiting pickup")

    # The hub sent the locker a grant (only the code's hash); wait until the locker stored it.
    engine = make_engine(stack.settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            parcel = session.scalars(select(Parcel)).one()
    finally:
        engine.dispose()
    key = derive_locker_key(MASTER_SECRET.encode(), LOCKER)

    def locker_has_grant() -> bool:
        with GrantStore(stack.locker_dir / f"{LOCKER}-grants.db", locker_key=key) as store:
            return store.get(parcel.grant_id) is not None

    await eventually(locker_has_grant, timeout=15, what="the grant at the locker")
    stack.keypad.press(code + "#")
    await eventually(
        lambda: True in relay_history(stack.factory, compartment),
        timeout=15,
        what=f"compartment {compartment}'s lock released",
    )
    assert all(
        relay_history(stack.factory, n) == [False]
        for n in range(1, COMPARTMENTS + 1)
        if n != compartment
    )
    # The simulated person takes the parcel and shuts the door; the page follows by itself.
    await expect(row).to_contain_text("picked up", timeout=20_000)
    await row.get_by_role("button", name=re.compile("History of parcel")).click()
    history = page.locator("tr.history li")
    await expect(history).to_have_text(
        [
            re.compile("created at the hub$"),
            re.compile("code accepted$"),
            re.compile("unlocked$"),
            re.compile("door opened$"),
            re.compile("door closed$"),
            re.compile("picked up$"),
        ]
    )
    await screenshot(page, "parcels")
    assert ops.errors == []


async def test_a_viewer_is_offered_neither_remote_open_nor_parcel_creation(
    stack: Stack, browser: Browser
) -> None:
    viewer = await sign_in(browser, stack, Role.VIEWER)
    page = viewer.page
    await page.get_by_role("button", name="Lockers").click()
    await page.locator(f'button[data-locker="{LOCKER}"]').click()
    cells = page.locator("ul.grid li.cell")
    await expect(cells).to_have_count(COMPARTMENTS)
    await expect(page.locator(".open-button")).to_have_count(0)
    await expect(
        page.get_by_role("img", name=f"Occupancy: {LOCKER} 0 of {COMPARTMENTS}")
    ).to_be_visible()
    await screenshot(page, "lockers-viewer")
    await page.get_by_role("button", name="Parcels").click()
    await expect(page.locator("#parcel-table")).to_be_visible()
    await expect(page.locator("#create-parcel")).to_be_hidden()
    assert viewer.errors == []


async def test_ops_may_ask_for_a_remote_open_and_is_told_what_the_hub_answered(
    stack: Stack, browser: Browser
) -> None:
    page = (await sign_in(browser, stack, Role.OPS)).page
    await page.get_by_role("button", name="Lockers").click()
    await page.locator(f'button[data-locker="{LOCKER}"]').click()
    await expect(page.locator(".open-button")).to_have_count(COMPARTMENTS)
    await screenshot(page, "lockers-ops")
    await page.get_by_role("button", name=f"Open compartment 2 of {LOCKER}").click()
    dialog = page.locator("#confirm-open")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("compartment 2")
    await page.get_by_role("button", name="Open it").click()
    # Whatever the hub says to this request, the page must say the same thing.
    answer = await stack.api.post(
        f"/api/v1/lockers/{LOCKER}/compartments/2/open", json={}, headers=auth(Role.OPS)
    )
    result = page.locator("#open-result")
    if answer.status_code >= 400:
        await expect(result).to_contain_text(f"The hub refused ({answer.status_code}")
    else:
        await expect(result).to_contain_text("sent the open command")


async def test_a_locker_alarm_reaches_the_alerts_feed_live(stack: Stack, browser: Browser) -> None:
    page = (await sign_in(browser, stack, Role.VIEWER)).page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    event = LockerEvent(
        locker_id="locker-9", seq=1, kind="door_forced", at=datetime.now(UTC), compartment=3
    )
    async with mqtt_client(stack.mqtt, "test-locker-9") as client:
        await client.publish(locker_topic("locker-9", Channel.EVENTS), encode(event), qos=1)
    badge = page.locator("#alert-badge")
    await expect(badge).to_have_text("1", timeout=10_000)
    await page.get_by_role("button", name="Alerts").click()
    item = page.locator('#alert-feed li[data-kind="door_forced"]').first
    await expect(item).to_contain_text("locker locker-9 #3")
    await expect(item).to_have_class(re.compile("critical"))
    await expect(badge).to_be_hidden()
    await screenshot(page, "alerts")
    # Reloaded from the hub (not only from the stream) after a page reload, too.
    await page.reload()
    await page.get_by_role("button", name="Alerts").click()
    await expect(page.locator('#alert-feed li[data-kind="door_forced"]')).to_have_count(1)


async def test_a_wrong_key_is_refused_at_sign_in(stack: Stack, browser: Browser) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(stack.url + "/")
    await page.get_by_label("API key").fill("not-a-key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#sign-in-error")).to_have_text("The hub does not know this key.")
    await expect(page.locator("#views")).to_be_hidden()
    assert await page.evaluate("sessionStorage.length") == 0


async def test_an_integration_key_works_the_parcels_page_by_keyboard_alone(
    stack: Stack, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 768, "height": 1024})
    page = await context.new_page()
    await page.goto(stack.url + "/")
    # The key field has the focus on arrival; Enter signs in.
    await page.keyboard.type(KEYS[Role.INTEGRATION])
    await page.keyboard.press("Enter")
    await expect(page.locator("#role")).to_have_text("Signed in as integration")
    # It may not read the fleet: only the parcels view is offered, and shown.
    visible = page.locator("#views button:visible")
    await expect(visible).to_have_text(["Parcels"])
    await expect(page.locator("#view-parcels")).to_be_visible()
    await page.get_by_label("Locker", exact=True).focus()
    await page.keyboard.type(LOCKER)
    await page.keyboard.press("Tab")  # the compartment, left empty
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Create parcel")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#new-code-value")).to_have_text(re.compile(r"^\d{8}$"))
    # The code panel takes the focus, so a keyboard user can dismiss it at once.
    await expect(page.get_by_role("button", name="I have passed it on, hide it")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#new-code")).to_be_hidden()
    await screenshot(page, "parcels-integration-portrait")


async def test_the_map_fits_a_tablet_held_upright(stack: Stack, browser: Browser) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await page.set_viewport_size({"width": 768, "height": 1024})
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await publish_fix(stack, "van-2", 1, 52.3712, 4.8990, speed_mps=3.0, heading_deg=200.0)
    await expect(page.locator('.van-marker[data-vehicle="van-2"]')).to_be_visible(timeout=10_000)
    map_box = await page.locator("#map").bounding_box()
    table_box = await page.locator("#van-table").bounding_box()
    assert map_box is not None and table_box is not None
    assert map_box["width"] > 700  # the side panel moved under the map
    assert table_box["y"] >= map_box["y"] + map_box["height"]
    assert await page.evaluate("document.documentElement.scrollWidth") <= 768
    await screenshot(page, "map-portrait")
    assert ops.errors == []


async def test_a_van_whose_last_fix_is_old_is_shown_stale(stack: Stack, browser: Browser) -> None:
    page = (await sign_in(browser, stack, Role.VIEWER)).page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await publish_fix(stack, "van-3", 1, 52.3702, 4.8952, age_s=180)
    van = page.locator('.van-marker[data-vehicle="van-3"]')
    await expect(van).to_have_class(re.compile(r"\bstale\b"), timeout=10_000)
    await expect(van).to_have_attribute("aria-label", re.compile("Van van-3, stale"))
    await expect(page.locator('#van-table tr[data-vehicle="van-3"] td.stale-text')).to_have_text(
        "3 min ago"
    )
    await publish_fix(stack, "van-3", 2, 52.3703, 4.8952)
    await expect(van).not_to_have_class(re.compile(r"\bstale\b"), timeout=10_000)


TILE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f0005000201a5e0f5e50000000049454e44ae426082"
)


@pytest.mark.parametrize(
    "hub_overrides",
    [{"map_tile_url": "http://tiles.test/{z}/{x}/{y}.png", "map_tile_attribution": "Test tiles"}],
)
async def test_with_a_tile_url_set_the_map_draws_tiles_from_it(
    stack: Stack, browser: Browser
) -> None:
    context = await browser.new_context(viewport={"width": 1024, "height": 768})
    asked: list[str] = []

    async def serve_tile(route: Route) -> None:  # no internet here: answer as the tile server
        asked.append(route.request.url)
        await route.fulfill(status=200, content_type="image/png", body=TILE_PNG)

    await context.route("http://tiles.test/**", serve_tile)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(stack.url + "/")
    await page.get_by_label("API key").fill(KEYS[Role.VIEWER])
    await page.keyboard.press("Enter")
    await expect(page.locator("img.leaflet-tile-loaded").first).to_be_attached(timeout=15_000)
    assert asked and all(re.fullmatch(r"http://tiles\.test/\d+/\d+/\d+\.png", u) for u in asked)
    assert "no-tiles" not in (await page.locator("#map").get_attribute("class") or "")
    await expect(page.locator(".leaflet-control-attribution")).to_contain_text("Test tiles")
    assert errors == []  # the page's Content-Security-Policy lets the tile host through


async def test_a_van_going_offline_is_an_alert_live_and_after_a_reload(
    stack: Stack, browser: Browser
) -> None:
    page = (await sign_in(browser, stack, Role.VIEWER)).page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await publish_fix(stack, "van-5", 1, 52.3702, 4.8952)
    gone = DeviceStatus(device_id="van-5", kind="vehicle", online=False)
    async with mqtt_client(stack.mqtt, "test-van-5-will") as client:
        await client.publish(vehicle_topic("van-5", Channel.STATUS), encode(gone), qos=1)
    await expect(page.locator('#van-table tr[data-vehicle="van-5"]')).to_contain_text("offline")
    await expect(page.locator('.van-marker[data-vehicle="van-5"]')).to_have_class(
        re.compile(r"\boffline\b")
    )
    await page.get_by_role("button", name="Alerts").click()
    offline = page.locator('#alert-feed li[data-kind="offline"][data-device="van-5"]')
    await expect(offline).to_have_count(1)
    await page.reload()
    await page.get_by_role("button", name="Alerts").click()
    await expect(offline).to_have_count(1, timeout=10_000)
