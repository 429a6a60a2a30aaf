"""systemd's service notification protocol: READY once serving, WATCHDOG=1 from the main loop.

The protocol is one datagram per message on the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(``@name`` is Linux's abstract namespace), so it is implemented here on the standard library rather
than with the ``sdnotify`` package (unmaintained since 2017, silently swallows every send error,
does not read ``WATCHDOG_USEC``): a Pi installs nothing more and a failed send is logged.

The pings come from a task on the program's own event loop. A loop that is blocked (a synchronous
call that hangs, a busy loop) sends none, so systemd kills and restarts the service after
``WatchdogSec``; that is the point of feeding it from the main loop rather than from a thread.

Without ``$NOTIFY_SOCKET`` (a terminal, a test, the demo) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

log = logging.getLogger(__name__)

Ready = Callable[[], Awaitable[object]]

OFFLINE_READY_S = 30.0
"""An agent that has not reached its broker by then says READY anyway: it serves offline (codes,
doors, outbox), and a service manager waiting for a broker would kill it as a failed start."""


class Notifier(Protocol):
    """Sends one notification (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``) to the service manager."""

    def notify(self, message: str) -> None: ...


class NullNotifier:
    """No service manager is listening: nothing is sent."""

    def notify(self, message: str) -> None:
        return None


class SocketNotifier:
    """Datagrams to the service manager's socket. A failed send is logged and counted, not raised:
    the agent keeps serving, and systemd's watchdog notices missing pings on its own."""

    def __init__(self, address: str) -> None:
        if not address or address[0] not in "/@":
            raise ValueError(f"NOTIFY_SOCKET must be a path or @abstract name, got {address!r}")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.failures = 0

    def notify(self, message: str) -> None:
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as err:
            self.failures += 1
            log.warning("sd_notify %r to %s failed: %s", message, self._address, err)

    def close(self) -> None:
        self._sock.close()


class ServiceWatchdog:
    """Tells the service manager when the program serves, and keeps telling it the loop is alive.

    ``interval_s`` is how often ``WATCHDOG=1`` is sent: half of systemd's ``WatchdogSec`` (as
    ``sd_watchdog_enabled`` advises), None when the unit has no watchdog.
    """

    def __init__(self, *, notifier: Notifier, interval_s: float | None) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.notifier = notifier
        self.interval_s = interval_s

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ServiceWatchdog:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` as systemd sets them.
        Called by the command-line entry points, the one place a program reads its process
        environment for the service manager (settings read only ``LASTMILE_...``)."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return cls(notifier=NullNotifier(), interval_s=None)
        interval: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 2e6
        return cls(notifier=SocketNotifier(address), interval_s=interval)

    async def run(self, *, ready: Ready, ready_timeout_s: float | None = None) -> None:
        """Send ``READY=1`` when ``ready()`` returns (or, with ``ready_timeout_s``, when it has not
        returned by then: an agent that serves offline must not be killed as a failed start), then
        ``WATCHDOG=1`` every ``interval_s`` until cancelled; ``STOPPING=1`` on the way out."""
        try:
            pings = asyncio.create_task(self._ping(), name="sd-watchdog")
            try:
                status = "serving"
                try:
                    async with asyncio.timeout(ready_timeout_s):
                        await ready()
                except TimeoutError:
                    status = f"serving, not connected after {ready_timeout_s:g} s"
                self.notifier.notify(f"READY=1\nSTATUS={status}")
                log.info("told the service manager: ready (%s)", status)
                await pings
            finally:
                pings.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pings
        except asyncio.CancelledError:
            self.notifier.notify("STOPPING=1")
            raise

    async def _ping(self) -> None:
        """From the start, not only after READY: a ping before READY is harmless, and a slow
        start (the hub's migrations run on a thread) then never looks like a hung loop, whenever
        systemd arms the watchdog. A start that wedges the loop is caught by ``TimeoutStartSec``."""
        interval = self.interval_s
        if interval is None:
            await asyncio.Event().wait()  # no watchdog configured: nothing to feed
            return
        while True:
            self.notifier.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def supervised(
    main: Awaitable[None],
    *,
    watchdog: ServiceWatchdog | None,
    ready: Ready,
    ready_timeout_s: float | None = None,
) -> None:
    """Run ``main`` with ``watchdog`` beside it on the same loop; when ``main`` ends (or fails), the
    watchdog stops too. Without a watchdog, just await ``main``."""
    if watchdog is None:
        await main
        return
    feeder = asyncio.create_task(
        watchdog.run(ready=ready, ready_timeout_s=ready_timeout_s), name="sd-notify"
    )
    try:
        await main
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
