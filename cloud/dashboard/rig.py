"""A hub on a loopback broker, and a headless Chromium to look at it: for the dashboard's browser
tests and the live-latency benchmark (``python -m bench.live_latency``).

Like :mod:`cloud.pgtest`, this ships with the hub so that the tests and the benchmark start the
real thing the same way. Playwright is a development dependency; it is imported only when a browser
is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloud.broker import free_port
from cloud.errors import HubError
from cloud.hub import run_hub
from cloud.settings import HubSettings, Role
from edge.settings import MqttSettings

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (``apt-get install chromium``): Playwright's own browser download cannot run
here, and CI installs this one through ``scripts/setup test``."""
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def hub_settings_for(
    *,
    state_dir: Path,
    mqtt: MqttSettings,
    master_secret: str,
    api_keys: Mapping[Role, str],
    locker_sites: Mapping[str, tuple[float, float]] | None = None,
    **overrides: Any,
) -> HubSettings:
    """A hub on SQLite in ``state_dir``, on a free loopback port, with one key per role given;
    ``overrides`` are further :class:`HubSettings` fields."""
    return HubSettings(
        database_url=f"sqlite:///{state_dir / 'hub.db'}",
        mqtt=mqtt,
        http_port=free_port(),
        code_master_secret=master_secret,
        api_keys={hashlib.sha256(k.encode()).hexdigest(): role for role, k in api_keys.items()},
        map_locker_sites=dict(locker_sites or {}),
        # Test and demo receivers listen on loopback, which the SSRF guard refuses by default.
        **{"webhook_allow_networks": ["127.0.0.0/8", "::1/128"], **overrides},
    )


@contextlib.asynccontextmanager
async def running_hub(settings: HubSettings) -> AsyncIterator[str]:
    """Run the whole hub as a task; yields its base URL once the API answers and its MQTT
    sessions were started. Raises :class:`HubError` if it stops before that."""
    started = asyncio.Event()
    task = asyncio.create_task(run_hub(settings, started=started), name="rig-hub")
    up = asyncio.create_task(started.wait())
    try:
        await asyncio.wait((task, up), return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            raise HubError("the hub stopped while starting")
        yield f"http://{settings.http_host}:{settings.http_port}"
    finally:
        up.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def chromium(playwright: Playwright) -> AsyncIterator[Browser]:
    """A headless Debian Chromium under Playwright's control; closed on exit."""
    browser = await playwright.chromium.launch(
        executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
    )
    try:
        yield browser
    finally:
        await browser.close()
