"""The OBD-II telematics source: PIDs polled each at its own rate, as an async stream of updates.

python-OBD blocks, so every call to the adapter runs on one dedicated worker thread (a one-thread
executor): calls are serialised as the ELM327 requires — an on-demand :meth:`ObdSource.read_dtcs`
simply queues behind the poll in flight — and a ``close()`` can never overlap a query, even when the
consumer is cancelled mid-query.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from edge.backoff import Backoff
from edge.obd.connection import (
    Dtc,
    ObdConnection,
    ObdConnector,
    check_pid_names,
    connect_python_obd,
)
from edge.obd.errors import ObdConnectError, ObdDisconnectedError, ObdError
from edge.obd.settings import ObdSettings
from edge.signals import Health, SignalUpdate

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class ObdStats:
    """What the source has done since start."""

    queries: int = 0
    answered: int = 0
    unanswered: int = 0
    connects: int = 0
    failures: int = 0
    unsupported: set[str] = field(default_factory=set)
    last_error: str = ""


class ObdSource:
    """Polls the configured PIDs. Iterate :meth:`updates`; read :attr:`health`, :attr:`stats`.

    Raises :class:`~edge.obd.errors.ObdConfigError` at construction for unknown PID names (checked
    with the default connector only, since another backend may name PIDs its own way).
    """

    def __init__(
        self,
        *,
        settings: ObdSettings,
        connect: ObdConnector = connect_python_obd,
        backoff: Backoff | None = None,
    ) -> None:
        if connect is connect_python_obd:
            check_pid_names([p.name for p in settings.pids])
        self.settings = settings
        self._connect_fn = connect
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self.health: Health = "starting"
        self.stats = ObdStats()
        self._conn: ObdConnection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def _call(self, fn: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise ObdDisconnectedError(self.settings.port, "the source is not running")
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    async def updates(self) -> AsyncGenerator[SignalUpdate, None]:
        """Yield one update per answered poll, until cancelled; reconnect by itself, forever."""
        if self._executor is not None:
            raise RuntimeError("ObdSource.updates() is already being iterated")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="obd")
        try:
            while True:
                conn = await self._open()
                try:
                    async for update in self._poll(conn):
                        yield update
                except ObdDisconnectedError as err:
                    self._fail(err)
                finally:
                    self._conn = None
                    # Queued behind any query in flight on the worker thread, never beside it.
                    await asyncio.shield(self._call(conn.close))
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self.health = "stopped"
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _open(self) -> ObdConnection:
        while True:
            try:
                conn = await self._call(lambda: self._connect_fn(self.settings))
            except ObdConnectError as err:
                self._fail(err)
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self.stats.connects += 1
            self._backoff.reset()
            self.health = "ok"
            self._conn = conn
            log.info("OBD-II adapter at %s connected", self.settings.port)
            return conn

    async def _poll(self, conn: ObdConnection) -> AsyncIterator[SignalUpdate]:
        loop = asyncio.get_running_loop()
        pids = []
        for p in self.settings.pids:
            if await self._call(lambda name=p.name: conn.supports(name)):  # type: ignore[misc]
                pids.append(p)
            elif p.name not in self.stats.unsupported:
                self.stats.unsupported.add(p.name)
                log.warning("the car does not support PID %s; not polling it", p.name)
        if not pids:
            await asyncio.Event().wait()  # nothing to poll; stay connected for read_dtcs()
        due = dict.fromkeys((p.name for p in pids), loop.time())
        interval = {p.name: p.interval_s for p in pids}
        misses = 0
        while True:
            now = loop.time()
            name = min(due, key=due.__getitem__)
            if due[name] > now:
                await asyncio.sleep(due[name] - now)
            # Schedule from the due time, not from now, so the rate does not drift with query time;
            # but never queue a burst after a stall.
            due[name] = max(due[name] + interval[name], loop.time())
            self.stats.queries += 1
            reading = await self._call(lambda n=name: conn.query(n))  # type: ignore[misc]
            if reading is None:
                self.stats.unanswered += 1
                misses += 1
                if misses >= self.settings.failures_before_reconnect:
                    raise ObdDisconnectedError(self.settings.port, f"{misses} queries unanswered")
                continue
            misses = 0
            self.stats.answered += 1
            yield SignalUpdate(name, reading.value, reading.unit, reading.t)

    async def read_dtcs(self) -> tuple[Dtc, ...]:
        """The stored trouble codes (mode 03). Raises :class:`ObdDisconnectedError` when not connected,
        :class:`~edge.obd.errors.ObdNoAnswerError` if the car does not answer."""
        conn = self._conn
        if conn is None:
            raise ObdDisconnectedError(self.settings.port, "not connected")
        return await self._call(conn.dtcs)

    def _fail(self, err: ObdError) -> None:
        self.health = "disconnected"
        self.stats.failures += 1
        self.stats.last_error = str(err)
        log.warning("%s; retrying", err)
