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
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.backoff import Backoff
from edge.outbox import Outbox
from edge.settings import MqttSettings

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]


@dataclass
class UplinkStats:
    connects: int = 0
    published: int = 0
    received: int = 0
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
        s = self._settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry_s
        tls: ssl.SSLContext | None = None
        if s.tls_ca_file is not None:
            tls = ssl.create_default_context(cafile=str(s.tls_ca_file))
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=self._client_id,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=s.keepalive_s,
            will=aiomqtt.Will(self._status_topic, self._status_payload(False), qos=1, retain=True),
            tls_context=tls,
            max_inflight_messages=self._window,
            timeout=30,
        )
        client.pending_calls_threshold = self._window + 10
        # aiomqtt acknowledges on receipt; we acknowledge after the handler has stored the message.
        client._client.manual_ack_set(True)
        return client

    async def run(self) -> None:
        """Stay connected until cancelled; on cancellation publish offline status and disconnect."""
        while True:
            try:
                await self._session()
            except* aiomqtt.MqttError as group:
                err = group.exceptions[0]
                self.stats.last_error = str(err)
                log.warning("broker connection lost (%s); reconnecting", err)
            self._connected.clear()
            await asyncio.sleep(self._backoff.next_delay())

    async def _session(self) -> None:
        async with self._client() as client:
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
                    tg.create_task(self._drain(client), name="uplink-drain")
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

    async def _drain(self, client: aiomqtt.Client) -> None:
        while True:
            self._wakeup.clear()
            entries = self._outbox.peek(self._window)
            if not entries:
                await self._wakeup.wait()
                continue
            async with asyncio.TaskGroup() as tg:
                for e in entries:
                    tg.create_task(client.publish(e.topic, e.payload, qos=e.qos, retain=e.retain))
            self._outbox.ack(e.seq for e in entries)
            self.stats.published += len(entries)

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
