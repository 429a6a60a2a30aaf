"""Ingest: device messages from the broker into the database, at least once and without duplicates.

- One MQTT 5 persistent session, so the broker queues QoS 1 messages while the hub restarts. With
  no group (the default) it subscribes plainly: one worker, and the subscription survives a
  Mosquitto restart. With a group it uses shared subscriptions (``$share/<group>/...``) so several
  workers split the load -- but Mosquitto 2.0 does not restore shared subscriptions from its
  persistence file after a restart (checked with 2.0.11), so messages published between a broker
  restart and the workers' re-subscription are lost. Scale out on a broker that persists shared
  subscriptions, or accept that window.
- Messages are acknowledged only after the transaction holding them committed: a crash in between
  means a redelivery, and the message-id primary key of ``ingested_messages`` makes that harmless.
- Whatever cannot be used (bad topic, undecodable payload, a device speaking for another id) goes
  to ``dead_letters`` with its raw bytes and is acknowledged: a poison message must not block the
  queue.
- Batches: after the first message, whatever else is already queued (up to ``batch_max``, waiting at
  most ``batch_window_s`` once) is written in one transaction.
- Backpressure: the CONNECT property Receive Maximum (MQTT 5) caps the QoS 1 messages the broker
  has in flight to this worker, unacknowledged, at ``receive_maximum``. Since acks follow commits, a
  worker whose database falls behind acks slower and the broker keeps the rest queued for it (or
  for the other members of the shared subscription): memory stays bounded by ``receive_maximum``
  messages. About twice ``batch_max`` keeps the next batch arriving while one is being written.
- Per point, the hot path is pydantic's Rust validator straight into COPY rows
  (:mod:`cloud.telemetry_rows`, same acceptance as the model) and, per message, a PUBLISH decoded
  without paho's Properties object (:mod:`cloud.lean_publish`).
- Database work runs in a worker thread (``asyncio.to_thread``) so the API keeps answering while a
  batch is written. A storage error drops the connection unacknowledged and reconnects with backoff,
  so the broker redelivers the batch once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from cloud.lean_publish import use_lean_publish
from cloud.services.ingest import Accepted, DeviceKey, Rejected, StoreResult, store_batch
from cloud.telemetry_rows import TelemetryDecoder
from edge.backoff import Backoff
from edge.mqtt import connected, make_client, raise_if_cancelled
from edge.settings import MqttSettings
from protocol.codec import decode
from protocol.errors import DecodeError, TopicError
from protocol.messages import (
    CommandAck,
    DeviceStatus,
    LockerEvent,
    Message,
    TelemetryBatch,
    VehicleEvent,
)
from protocol.topics import Channel, DeviceKind, parse_topic, shared, subscription

log = logging.getLogger(__name__)

MAX_DEAD_LETTER_BYTES = 256 * 1024
MAX_SEQ = 2**63 - 1  # the protocol leaves seq unbounded; the database column is 64-bit

EXPECTED: dict[tuple[DeviceKind, Channel], type[Message]] = {
    (DeviceKind.VEHICLE, Channel.TELEMETRY): TelemetryBatch,
    (DeviceKind.VEHICLE, Channel.EVENTS): VehicleEvent,
    (DeviceKind.VEHICLE, Channel.STATUS): DeviceStatus,
    (DeviceKind.LOCKER, Channel.EVENTS): LockerEvent,
    (DeviceKind.LOCKER, Channel.STATUS): DeviceStatus,
    (DeviceKind.VEHICLE, Channel.CMD_ACK): CommandAck,
}
"""What the hub ingests, and the one message type each of those topics may carry."""


def subscriptions(group: str | None) -> list[str]:
    """The ingest subscriptions: shared ones for worker group ``group``, plain ones without."""
    plain = [subscription(kind, channel) for kind, channel in EXPECTED]
    return plain if group is None else [shared(group, f) for f in plain]


def _sender(message: Message) -> tuple[DeviceKind, str]:
    if isinstance(message, TelemetryBatch | VehicleEvent):
        return DeviceKind.VEHICLE, message.vehicle_id
    if isinstance(message, LockerEvent):
        return DeviceKind.LOCKER, message.locker_id
    if isinstance(message, DeviceStatus):
        return DeviceKind(message.kind), message.device_id
    raise TypeError(f"the hub does not ingest {type(message).__name__}")


def classify(
    topic: str, payload: bytes, *, telemetry: TelemetryDecoder | None = None
) -> Accepted | Rejected:
    """Turn one received message into something to store or to dead-letter. Never raises.

    A message is accepted only if its topic is one we ingest, its payload decodes as that topic's
    message type, and the device named in the message is the one named in the topic (a device may
    only speak for itself: broker ACLs are per topic, not per payload).

    With ``telemetry``, telemetry batches go through its fast path first (same acceptance, same
    values, rows instead of models: see :mod:`cloud.telemetry_rows`); what it refuses is decoded
    with the model, whose reason goes into the dead letter.
    """

    def reject(topic_kind: str, reason: str, detail: str = "") -> Rejected:
        return Rejected(
            topic=topic,
            topic_kind=topic_kind,
            reason=reason,
            detail=detail,
            payload=payload[:MAX_DEAD_LETTER_BYTES],
        )

    try:
        info = parse_topic(topic)
    except TopicError as err:
        return reject("unknown", "bad topic", err.reason)
    topic_kind = f"{info.kind}/{info.channel}"
    expected = EXPECTED.get((info.kind, info.channel))
    if expected is None:
        return reject(topic_kind, "not an ingest topic")
    if telemetry is not None and expected is TelemetryBatch:
        rows = telemetry.decode(payload)
        if rows is not None:
            if rows.vehicle_id != info.device_id:
                return reject(
                    topic_kind, "device id mismatch", f"{rows.vehicle_id!r} in the message"
                )
            if rows.seq > MAX_SEQ:
                return reject(
                    topic_kind, "seq out of range", f"seq={rows.seq} does not fit 64 bits"
                )
            return Accepted(topic=topic, message=rows, payload=payload)
    try:
        message = decode(payload, expected)
    except DecodeError as err:
        return reject(topic_kind, err.reason, err.detail)
    # An ack does not say what kind of device sent it: its topic does.
    kind, device_id = (
        (info.kind, message.device_id) if isinstance(message, CommandAck) else _sender(message)
    )
    if kind != info.kind:
        return reject(topic_kind, "device kind mismatch", f"{kind} status on a {info.kind} topic")
    if device_id != info.device_id:
        return reject(topic_kind, "device id mismatch", f"{device_id!r} in the message")
    seq = getattr(message, "seq", None)
    if seq is not None and seq > MAX_SEQ:
        return reject(topic_kind, "seq out of range", f"seq={seq} does not fit 64 bits")
    return Accepted(topic=topic, message=message, payload=payload)


def make_ingest_client(
    *, settings: MqttSettings, client_id: str, receive_maximum: int
) -> aiomqtt.Client:
    """A persistent-session client that acks by hand and announces ``receive_maximum``.

    Without Receive Maximum an MQTT 5 broker may have up to 65,535 unacknowledged messages in
    flight to us (Mosquitto caps it at ``max_inflight_messages``), all buffered in this process.
    """
    client = make_client(settings=settings, client_id=client_id, manual_ack=True)
    properties = client._properties
    assert properties is not None  # make_client always sets CONNECT properties
    properties.ReceiveMaximum = receive_maximum
    use_lean_publish(client)  # ingest reads no PUBLISH properties: do not pay for decoding them
    return client


@dataclass
class IngestStats:
    """What ingest did since start; ``dead_letters`` counts by (topic kind, reason)."""

    connects: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    batches: int = 0
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_error: str = ""

    def count(self, result: StoreResult, rejected: Sequence[Rejected]) -> None:
        self.batches += 1
        self.stored += result.stored
        self.duplicates += result.duplicates
        for r in (*rejected, *result.refused):
            self.dead_letters[(r.topic_kind, r.reason)] += 1


class IngestWorker:
    """Consumes device messages until cancelled. Run :meth:`run` in the hub's task group."""

    def __init__(
        self,
        *,
        settings: MqttSettings,
        session_factory: sessionmaker[Session],
        client_id: str,
        group: str | None = None,
        batch_max: int = 500,
        batch_window_s: float = 0.005,
        receive_maximum: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        if not 1 <= receive_maximum <= 65_535:
            raise ValueError(f"receive_maximum must be in 1..65535, got {receive_maximum}")
        if batch_window_s < 0:
            raise ValueError(f"batch_window_s must not be negative, got {batch_window_s}")
        self._settings = settings
        self._session_factory = session_factory
        self._client_id = client_id
        self._subscriptions = subscriptions(group)
        self._batch_max = batch_max
        self._batch_window_s = batch_window_s
        self._receive_maximum = receive_maximum
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self._ready = asyncio.Event()
        # Device rows committed by this worker's batches: later batches skip their INSERT, which
        # would otherwise wait for the other workers' transactions holding the same vans' rows.
        self._known_devices: set[DeviceKey] = set()
        self._telemetry = TelemetryDecoder()
        self.stats = IngestStats()

    async def wait_ready(self) -> None:
        """Return once subscribed: from then on, every matching message is ours to store."""
        await self._ready.wait()

    async def run(self) -> None:
        """Stay connected until cancelled; reconnect with backoff after broker or storage errors."""
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as err:
                raise_if_cancelled()
                self.stats.last_error = f"broker: {err}"
                log.warning("ingest lost the broker (%s); reconnecting", err)
            except SQLAlchemyError as err:
                self.stats.last_error = f"storage: {err}"
                log.error(
                    "ingest could not store a batch (%s); reconnecting so the broker redelivers it",
                    err,
                )
            self._ready.clear()
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        client = make_ingest_client(
            settings=self._settings,
            client_id=self._client_id,
            receive_maximum=self._receive_maximum,
        )
        async with connected(client):
            self.stats.connects += 1
            await client.subscribe([(topic_filter, 1) for topic_filter in self._subscriptions])
            raise_if_cancelled()
            self._backoff.reset()
            self._ready.set()
            log.info("ingest subscribed to %s", ", ".join(self._subscriptions))
            # Two batches in the pipeline: while one is written (in a thread, mostly waiting for
            # PostgreSQL), the next is received and decoded. Batches commit and are acknowledged
            # in arrival order.
            writing: asyncio.Task[None] | None = None
            try:
                while True:
                    batch = await self._next_batch(client)
                    items = self._classify(batch)
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(self._store_and_ack(client, batch, items))
            finally:
                if writing is not None and not writing.done():
                    writing.cancel()
                    with contextlib.suppress(BaseException):
                        await writing

    async def _next_batch(self, client: aiomqtt.Client) -> list[aiomqtt.Message]:
        """Wait for one message, then take what is queued; wait one short window for stragglers.

        No ``asyncio.timeout`` around a receive: cancelling a receive that just got its message
        would drop that message, so the window is a plain sleep followed by a non-blocking drain.
        """
        messages = client.messages
        batch = [await anext(messages)]
        while len(batch) < self._batch_max and len(messages) > 0:
            batch.append(await anext(messages))
        if len(batch) < self._batch_max and self._batch_window_s > 0:
            await asyncio.sleep(self._batch_window_s)
            while len(batch) < self._batch_max and len(messages) > 0:
                batch.append(await anext(messages))
        return batch

    async def handle(self, batch: Sequence[aiomqtt.Message]) -> None:
        """Classify and store ``batch`` in one transaction (in a thread). Raises SQLAlchemyError."""
        await self._write(batch, self._classify(batch))

    async def _store_and_ack(
        self,
        client: aiomqtt.Client,
        batch: Sequence[aiomqtt.Message],
        items: Sequence[Accepted | Rejected],
    ) -> None:
        await self._write(batch, items)
        for message in batch:
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)

    def _classify(self, batch: Sequence[aiomqtt.Message]) -> list[Accepted | Rejected]:
        items = [
            classify(
                m.topic.value,
                m.payload if isinstance(m.payload, bytes) else b"",
                telemetry=self._telemetry,
            )
            for m in batch
        ]
        for r in items:
            if isinstance(r, Rejected):
                log.warning(
                    "dead-lettered a message on %s: %s %s", r.topic, r.reason, r.detail[:200]
                )
        return items

    async def _write(
        self, batch: Sequence[aiomqtt.Message], items: Sequence[Accepted | Rejected]
    ) -> None:
        rejected = [i for i in items if isinstance(i, Rejected)]
        result, unstorable = await asyncio.to_thread(self._store, items, datetime.now(UTC))
        self.stats.received += len(batch)
        self.stats.count(result, [*rejected, *unstorable])

    def _store(
        self, items: Sequence[Accepted | Rejected], received_at: datetime
    ) -> tuple[StoreResult, list[Rejected]]:
        """Store ``items`` in one transaction; if the database refuses one of them, store them one
        by one and dead-letter those it refuses alone, so that one poison message cannot stall
        ingest forever. Connection errors propagate (the batch stays unacknowledged)."""
        try:
            return self._store_together(items, received_at), []
        except Exception as err:
            if not _is_data_error(err):
                raise
            log.warning("a batch of %d was refused (%s); storing one by one", len(items), err)
            self._known_devices.clear()  # in case a device row we trusted is what was missing
        total = StoreResult()
        unstorable: list[Rejected] = []
        for item in items:
            try:
                one = self._store_together([item], received_at)
            except Exception as err:
                if not _is_data_error(err) or isinstance(item, Rejected):
                    raise
                letter = _unstorable(item, err)
                log.warning("dead-lettered a message on %s: %s", item.topic, letter.detail)
                unstorable.append(letter)
                one = self._store_together([letter], received_at)
            total = StoreResult(
                stored=total.stored + one.stored,
                duplicates=total.duplicates + one.duplicates,
                dead_letters=total.dead_letters + one.dead_letters,
                refused=total.refused + one.refused,
            )
        return total, unstorable

    def _store_together(
        self, items: Sequence[Accepted | Rejected], received_at: datetime
    ) -> StoreResult:
        with self._session_factory() as session, session.begin():
            result = store_batch(
                session, items, received_at=received_at, known_devices=self._known_devices
            )
        self._known_devices |= result.devices  # committed: they exist
        return result


def _is_data_error(err: Exception) -> bool:
    """Whether ``err`` is about the data (retrying cannot help) rather than the connection."""
    if isinstance(err, DataError | IntegrityError | OverflowError | ValueError):
        return True
    # A StatementError that is not a DBAPIError failed while binding parameters, on our side.
    return isinstance(err, StatementError) and not isinstance(err, DBAPIError)


def _unstorable(item: Accepted, err: Exception) -> Rejected:
    info = parse_topic(item.topic)  # valid: the message was accepted
    return Rejected(
        topic=item.topic,
        topic_kind=f"{info.kind}/{info.channel}",
        reason="unstorable",
        detail=f"{type(err).__name__}: {str(err)[:200]}",
        payload=item.payload[:MAX_DEAD_LETTER_BYTES],
    )
