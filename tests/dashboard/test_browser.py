"""Stories of the ops dashboard in a real browser, against a real hub, broker and locker."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, Page, Route, expect

from cloud.settings import Role
from locker.grants import GrantStore
from protocol.codec import encode
from protocol.codes import derive_locker_key
from protocol.messages import DeviceStatus, LockerEvent, Position, TelemetryBatch
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, eventually, mqtt_client
from tests.cloud.token_rigs import PASSWORDS
from tests.dashboard.conftest import (
    COMPARTMENTS,
    LOCKER,
    TABLET,
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


async def _shown_code(page: Page, kind: str) -> tuple[str, int]:
    """The code the page shows once, and its compartment; then dismissed (and gone from the page)."""
    await expect(page.locator("#new-code-kind")).to_have_text(kind)
    code_box = page.locator("#new-code-value")
    await expect(code_box).to_have_text(re.compile(r"^\d{8}$"))
    code = await code_box.inner_text()
    compartment = int((await page.locator("#new-code-compartment").inner_text()).split("#")[1])
    await page.get_by_role("button", name="I have passed it on, hide it").click()
    await expect(page.locator("#new-code")).to_be_hidden()
    assert code not in await page.content()
    stored = await page.evaluate("JSON.stringify([{ ...sessionStorage }, { ...localStorage }])")
    assert code not in stored
    return code, compartment


async def _grant_at_locker(stack: Stack, parcel_id: str, kind: str) -> None:
    """Until the locker stored the parcel's active ``kind`` grant (the hub sent only a hash)."""
    codes = await stack.api.get(f"/api/v1/parcels/{parcel_id}/codes", headers=auth(Role.OPS))
    active = [g for g in codes.json()["data"] if g["kind"] == kind and g["state"] == "active"]
    assert len(active) == 1, codes.json()
    key = derive_locker_key(MASTER_SECRET.encode(), LOCKER)

    def stored() -> bool:
        with GrantStore(stack.locker_dir / f"{LOCKER}-grants.db", locker_key=key) as store:
            return store.get(uuid.UUID(active[0]["grant_id"])) is not None

    await eventually(stored, timeout=15, what=f"the {kind} grant at the locker")


def _released(stack: Stack, compartment: int) -> int:
    """How many times ``compartment``'s relay was energised."""
    return relay_history(stack.factory, compartment).count(True)


async def test_a_parcel_created_in_the_page_gets_codes_that_open_the_locker(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await page.get_by_role("button", name="Parcels").click()
    await page.get_by_label("Reference").fill("R-42")
    await page.get_by_label("Locker", exact=True).fill(LOCKER)
    await page.get_by_role("button", name="Create parcel").click()
    # The customer's tracking link, shown once, and it works:
    link = page.locator("#new-tracking-link")
    await expect(link).to_have_text(re.compile(re.escape(stack.url) + r"/track/[\w-]+$"))
    tracked = await stack.api.get(await link.inner_text() + "/json")
    assert tracked.status_code == 200, tracked.text
    await page.get_by_role("button", name="I have passed the link on, hide it").click()
    await expect(page.locator("#new-tracking")).to_be_hidden()

    row = page.locator("#parcel-table tbody tr").first
    await expect(row).to_contain_text("R-42")
    await expect(row.locator(".status")).to_have_text("created")
    parcel_id = await row.get_attribute("data-parcel")
    assert parcel_id is not None
    short = parcel_id[:8]
    await page.get_by_role("button", name=f"Move to depot, parcel {short}").click()
    await expect(row.locator(".status")).to_have_text("at depot")
    await page.get_by_role("button", name=f"Out for delivery, parcel {short}").click()
    await expect(row.locator(".status")).to_have_text("out for delivery")
    await screenshot(page, "parcels-actions")
    await page.get_by_role("button", name=f"Issue courier code, parcel {short}").click()
    await screenshot(page, "parcels-new-code")
    courier, compartment = await _shown_code(page, "Courier")

    # The courier types it at the simulated locker: that compartment, and only it, is released.
    await _grant_at_locker(stack, parcel_id, "courier")
    stack.keypad.press(courier + "#")
    await eventually(
        lambda: _released(stack, compartment) == 1,
        timeout=15,
        what=f"compartment {compartment}'s lock released",
    )
    others = [n for n in range(1, COMPARTMENTS + 1) if n != compartment]
    assert all(_released(stack, n) == 0 for n in others)
    # The simulated courier puts the parcel in and shuts the door: deposited, the page follows.
    await expect(row.locator(".status")).to_have_text("in the locker", timeout=20_000)

    # The customer lost the pickup code: ops resends it (a new code; the old one is revoked).
    await page.get_by_role("button", name=f"Resend pickup code, parcel {short}").click()
    pickup, again = await _shown_code(page, "Pickup")
    assert again == compartment and pickup != courier
    await _grant_at_locker(stack, parcel_id, "pickup")
    stack.keypad.press(pickup + "#")
    await eventually(
        lambda: _released(stack, compartment) == 2,
        timeout=15,
        what=f"compartment {compartment}'s lock released for the pickup",
    )
    assert all(_released(stack, n) == 0 for n in others)
    await expect(row.locator(".status")).to_have_text("picked up", timeout=20_000)
    await expect(row.locator(".action-button")).to_have_count(0)
    await row.get_by_role("button", name=f"History of parcel {short}").click()
    history = page.locator(f'tr.history[data-history-of="{parcel_id}"] li')
    await expect(history.last).to_have_attribute("data-kind", "picked_up")
    kinds = await history.evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds[:5] == [
        "created",
        "at_depot",
        "out_for_delivery",
        "courier_code_issued",
        "deposited",
    ], kinds
    assert kinds.count("pickup_code_issued") == 2 and kinds[-1] == "picked_up", kinds
    # The table is re-read (search, live events, a timer): an open history stays open.
    await page.get_by_role("button", name="Search", exact=True).click()
    await expect(history).to_have_count(len(kinds))
    await expect(row.get_by_role("button", name=f"History of parcel {short}")).to_have_attribute(
        "aria-expanded", "true"
    )
    await screenshot(page, "parcels")
    assert ops.errors == []


async def test_a_home_parcel_is_created_with_its_position_and_window(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await page.get_by_role("button", name="Parcels").click()
    await page.get_by_label("a home address").check()
    await expect(page.get_by_label("Locker", exact=True)).to_be_hidden()
    await page.get_by_label("Reference").fill("HOME-1")
    await page.get_by_label("Size").select_option("L")
    await page.get_by_label("Address", exact=True).fill("Prinsengracht 263, Amsterdam")
    await page.get_by_label("Latitude").fill("52.3752")
    await page.get_by_label("Longitude").fill("4.8840")
    await page.get_by_label("Window from").fill("2026-12-02T09:00")
    await page.get_by_label("Window until").fill("2026-12-02T11:00")
    await page.get_by_role("button", name="Create parcel").click()
    await expect(page.locator("#new-tracking-link")).to_contain_text("/track/")
    row = page.locator("#parcel-table tbody tr").first
    await expect(row).to_contain_text("Prinsengracht 263, Amsterdam")
    await expect(row.locator(".status")).to_have_text("created")
    found = await stack.api.get("/api/v1/parcels?q=HOME-1", headers=auth(Role.VIEWER))
    parcel = found.json()["data"][0]
    # The window was typed in the tablet's own time zone; the hub gets instants.
    start, end = await page.evaluate(
        "[new Date('2026-12-02T09:00').toISOString(), new Date('2026-12-02T11:00').toISOString()]"
    )
    assert (parcel["locker_id"], parcel["size"], parcel["lat"], parcel["lon"]) == (
        None,
        "L",
        52.3752,
        4.884,
    )
    assert datetime.fromisoformat(parcel["window_start"]) == datetime.fromisoformat(start)
    assert datetime.fromisoformat(parcel["window_end"]) == datetime.fromisoformat(end)
    # A window that ends before it starts is the hub's to refuse; the page says why.
    await page.get_by_label("Reference").fill("HOME-2")
    await page.get_by_label("Window until").fill("2026-12-02T08:00")
    await page.get_by_role("button", name="Create parcel").click()
    await expect(page.locator("#create-error")).to_contain_text("The hub refused (422")
    await expect(page.locator("#create-error")).to_contain_text("window_end must be after")


async def test_ops_revokes_a_parcels_codes_in_the_page(stack: Stack, browser: Browser) -> None:
    made = await stack.api.post(
        "/api/v1/parcels", json={"locker_id": LOCKER}, headers=auth(Role.OPS)
    )
    parcel_id = made.json()["id"]
    for to in ("at_depot", "out_for_delivery"):
        moved = await stack.api.post(
            f"/api/v1/parcels/{parcel_id}/transitions", json={"to": to}, headers=auth(Role.OPS)
        )
        assert moved.status_code == 200, moved.text
    issued = await stack.api.post(
        f"/api/v1/parcels/{parcel_id}/codes", json={"kind": "courier"}, headers=auth(Role.OPS)
    )
    assert issued.status_code == 201, issued.text
    page = (await sign_in(browser, stack, Role.OPS)).page
    await page.get_by_role("button", name="Parcels").click()
    await page.get_by_role("button", name=f"Revoke codes, parcel {parcel_id[:8]}").click()
    await expect(page.locator("#parcel-result")).to_have_text(
        f"Parcel {parcel_id[:8]}: 1 code revoked."
    )
    codes = await stack.api.get(f"/api/v1/parcels/{parcel_id}/codes", headers=auth(Role.OPS))
    assert [g["state"] for g in codes.json()["data"]] == ["revoked"]


async def test_a_viewer_is_offered_no_remote_open_and_no_parcel_action(
    stack: Stack, browser: Browser
) -> None:
    made = await stack.api.post(
        "/api/v1/parcels", json={"locker_id": LOCKER}, headers=auth(Role.OPS)
    )
    assert made.status_code == 201, made.text
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
    row = page.locator(f'#parcel-table tr[data-parcel="{made.json()["id"]}"]')
    await expect(row.locator(".status")).to_have_text("created")
    await expect(row.get_by_role("button", name=re.compile("History of parcel"))).to_be_visible()
    await expect(page.locator(".action-button")).to_have_count(0)
    await expect(page.locator("#create-parcel")).to_be_hidden()
    assert viewer.errors == []


async def test_ops_remote_open_energises_the_relay_and_shows_the_lockers_answer(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS)
    page = ops.page
    await page.get_by_role("button", name="Lockers").click()
    await page.locator(f'button[data-locker="{LOCKER}"]').click()
    await expect(page.locator(".open-button")).to_have_count(COMPARTMENTS)
    await screenshot(page, "lockers-ops")
    await page.get_by_role("button", name=f"Open compartment 2 of {LOCKER}").click()
    dialog = page.locator("#confirm-open")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("compartment 2")
    await page.get_by_role("button", name="Open it").click()
    result = page.locator("#open-result")
    # "sent" first (the hub's 202), then the locker's acknowledgement through the broker.
    await expect(result).to_contain_text(re.compile("^(Sent|Opened)"))
    await expect(result).to_have_attribute("data-state", "executed", timeout=25_000)
    await expect(result).to_contain_text(f"Opened: {LOCKER} #2 confirmed at")
    assert _released(stack, 2) >= 1
    assert all(_released(stack, n) == 0 for n in range(1, COMPARTMENTS + 1) if n != 2)
    command_id = await result.get_attribute("data-command")
    ack = await stack.api.get(
        f"/api/v1/lockers/{LOCKER}/commands/{command_id}", headers=auth(Role.VIEWER)
    )
    assert ack.json()["status"] == "executed", ack.text
    await screenshot(page, "lockers-remote-open")
    assert ops.errors == []


async def test_a_user_signs_in_with_a_password_and_works_with_a_jwt(
    stack: Stack, browser: Browser
) -> None:
    ops = await sign_in(browser, stack, Role.OPS, password=PASSWORDS[Role.OPS])
    page = ops.page
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    token = await page.evaluate("sessionStorage.getItem('lastmile.token')")
    assert token.count(".") == 2 and token not in KEYS.values()  # a JWT, not a key
    await page.get_by_role("button", name="Parcels").click()
    await page.get_by_label("Locker", exact=True).fill(LOCKER)
    await page.get_by_role("button", name="Create parcel").click()
    await expect(page.locator("#new-tracking-link")).to_contain_text("/track/")
    assert ops.errors == []
    # A wrong password is refused with the hub's reason, and nothing is kept.
    context = await browser.new_context()
    wrong = await context.new_page()
    await wrong.goto(stack.url + "/")
    await wrong.get_by_label("User name").fill("ops-user")
    await wrong.get_by_label("Password").fill("not the password")
    await wrong.keyboard.press("Enter")
    await expect(wrong.locator("#sign-in-error")).to_have_text(
        "The hub refused the sign-in: incorrect user name or password."
    )
    await expect(wrong.locator("#views")).to_be_hidden()
    assert await wrong.evaluate("sessionStorage.length") == 0


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
    context = await browser.new_context(viewport=TABLET)
    page = await context.new_page()
    await page.goto(stack.url + "/")
    await screenshot(page, "sign-in")
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
    await page.keyboard.press("Tab")  # the home-address fields are hidden: straight to the button
    await expect(page.get_by_role("button", name="Create parcel")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#new-tracking-link")).to_contain_text("/track/")
    # The link panel takes the focus, so a keyboard user can dismiss it at once.
    done = page.get_by_role("button", name="I have passed the link on, hide it")
    await expect(done).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#new-tracking")).to_be_hidden()
    # It may create parcels but not operate them: no lifecycle or code action is offered.
    await expect(page.locator("#parcel-table tbody tr .status").first).to_have_text("created")
    await expect(page.locator(".action-button")).to_have_count(0)
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
