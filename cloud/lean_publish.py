"""Receiving PUBLISH packets without paho's per-packet MQTT 5 ``Properties`` object.

paho-mqtt 2.2 decodes every incoming MQTT 5 PUBLISH into a ``Properties`` instance, whose
constructor rebuilds two tables of every property MQTT 5 defines: a third of an ingest worker's
CPU at ~1,000 messages/s (py-spy on ``bench.ingest``), for packets that carry no properties at
all. Ingest reads none of them (the message id travels in the payload), so for the common case --
a QoS 1 PUBLISH with an empty property block -- the packet is decoded here, a few slices, and
handed to the same callbacks; ``message.properties`` is then None. Anything else (QoS 0 or 2,
properties present, a packet too short to be well formed) takes paho's own path unchanged.

This replaces one private method on one paho client instance, the ingest client's; paho is pinned
(``paho-mqtt==2.2.0``) and ``tests/cloud/test_ingest_lean_publish.py`` compares both decoders.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode


def lean_publish_handler(client: paho.Client) -> Callable[[], MQTTErrorCode]:
    """A drop-in for ``client._handle_publish`` that skips empty MQTT 5 property blocks."""
    paho_path: Callable[[], MQTTErrorCode] = client._handle_publish

    def handle_publish() -> MQTTErrorCode:
        header: int = client._in_packet["command"]
        packet: bytes | bytearray = client._in_packet["packet"]
        qos = (header & 0x06) >> 1
        size = len(packet)
        if qos != 1 or size < 2:
            return paho_path()
        pos = 2 + int.from_bytes(packet[0:2], "big")
        if pos == 2 or size < pos + 3 or packet[pos + 2] != 0:  # empty topic / short / properties
            return paho_path()
        message = paho.MQTTMessage(
            mid=int.from_bytes(packet[pos : pos + 2], "big"), topic=bytes(packet[2:pos])
        )
        message.dup = bool(header & 0x08)
        message.qos = 1
        message.retain = bool(header & 0x01)
        message.properties = None
        message.payload = bytes(packet[pos + 3 :])
        message.timestamp = time.monotonic()  # paho's own clock for message timestamps
        client._handle_on_message(message)
        if client._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return client._send_puback(message.mid)

    return handle_publish


def use_lean_publish(client: aiomqtt.Client) -> None:
    """Make ``client`` decode its incoming QoS 1 PUBLISH packets with :func:`lean_publish_handler`.

    Call before connecting. Raises TypeError unless ``client`` speaks MQTT 5 (an MQTT 3 PUBLISH
    has no property block to skip).
    """
    inner = client._client
    if inner.protocol != paho.MQTTv5:
        raise TypeError("lean PUBLISH decoding is for MQTT 5 clients only")
    inner._handle_publish = lean_publish_handler(inner)  # type: ignore[method-assign]
