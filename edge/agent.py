"""The van agent: GNSS fixes in, chosen points batched out through the durable outbox.

Pipeline: source → :class:`~edge.reporting.Reporter` (which fixes are worth a point) →
:class:`~edge.batcher.Batcher` (how many points per message) → outbox → uplink. The source's health
rides in the retained status, and a change of health republishes the status at once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from edge import __version__
from edge.batcher import Batcher
from edge.config import VehicleSettings
from edge.gnss.source import GnssSource
from edge.outbox import Outbox
from edge.reporting import Reporter
from edge.uplink import Uplink
from protocol.codec import encode
from protocol.messages import DeviceStatus, Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic

log = logging.getLogger(__name__)


class VehicleAgent:
    """Owns one van's sources and link. Everything it produces goes through ``outbox`` first."""

    def __init__(
        self,
        *,
        settings: VehicleSettings,
        gnss: GnssSource,
        outbox: Outbox,
        uplink: Uplink | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.settings = settings
        self.vehicle_id = settings.device_id
        self._gnss = gnss
        self._outbox = outbox
        self._started = time.monotonic()
        self._telemetry_topic = vehicle_topic(self.vehicle_id, Channel.TELEMETRY)
        self.reporter = reporter or Reporter(settings=settings.reporting)
        self._batcher = Batcher(
            max_points=settings.batch.max_points, max_age_s=settings.batch.max_age_s
        )
        self._batch_opened: float | None = None  # loop time of the open batch's first point
        self._batch_open = asyncio.Event()
        self.uplink = uplink or Uplink(
            client_id=f"vehicle-{self.vehicle_id}",
            settings=settings.mqtt,
            outbox=outbox,
            status_topic=vehicle_topic(self.vehicle_id, Channel.STATUS),
            status_payload=self.status_payload,
            status_interval_s=settings.status_interval_s,
        )
        self.points_queued = 0

    def health(self) -> dict[str, str]:
        """What the retained status says about this van's sensors (strings: the contract's type)."""
        h = self._gnss.health
        out = {"gnss": self.settings.gnss, "gnss_state": str(h.state)}
        if h.error:
            out["gnss_error"] = h.error
        out.update({f"gnss_{k}": str(v) for k, v in self._gnss.counters().items()})
        out["reported"] = str(sum(self.reporter.reasons.values()))
        return out

    def status_payload(self, online: bool) -> bytes:
        return encode(
            DeviceStatus(
                device_id=self.vehicle_id,
                kind="vehicle",
                online=online,
                version=__version__,
                uptime_s=round(time.monotonic() - self._started, 1),
                outbox_depth=len(self._outbox),
                health=self.health(),
            )
        )

    async def run(self) -> None:
        """Run until cancelled. On cancellation the open batch is queued, so no point is dropped."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.uplink.run(), name="uplink")
            tg.create_task(self._collect(), name="gnss")
            tg.create_task(self._watch_health(), name="gnss-health")
            tg.create_task(self._age_out(), name="batch-age")

    async def _collect(self) -> None:
        try:
            async for fix in self._gnss.fixes():
                if self.reporter.offer(fix) is not None:
                    self._add(fix)
        finally:
            self._flush()

    async def _watch_health(self) -> None:
        async for h in self._gnss.health_changes():
            log.info("gnss %s%s", h.state, f": {h.error}" if h.error else "")
            self.uplink.refresh_status()

    async def _age_out(self) -> None:
        """Close a batch by wall-clock age too. The batcher closes batches when a point arrives, but
        a parked van reports every few minutes, and a point kept in memory that long is outside the
        outbox and lost if the power goes."""
        loop = asyncio.get_running_loop()
        max_age = self.settings.batch.max_age_s
        while True:
            await self._batch_open.wait()
            opened = self._batch_opened
            if opened is None:  # closed between the event and now
                self._batch_open.clear()
                continue
            await asyncio.sleep(max(0.0, opened + max_age - loop.time()))
            if self._batch_opened == opened:
                self._flush()

    def _add(self, fix: Position) -> None:
        if self._batch_opened is None:
            self._batch_opened = asyncio.get_running_loop().time()
            self._batch_open.set()
        batch = self._batcher.add(fix)
        if batch:
            self._queue(batch)

    def _flush(self) -> None:
        rest = self._batcher.flush()
        if rest:
            self._queue(rest)

    def _queue(self, points: list[Position]) -> None:
        self._batch_opened = None
        self._batch_open.clear()
        vid = self.vehicle_id
        self._outbox.put(
            self._telemetry_topic,
            lambda seq: encode(TelemetryBatch(vehicle_id=vid, seq=seq, points=tuple(points))),
        )
        self.points_queued += len(points)
        self.uplink.wake()
