"""Live updates for open dashboards: the API process's own MQTT subscription, fanned out to browsers.

Separate from ingest on purpose: ingest holds a persistent session and acknowledges only after a
commit, so it may lag under load or be in another process. The live feed wants the opposite: a
clean session (nothing queued while no page was open), QoS 0, and the newest state as soon as it is
published. What it shows is a view, never the record; the database stays the truth and a page
re-reads it when its stream reconnects.

Each subscriber (one per open stream) gets a bounded queue. A page that cannot keep up loses its
oldest updates, never blocks the feed or the other pages; the loss is counted (``dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt

from cloud.ingest import EXPECTED
from cloud.services.events import severity_of
from cloud.services.route_alerts import LATE_KIND, LateStop
from edge.backoff import Backoff
from edge.mqtt import connected, raise_if_cancelled
from edge.settings import MqttSettings
from protocol.codec import decode
from protocol.errors import DecodeError, TopicError
from protocol.messages import CommandAck, DeviceStatus, LockerEvent, TelemetryBatch, VehicleEvent
from protocol.topics import parse_topic, subscription

log = logging.getLogger(__name__)

UpdateKind = Literal["telemetry", "vehicle_event", "status", "locker_event", "route_ack"]
MAX_POINTS_PER_UPDATE = 50
"""A page draws the newest fix and a short trail; a backlog of thousands is for the history API."""
ROUTE_ACK_NAME = "route"
"""A van's answer to a dispatched route (:class:`protocol.messages.Route`) carries this name; the
page shows those (a route turns acknowledged), not the answers to other commands."""


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """One device message as a page receives it: a kind and a JSON-ready body."""

    kind: UpdateKind
    data: dict[str, Any]


def to_update(message: object) -> LiveUpdate:
    """The page's view of a decoded device message. Raises :class:`TypeError` for other types."""
    if isinstance(message, TelemetryBatch):
        points = [p.model_dump(mode="json") for p in message.points[-MAX_POINTS_PER_UPDATE:]]
        return LiveUpdate("telemetry", {"vehicle_id": message.vehicle_id, "points": points})
    if isinstance(message, VehicleEvent | LockerEvent | DeviceStatus):
        body = message.model_dump(mode="json", exclude={"v", "id", "sent_at", "type"})
        if isinstance(message, VehicleEvent | LockerEvent):
            body["severity"] = severity_of(message.kind)
        kind: UpdateKind = (
            "vehicle_event"
            if isinstance(message, VehicleEvent)
            else "locker_event"
            if isinstance(message, LockerEvent)
            else "status"
        )
        return LiveUpdate(kind, body)
    if isinstance(message, CommandAck) and message.name == ROUTE_ACK_NAME:
        # Only a nudge: the page re-reads the plan (the hub's record), it does not trust this.
        return LiveUpdate(
            "route_ack",
            {
                "vehicle_id": message.device_id,
                "route_id": str(message.command_id),
                "ok": message.ok,
                "reason": message.reason,
            },
        )
    raise TypeError(f"no live view of {type(message).__name__}")


def late_stop_update(alert: LateStop) -> LiveUpdate:
    """A stop predicted late (born in the hub, not at a device) as the page sees a van's event:
    the same fields ``/events`` gives it, so the page ranks and shows both alike."""
    return LiveUpdate(
        "vehicle_event",
        {
            "vehicle_id": alert.vehicle_id,
            "kind": LATE_KIND,
            "at": alert.at.isoformat(),
            "severity": severity_of(LATE_KIND),
            "lat": alert.lat,
            "lon": alert.lon,
            "evidence": {
                "stop_id": alert.stop_id,
                "late_by_s": alert.late_by_s,
                "plan_id": alert.plan_id,
            },
        },
    )


class Subscription:
    """One open stream's side of the hub."""

    def __init__(self, queue: asyncio.Queue[LiveUpdate | None]) -> None:
        self._queue = queue

    async def next(self) -> LiveUpdate | None:
        """The next update, waiting for it; None once the hub has closed. Safe to cancel (e.g. by
        ``asyncio.timeout``): nothing is lost from the queue."""
        return await self._queue.get()


@dataclass(slots=True)
class LiveHub:
    """Fan-out from the feed to every open stream, through bounded per-stream queues."""

    queue_size: int = 256
    dropped: int = 0
    _subscribers: set[asyncio.Queue[LiveUpdate | None]] = field(default_factory=set)
    _closed: bool = False

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, update: LiveUpdate) -> None:
        """Hand ``update`` to every stream; a full queue loses its oldest update (counted)."""
        for queue in self._subscribers:
            if queue.qsize() >= self.queue_size:
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    self.dropped += 1
            queue.put_nowait(update)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription]:
        """Updates from now on, until the block ends or the hub closes."""
        queue: asyncio.Queue[LiveUpdate | None] = asyncio.Queue(self.queue_size + 1)
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield Subscription(queue)
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        """End every open stream (the hub is stopping), so the HTTP server need not wait for them."""
        if self._closed:
            return
        self._closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)  # the one place beyond queue_size is kept for this


LIVE_TYPES: tuple[type, ...] = (
    TelemetryBatch,
    VehicleEvent,
    LockerEvent,
    DeviceStatus,
    CommandAck,
)
"""The device messages a page has a view of (:func:`to_update`); of the acks, only a route's."""


def live_subscriptions() -> list[str]:
    """The topics ingest reads whose messages a page shows (not, e.g., command acks), so the page
    sees what the hub stores."""
    return [
        subscription(kind, channel)
        for (kind, channel), expected in EXPECTED.items()
        if issubclass(expected, LIVE_TYPES)
    ]


async def _subscribe_settled(client: aiomqtt.Client, *, settle_s: float = 2.0) -> None:
    """Subscribe (one SUBSCRIBE for every filter), and if cancelled meanwhile, wait up to
    ``settle_s`` for the SUBACK first: aiomqtt logs a traceback for a SUBACK whose caller left."""
    pending = asyncio.ensure_future(client.subscribe([(f, 0) for f in live_subscriptions()]))
    try:
        await asyncio.shield(pending)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(settle_s):
                await pending
        raise


class LiveFeed:
    """Reads device messages from the broker and publishes them to a :class:`LiveHub`.

    Bad messages are counted (``rejected``) and skipped: ingest dead-letters them already.
    """

    def __init__(self, *, settings: MqttSettings, client_id: str, hub: LiveHub) -> None:
        self._settings = settings
        self._client_id = client_id
        self.hub = hub
        self.received = 0
        self.rejected = 0
        self.skipped = 0
        """Good messages with no page view (the ack of a command other than a route)."""
        self.connected = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        s = self._settings
        tls = ssl.create_default_context(cafile=str(s.tls_ca_file)) if s.tls_ca_file else None
        return aiomqtt.Client(
            s.host,
            s.port,
            identifier=self._client_id,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,  # no session: nothing is queued for pages while none is open
            keepalive=s.keepalive_s,
            tls_context=tls,
            timeout=30,
        )

    def handle(self, topic: str, payload: bytes) -> LiveUpdate | None:
        """Decode one message and publish it; returns the update, or None if it was refused (or,
        a command's ack, has no view)."""
        try:
            info = parse_topic(topic)
            expected = EXPECTED.get((info.kind, info.channel))
            if expected is None or not issubclass(expected, LIVE_TYPES):
                raise TopicError(topic, "not a topic the dashboard shows")
            message = decode(payload, expected)
            if isinstance(message, CommandAck) and message.name != ROUTE_ACK_NAME:
                self.skipped += 1
                return None
            update = to_update(message)
        except (TopicError, DecodeError) as err:
            self.rejected += 1
            log.debug("live feed skips a message on %s: %s", topic, err)
            return None
        self.received += 1
        self.hub.publish(update)
        return update

    async def run(self) -> None:
        """Subscribe and publish until cancelled, reconnecting with backoff; closes the hub at exit."""
        backoff = Backoff(
            minimum=self._settings.reconnect_min_s, maximum=self._settings.reconnect_max_s
        )
        try:
            while True:
                try:
                    client = self._client()
                    async with connected(client):
                        await _subscribe_settled(client)
                        raise_if_cancelled()
                        backoff.reset()
                        self.connected.set()
                        async for message in client.messages:
                            payload = message.payload
                            if isinstance(payload, bytes | bytearray):
                                self.handle(str(message.topic), bytes(payload))
                except aiomqtt.MqttError as err:
                    raise_if_cancelled()
                    self.connected.clear()
                    delay = backoff.next_delay()
                    log.warning("live feed lost the broker (%s); retrying in %.1f s", err, delay)
                    await asyncio.sleep(delay)
        finally:
            self.hub.close()
