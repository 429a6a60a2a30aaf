"""The dashboard's browser tests start everything for real: Mosquitto, the hub (ingest, dispatcher,
API, live feed), a simulated locker on mock pins, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, ViewportSize, async_playwright

from cloud.dashboard.rig import chromium, hub_settings_for, running_hub
from cloud.settings import HubSettings, Role
from edge.settings import MqttSettings
from locker.app import run_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.settings import LockerSettings
from protocol.codes import derive_courier_key, derive_locker_key
from protocol.commands import derive_command_key
from tests.cloud.conftest import session_factory
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, eventually
from tests.cloud.token_rigs import JWT_SECRET, users

__all__ = ["session_factory"]  # the hub tests' migrated-database fixture, used here too

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
LOCKER = "locker-1"
COMPARTMENTS = 6
SITE = (52.3731, 4.8922)
TABLET: ViewportSize = {"width": 1024, "height": 768}


@dataclass
class Stack:
    url: str
    settings: HubSettings
    mqtt: MqttSettings
    keypad: SimKeypad
    factory: MockLockerFactory
    locker_dir: Path
    api: httpx.AsyncClient


@dataclass
class SignedIn:
    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def hub_overrides() -> dict[str, Any]:
    """Further hub settings; a test changes them with ``@pytest.mark.parametrize``."""
    return {}


@pytest.fixture
async def stack(
    tmp_path: Path, mqtt_settings: MqttSettings, hub_overrides: dict[str, Any]
) -> AsyncIterator[Stack]:
    settings = hub_settings_for(
        state_dir=tmp_path,
        mqtt=mqtt_settings,
        master_secret=MASTER_SECRET,
        api_keys=KEYS,
        locker_sites={LOCKER: SITE},
        **({"users": users(), "jwt_secret": JWT_SECRET} | hub_overrides),
    )
    locker = LockerSettings(
        device_id=LOCKER,
        mqtt=mqtt_settings,
        state_dir=tmp_path / "locker",
        compartments=COMPARTMENTS,
        code_key=derive_locker_key(MASTER_SECRET.encode(), LOCKER).hex(),
        courier_key=derive_courier_key(MASTER_SECRET.encode(), LOCKER).hex(),
        command_key=derive_command_key(MASTER_SECRET.encode(), LOCKER).hex(),
        simulate_people=True,
    )
    factory = MockLockerFactory()
    keypad = SimKeypad()
    async with running_hub(settings) as url, httpx.AsyncClient(base_url=url) as api:
        task = asyncio.create_task(run_locker(locker, pin_factory=factory, keypad=keypad))
        try:

            async def locker_reported() -> bool:
                r = await api.get(f"/api/v1/lockers/{LOCKER}", headers=auth(Role.OPS))
                return r.status_code == 200 and r.json()["compartments"] == COMPARTMENTS

            await eventually(locker_reported, timeout=30, what="the locker's first status")
            yield Stack(url, settings, mqtt_settings, keypad, factory, tmp_path / "locker", api)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            factory.reset()
            factory.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright, chromium(playwright) as b:
        yield b


async def sign_in(
    browser: Browser, stack: Stack, role: Role, *, password: str | None = None
) -> SignedIn:
    """A fresh tablet-sized tab, signed in with ``role``'s key (or, given ``password``, as the
    user ``{role}-user`` with a JWT from ``/auth/token``); console errors are collected."""
    context = await browser.new_context(viewport=TABLET)
    page = await context.new_page()
    signed = SignedIn(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            signed.errors.append(f"{message.text} at {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: signed.errors.append(f"uncaught: {exc}"))
    await page.goto(stack.url + "/")
    if password is None:
        await page.get_by_label("API key").fill(KEYS[role])
    else:
        await page.get_by_label("User name").fill(f"{role.value}-user")
        await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.locator("#role").filter(has_text=f"Signed in as {role}").wait_for()
    return signed


async def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


UNLABELLED = """
() => [...document.querySelectorAll("input, select, button, [tabindex]")]
  .filter((el) => el.offsetParent !== null || el.getClientRects().length > 0)
  .filter((el) => {
    const name = (el.getAttribute("aria-label") || el.title || "").trim();
    if (el.matches("input, select")) return !(el.labels && el.labels.length) && !name;
    return !name && !el.textContent.trim() && !el.getAttribute("aria-labelledby");
  })
  .map((el) => el.outerHTML.slice(0, 120))
"""
"""Visible controls a screen reader could not name: no label, no aria-label, no text."""


async def unlabelled_controls(page: Page) -> list[str]:
    return list(await page.evaluate(UNLABELLED))
