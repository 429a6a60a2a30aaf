"""The agent's link to the broker: one MQTT 5 session that drains the outbox and receives commands.

- Persistent session (clean start off, session expiry set), so QoS 1 messages for the device are queued
  by the broker while it is away.
- Retained status with a last will: the broker itself marks the device offline if it vanishes.
- Outbox rows are deleted only after their PUBACK; after a reconnect unacknowledged rows are sent again,
  and the hub drops the repeats by message id.
- Incoming QoS 1 messages are acknowledged only after the handler returned, so a crash in between means
  a redelivery, not a loss.
- Reconnects with exponential backoff and jitter; never gives up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.backoff import Backoff
from edge.mqtt import connected, in_own_task, make_client, raise_if_cancelled
from edge.outbox import Outbox, OutboxEntry
from edge.settings import MqttSettings

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


@dataclass
class UplinkStats:
    connects: int = 0
    published: int = 0
    received: int = 0
    refused: int = 0
    last_error: str = ""


class Uplink:
    """Owns one device's broker connection. Run it with :meth:`run` inside the agent's task group."""

    def __init__(
        self,
        *,
        client_id: str,
        settings: MqttSettings,
        outbox: Outbox,
        status_topic: str,
        status_payload: Callable[[bool], bytes],
        subscriptions: Sequence[str] = (),
        handler: Handler | None = None,
        window: int = 100,
        status_interval_s: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        if subscriptions and handler is None:
            raise ValueError("subscriptions need a handler for the messages they bring")
        self._client_id = client_id
        self._settings = settings
        self._outbox = outbox
        self._status_topic = status_topic
        self._status_payload = status_payload
        self._subscriptions = tuple(subscriptions)
        self._handler = handler
        self._window = window
        self._status_interval_s = status_interval_s
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self._wakeup = asyncio.Event()
        self._status_now = asyncio.Event()
        self._connected = asyncio.Event()
        self.stats = UplinkStats()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def wake(self) -> None:
        """Tell the drain loop that the outbox has something new."""
        self._wakeup.set()

    def refresh_status(self) -> None:
        """Publish the retained status now rather than at the next interval, because something in it
        changed (a receiver lost its fix). Coalesces: many calls before the next publish send one.
        While offline this does nothing extra: connecting publishes the current status anyway."""
        self._status_now.set()

    def _client(self) -> aiomqtt.Client:
        client = make_client(
            settings=self._settings,
            client_id=self._client_id,
            # aiomqtt acknowledges on receipt; we acknowledge after the handler has stored it.
            manual_ack=True,
            will=aiomqtt.Will(self._status_topic, self._status_payload(False), qos=1, retain=True),
            max_inflight=self._window,
        )
        return client

    async def run(self) -> None:
        """Stay connected until cancelled; on cancellation publish offline status and disconnect."""
        while True:
            try:
                await in_own_task(self._session())
            except* aiomqtt.MqttError as group:
                err = group.exceptions[0]
                self.stats.last_error = str(err)
                log.warning("broker connection lost (%s); reconnecting", err)
            self._connected.clear()
            raise_if_cancelled()  # aiomqtt on Python 3.11 can turn a cancellation into MqttError
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        client = self._client()
        pubacks = _PubackWatch(client)
        async with connected(client):
            self.stats.connects += 1
            self._backoff.reset()
            # Subscribe before announcing "online": a peer that reacts to our status by sending us
            # something must find the subscription (and so the persistent session) in place.
            for topic_filter in self._subscriptions:
                await client.subscribe(topic_filter, qos=1)
            self._status_now.clear()  # the status published next is the current one
            await client.publish(self._status_topic, self._status_payload(True), qos=1, retain=True)
            self._connected.set()
            log.info(
                "connected to %s:%s as %s",
                self._settings.host,
                self._settings.port,
                self._client_id,
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._drain(pubacks), name="uplink-drain")
                    tg.create_task(self._refresh_status(client), name="uplink-status")
                    # Always iterate incoming messages: the iterator is also what notices a lost
                    # connection, which in-flight publishes alone would only see at their timeout.
                    tg.create_task(self._receive(client), name="uplink-receive")
            except asyncio.CancelledError:
                await self._say_goodbye(client)
                raise

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        """A clean disconnect does not fire the will, so publish offline status ourselves."""
        try:
            async with asyncio.timeout(2):
                await client.publish(
                    self._status_topic, self._status_payload(False), qos=1, retain=True
                )
        except (aiomqtt.MqttError, TimeoutError):
            pass

    async def _drain(self, pubacks: _PubackWatch) -> None:
        while True:
            self._wakeup.clear()
            entries = self._outbox.peek(self._window)
            if not entries:
                await self._wakeup.wait()
                continue
            delivered: list[int] = []
            try:
                async with asyncio.TaskGroup() as tg:
                    for e in entries:
                        tg.create_task(self._send(pubacks, e, delivered))
            finally:
                # Also when the connection drops mid-window: what the broker took is not re-sent.
                if delivered:
                    self._outbox.ack(delivered)
                    self.stats.published += len(delivered)

    async def _send(self, pubacks: _PubackWatch, entry: OutboxEntry, delivered: list[int]) -> None:
        reason = await pubacks.publish(entry)
        if not reason:
            delivered.append(entry.seq)
            return
        # The broker will never deliver this one (not authorised, ...); Mosquitto 2.0 even drops the
        # connection after saying so. Retrying cannot help and would block every message behind it,
        # so it is set aside at once with the broker's reason: counted and reported, not lost.
        log.error("broker refused outbox message %d on %s: %s", entry.seq, entry.topic, reason)
        self._outbox.refuse(entry.seq, reason)
        self.stats.refused += 1

    async def _refresh_status(self, client: aiomqtt.Client) -> None:
        """Status is state, not history: it bypasses the outbox and is simply re-sent while online,
        every ``status_interval_s`` or at once after :meth:`refresh_status`."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._status_interval_s):
                    await self._status_now.wait()
            self._status_now.clear()
            await client.publish(self._status_topic, self._status_payload(True), qos=1, retain=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if self._handler is not None:
                await self._handler(message.topic.value, payload)
            self.stats.received += 1
            if message.qos > 0:
                client._client.ack(message.mid, message.qos)


class _PubackWatch:
    """Publishes outbox entries and returns the broker's verdict from the PUBACK.

    aiomqtt 2.5 resolves ``publish()`` on any PUBACK, including MQTT 5 failure reason codes such as
    "Not authorized" (0x87) or "Packet too large" (0x95): a message the broker refused would count as
    sent. So this publishes through paho directly and reads the reason code in ``on_publish``,
    chaining aiomqtt's own callback for the calls that still go through it (status).
    """

    def __init__(self, client: aiomqtt.Client) -> None:
        self._paho = client._client
        self._waiting: dict[int, asyncio.Future[str]] = {}
        chained: Callable[..., None] | None = self._paho.on_publish

        def on_publish(c: Any, userdata: Any, mid: int, rc: ReasonCode, props: Any) -> None:
            verdict = rc.getName() if rc.is_failure else ""
            fut = self._waiting.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(verdict)
            if chained is not None:
                chained(c, userdata, mid, rc, props)

        self._paho.on_publish = on_publish

    async def publish(self, entry: OutboxEntry) -> str:
        """Send one entry; return "" when the broker took it, else its refusal reason."""
        info = self._paho.publish(entry.topic, entry.payload, entry.qos, entry.retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "could not publish")
        if entry.qos == 0:
            return ""
        # Registering after paho's publish() is safe: under aiomqtt, paho reads the socket only in
        # the event loop's reader callback, so this PUBACK cannot have been handled yet.
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[info.mid] = fut
        try:
            return await fut  # a lost connection cancels this through the session's task group
        finally:
            self._waiting.pop(info.mid, None)
