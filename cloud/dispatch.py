"""Outbound MQTT through a transactional outbox.

Whoever changes state (the API creating a parcel) writes the message to ``outbound_messages`` in
the same transaction. This loop publishes unsent rows in id order with QoS 1 and marks them sent
after the broker's PUBACK. A crash between PUBACK and the mark means the message goes out twice;
receivers drop repeats by message id (every message carries one).

Database work runs in a worker thread (``asyncio.to_thread``) so the event loop keeps serving the
API.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import aiomqtt
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import OutboundMessage
from edge.backoff import Backoff
from edge.mqtt import connected, make_client, raise_if_cancelled
from edge.settings import MqttSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class DispatchStats:
    connects: int = 0
    published: int = 0
    last_error: str = ""


class OutboundDispatcher:
    """Publishes the outbox until cancelled. Run :meth:`run` in the hub's task group.

    ``wakeup`` is set by whoever wrote to the outbox (the API) so that a grant leaves within
    milliseconds; without a signal the outbox is still polled every ``poll_interval_s``.
    """

    def __init__(
        self,
        *,
        settings: MqttSettings,
        session_factory: sessionmaker[Session],
        client_id: str,
        wakeup: asyncio.Event | None = None,
        poll_interval_s: float = 1.0,
        batch_max: int = 100,
        backoff: Backoff | None = None,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        self._settings = settings
        self._session_factory = session_factory
        self._client_id = client_id
        self._wakeup = wakeup or asyncio.Event()
        self._poll_interval_s = poll_interval_s
        self._batch_max = batch_max
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self.stats = DispatchStats()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        """Stay connected until cancelled; reconnect with backoff after broker or storage errors."""
        while True:
            try:
                client = make_client(
                    settings=self._settings, client_id=self._client_id, manual_ack=False
                )
                async with connected(client):
                    self.stats.connects += 1
                    self._backoff.reset()
                    await self._drain_forever(client)
            except aiomqtt.MqttError as err:
                raise_if_cancelled()
                self.stats.last_error = f"broker: {err}"
                log.warning("dispatcher lost the broker (%s); reconnecting", err)
            except SQLAlchemyError as err:
                self.stats.last_error = f"storage: {err}"
                log.error("dispatcher could not read or mark the outbox (%s); retrying", err)
            await asyncio.sleep(self._backoff.next_delay())

    async def _drain_forever(self, client: aiomqtt.Client) -> None:
        while True:
            raise_if_cancelled()  # the connect may have swallowed one (see raise_if_cancelled)
            self._wakeup.clear()
            pending = await asyncio.to_thread(self._unsent)
            if not pending:
                try:
                    async with asyncio.timeout(self._poll_interval_s):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
                continue
            # Publish calls hand packets to the socket in call order, so id order is kept on the
            # wire; awaiting them together lets the PUBACKs of a batch overlap.
            await asyncio.gather(
                *(client.publish(p.topic, p.payload, qos=p.qos, retain=p.retain) for p in pending)
            )
            raise_if_cancelled()
            await asyncio.to_thread(self._mark_sent, [p.id for p in pending])
            self.stats.published += len(pending)

    def _unsent(self) -> list[_Pending]:
        with self._session_factory() as session:
            rows = session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.sent_at.is_(None))
                .order_by(OutboundMessage.id)
                .limit(self._batch_max)
            ).all()
            return [_Pending(r.id, r.topic, r.payload, r.qos, r.retain) for r in rows]

    def _mark_sent(self, ids: list[int]) -> None:
        with self._session_factory() as session, session.begin():
            session.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id.in_(ids))
                .values(sent_at=datetime.now(UTC))
            )
