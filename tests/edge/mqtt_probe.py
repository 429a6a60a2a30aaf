"""A test subscriber: a real MQTT 5 client in a thread that records what the broker delivers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


class Probe:
    def __init__(self, host: str, port: int, topic: str, *, client_id: str = "probe") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self._client.on_message = self._on_message
        self._client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self._client.connect(host, port, clean_start=False, properties=props)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("probe could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def payloads(self, topic: str | None = None) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if topic is None or t == topic]

    def wait_for(self, predicate: Callable[[Probe], bool], *, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return
            time.sleep(0.02)
        raise AssertionError(f"condition not met within {timeout} s; got {len(self.messages)} msgs")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
