"""The map places lockers where the hub's database says (``PUT /depots/{id}/lockers/{locker}``),
with the settings' ``map_locker_sites`` only for lockers the database does not place."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from cloud.settings import Role
from tests.cloud.helpers import auth
from tests.dashboard.conftest import LOCKER, SITE, Stack, screenshot, sign_in

pytestmark = pytest.mark.slow

MOVED = (52.3612, 4.9135)


async def test_the_map_puts_a_locker_at_its_site_from_the_database_over_the_settings(
    stack: Stack, browser: Browser
) -> None:
    viewer = await sign_in(browser, stack, Role.VIEWER)
    page = viewer.page
    marker = page.locator(f'.locker-marker[data-locker="{LOCKER}"]')
    # No site in the database yet: the settings' position.
    await expect(marker).to_have_attribute("data-lat", str(SITE[0]), timeout=15_000)
    await expect(marker).to_have_attribute("data-lon", str(SITE[1]))

    for path, body in (
        ("/api/v1/depots/main", {"lat": 52.37, "lon": 4.90}),
        (f"/api/v1/depots/main/lockers/{LOCKER}", {"lat": MOVED[0], "lon": MOVED[1]}),
    ):
        r = await stack.api.put(path, json=body, headers=auth(Role.OPS))
        assert r.status_code == 200, r.text
    await page.reload()
    await expect(page.locator("#live-state")).to_have_text("Live", timeout=15_000)
    await expect(marker).to_have_attribute("data-lat", str(MOVED[0]), timeout=15_000)
    await expect(marker).to_have_attribute("data-lon", str(MOVED[1]))
    await expect(marker).to_have_count(1)
    await page.get_by_role("button", name="Show every van and locker").click()
    await screenshot(page, "map-locker-site")
    assert viewer.errors == []
