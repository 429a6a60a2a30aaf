"""Small helpers for the hub's tests: settings, keys, polling with deadlines, a running worker."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiomqtt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import Base
from cloud.settings import HubSettings, Role
from edge.settings import MqttSettings

T = TypeVar("T")

MASTER_SECRET = "t3st-Hub-Master-9f8e7d6c5b4a3928-17a6b5c4"
KEYS: dict[Role, str] = {
    Role.VIEWER: "viewer-key-8c1d0f6a52b94e7d",
    Role.INTEGRATION: "integration-key-2b7e4a91c3d05f68",
    Role.OPS: "ops-key-5e9a3c7d1b2f4068",
}


#: The test receivers listen on loopback, which the SSRF guard refuses unless let in.
LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1/128"]


def hub_settings(
    *, database_url: str, mqtt: MqttSettings | None = None, **overrides: Any
) -> HubSettings:
    return HubSettings(
        database_url=database_url,
        mqtt=mqtt or MqttSettings(),
        code_master_secret=MASTER_SECRET,
        api_keys={hashlib.sha256(k.encode()).hexdigest(): role for role, k in KEYS.items()},
        **{"webhook_allow_networks": LOOPBACK_NETWORKS, **overrides},
    )


def auth(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


async def eventually(
    probe: Callable[[], Awaitable[T | None]] | Callable[[], T | None],
    *,
    timeout: float = 10.0,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``coros`` as background tasks for the duration of the block; cancel and await them."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
        for t in tasks:
            if t.done():
                t.result()  # surface a crashed worker
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


@contextlib.asynccontextmanager
async def mqtt_client(mqtt: MqttSettings, client_id: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        mqtt.host, mqtt.port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        yield client


def count(session_factory: sessionmaker[Session], model: type[Any]) -> int:
    with session_factory() as session:
        return len(session.scalars(select(model)).all())


def dump_database(session_factory: sessionmaker[Session]) -> str:
    """Every value of every table as text (bytes decoded as latin-1), for "never stored" checks."""
    parts: list[str] = []
    with session_factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    parts.append(
                        value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    )
    return "\n".join(parts)
