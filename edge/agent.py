"""The van agent: GNSS fixes in, batched positions out through the durable outbox."""

from __future__ import annotations

import asyncio
import logging
import time

from edge import __version__
from edge.batcher import Batcher
from edge.config import VehicleSettings
from edge.gnss.source import GnssSource
from edge.outbox import Outbox
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
    ) -> None:
        self.settings = settings
        self.vehicle_id = settings.device_id
        self._gnss = gnss
        self._outbox = outbox
        self._started = time.monotonic()
        self._telemetry_topic = vehicle_topic(self.vehicle_id, Channel.TELEMETRY)
        self._batcher = Batcher(
            max_points=settings.batch.max_points, max_age_s=settings.batch.max_age_s
        )
        self.uplink = uplink or Uplink(
            client_id=f"vehicle-{self.vehicle_id}",
            settings=settings.mqtt,
            outbox=outbox,
            status_topic=vehicle_topic(self.vehicle_id, Channel.STATUS),
            status_payload=self.status_payload,
            status_interval_s=settings.status_interval_s,
        )
        self.points_queued = 0

    def status_payload(self, online: bool) -> bytes:
        return encode(
            DeviceStatus(
                device_id=self.vehicle_id,
                kind="vehicle",
                online=online,
                version=__version__,
                uptime_s=round(time.monotonic() - self._started, 1),
                outbox_depth=len(self._outbox),
                health={"gnss": self.settings.gnss},
            )
        )

    async def run(self) -> None:
        """Run until cancelled. On cancellation the open batch is queued, so no fix is dropped."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.uplink.run(), name="uplink")
            tg.create_task(self._collect(), name="gnss")

    async def _collect(self) -> None:
        try:
            async for fix in self._gnss.fixes():
                batch = self._batcher.add(fix)
                if batch:
                    self._queue(batch)
        finally:
            rest = self._batcher.flush()
            if rest:
                self._queue(rest)

    def _queue(self, points: list[Position]) -> None:
        vid = self.vehicle_id
        self._outbox.put(
            self._telemetry_topic,
            lambda seq: encode(TelemetryBatch(vehicle_id=vid, seq=seq, points=tuple(points))),
        )
        self.points_queued += len(points)
        self.uplink.wake()
