"""Shared props for signal-source stories (CAN, OBD-II): poll with a deadline, collect updates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from edge.agent import SignalSource
from edge.signals import SignalUpdate


async def poll(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``cond()`` holds; TimeoutError after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def collecting(
    source: SignalSource, *, ready: Callable[[], bool] | None = None
) -> AsyncIterator[list[SignalUpdate]]:
    """Run ``source`` and gather its updates; wait for ``ready()`` first if given."""
    got: list[SignalUpdate] = []

    async def consume() -> None:
        async for update in source.updates():
            got.append(update)

    task = asyncio.create_task(consume())
    try:
        if ready is not None:
            await poll(ready)
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
