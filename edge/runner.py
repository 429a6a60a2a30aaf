"""Running a program's main coroutine the way a Pi's service manager and a terminal expect."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any


def run_until_signal(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run ``main`` until it ends or SIGINT/SIGTERM arrives; then cancel it and wait for its cleanup.

    Both signals mean "stop cleanly" (Ctrl-C in a terminal, ``systemctl stop`` in the field), so both
    cancel the main task instead of raising KeyboardInterrupt in the middle of arbitrary code: relays
    are released, offline status is published, the outbox is closed.
    """

    async def runner() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        await main()

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(runner())
    return 0
