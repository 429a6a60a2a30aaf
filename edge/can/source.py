"""The CAN telematics source: configured DBC signals from the van's bus, as an async stream.

Receiving runs in one reader thread that also decodes and applies the deadbands; only the few frames
that produce an update cross into the event loop (``call_soon_threadsafe``, one call per frame with
updates). Measured with ``python -m bench.edge_can``: a python-can ``Notifier`` feeding an
``AsyncBufferedReader`` wakes the loop for *every* frame and cost ~1.4x the CPU per frame (25 vs 18 µs), for
no gain — the decode is CPU-bound either way and the GIL serialises it.

Bad frames are counted and skipped (see :data:`edge.can.decoder.BadFrame`); a failing bus is closed,
reported as ``"disconnected"`` and reopened with exponential backoff, forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import can

from edge.backoff import Backoff
from edge.can.bus import BusFactory, open_bus
from edge.can.decoder import DecoderStats, SignalDecoder, load_dbc
from edge.can.errors import CanBusError, CanOpenError, CanSourceError
from edge.can.settings import CanSettings
from edge.signals import Health, SignalUpdate

log = logging.getLogger(__name__)

CAN_ERR_BUSOFF = 0x40  # error class bit in a SocketCAN error frame's id (linux/can/error.h)


@dataclass(slots=True)
class CanStats:
    """What the source has seen. ``decoder`` holds the per-frame counters, incl. bad frames by reason."""

    decoder: DecoderStats
    opens: int = 0
    failures: int = 0
    dropped: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, int | str]:
        """Flat counters, e.g. for a status message."""
        d = self.decoder
        out: dict[str, int | str] = {
            "frames": d.frames,
            "decoded": d.decoded,
            "unchanged": d.unchanged,
            "updates": d.updates,
            "opens": self.opens,
            "failures": self.failures,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }
        out.update({f"bad_{k}": v for k, v in sorted(d.bad.items())})
        return out


class _Reader:
    """One open bus and the thread that drains it. Lives from one open to the next failure or stop."""

    def __init__(
        self,
        *,
        bus: can.BusABC,
        source: CanSource,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[SignalUpdate]], None],
        wake: asyncio.Event,
    ) -> None:
        self.bus = bus
        self.failure: CanBusError | None = None
        self._source = source
        self._loop = loop
        self._deliver = deliver
        self._wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="can-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        src = self._source
        settings = src.settings
        recv = self.bus.recv
        feed = src._decoder.feed
        call = self._loop.call_soon_threadsafe
        deliver = self._deliver
        timeout = settings.receive_timeout_s
        stop = self._stop
        try:
            while not stop.is_set():
                msg = recv(timeout)
                if msg is None:
                    continue
                if msg.is_error_frame:
                    if msg.arbitration_id & CAN_ERR_BUSOFF:
                        src.health = "bus_off"
                    feed(msg)  # counted as a bad frame, reason "error_frame"
                    continue
                if src.health == "bus_off":
                    src.health = "ok"  # the controller recovered (SocketCAN restart-ms)
                updates = feed(msg)
                if updates:
                    call(deliver, updates)
        except (can.CanError, OSError, ValueError) as err:
            self.failure = CanBusError(settings.interface, settings.channel, str(err) or repr(err))
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                call(self._wake.set)

    def stop(self) -> None:
        """Stop the thread (within ``receive_timeout_s``) and close the bus."""
        self._stop.set()
        self._thread.join(timeout=self._source.settings.receive_timeout_s + 2.0)
        try:
            self.bus.shutdown()
        except (can.CanError, OSError) as err:
            log.debug("closing CAN bus: %s", err)


class CanSource:
    """Configured signals from a CAN bus. Iterate :meth:`updates`; read :attr:`health` and :attr:`stats`.

    Raises :class:`~edge.can.errors.CanConfigError` at construction if the DBC does not load or a
    signal is missing or ambiguous in it: that is a deployment mistake no retry fixes.
    """

    def __init__(
        self,
        *,
        settings: CanSettings,
        bus_factory: BusFactory = open_bus,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self._bus_factory = bus_factory
        db = load_dbc(str(settings.dbc_file))
        self._decoder = SignalDecoder(
            db=db, signals=settings.signals, dbc_name=str(settings.dbc_file)
        )
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self.health: Health = "starting"
        self.stats = CanStats(decoder=self._decoder.stats)
        self._iterating = False

    @property
    def frame_ids(self) -> list[int]:
        """The ids this source listens to (the ones carrying configured signals)."""
        return sorted(f.can_id for f in self._decoder.filters)

    async def updates(self) -> AsyncGenerator[SignalUpdate, None]:
        """Yield updates until cancelled or closed; reopen the bus by itself whenever it fails.

        Use with ``contextlib.aclosing`` (or cancel the consuming task) so the reader thread stops and
        the bus is closed promptly; stopping blocks the loop for at most ``receive_timeout_s``.
        """
        if self._iterating:
            raise RuntimeError("CanSource.updates() is already being iterated")
        self._iterating = True
        loop = asyncio.get_running_loop()
        pending: deque[SignalUpdate] = deque()
        wake = asyncio.Event()
        limit = self.settings.queue_size

        def deliver(batch: list[SignalUpdate]) -> None:
            for update in batch:
                if len(pending) >= limit:
                    pending.popleft()
                    self.stats.dropped += 1
                pending.append(update)
            wake.set()

        try:
            while True:
                reader = await self._open(loop, deliver, wake)
                try:
                    while True:
                        while pending:
                            yield pending.popleft()
                        if reader.failure is not None:
                            break
                        wake.clear()
                        if not pending and reader.failure is None:
                            await wake.wait()
                finally:
                    reader.stop()
                err = reader.failure
                assert err is not None
                self._fail(err)
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self.health = "stopped"
            self._iterating = False

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[list[SignalUpdate]], None],
        wake: asyncio.Event,
    ) -> _Reader:
        filters = self._decoder.filters
        while True:
            try:
                bus = await asyncio.to_thread(self._bus_factory, self.settings, filters)
            except CanOpenError as err:
                self._fail(err)
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self.stats.opens += 1
            self._backoff.reset()
            self.health = "ok"
            log.info("CAN bus %s:%s open", self.settings.interface, self.settings.channel)
            return _Reader(bus=bus, source=self, loop=loop, deliver=deliver, wake=wake)

    def _fail(self, err: CanSourceError) -> None:
        self.health = "disconnected"
        self.stats.failures += 1
        self.stats.last_error = str(err)
        log.warning("%s; retrying", err)
