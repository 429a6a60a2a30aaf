"""Receiving PUBLISH packets cheaply: the ingest client's per-message costs inside paho.

Three costs of paho-mqtt 2.2 that py-spy showed in an ingest worker at ~1,000 messages/s, each
taken off here for the ingest client alone:

- paho decodes every incoming MQTT 5 PUBLISH into a ``Properties`` instance, whose constructor
  rebuilds two tables of every property MQTT 5 defines: a third of the worker's CPU, for packets
  that carry no properties at all. Ingest reads none of them (the message id travels in the
  payload), so for the common case -- a QoS 1 PUBLISH with an empty property block -- the packet
  is decoded here, a few slices, and handed to the same callbacks; ``message.properties`` is then
  None. Anything else (QoS 0 or 2, properties present, a packet too short to be well formed)
  takes paho's own path unchanged.
- paho dispatches each message by walking its tree of per-topic callbacks, even when it is empty
  (aiomqtt registers none): then ``on_message`` is called directly.
- paho reads each packet with several ``recv`` calls and one packet per readable event
  (:class:`BufferedReads`).

This replaces private methods on one paho client instance, the ingest client's; paho is pinned
(``paho-mqtt==2.2.0``) and ``tests/cloud/test_ingest_lean_publish.py`` compares the results with
paho's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.client import MQTT_LOG_ERR
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
        if client._on_message_filtered._root._children:  # per-topic callbacks: paho's dispatch
            client._handle_on_message(message)
        else:  # paho's dispatch walks its (empty) topic tree first: 7 % of a worker's CPU
            _deliver(client, message)
        if client._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return client._send_puback(message.mid)

    return handle_publish


def _deliver(client: paho.Client, message: paho.MQTTMessage) -> None:
    """``on_message(message)`` as paho's ``_handle_on_message`` calls it, errors included."""
    on_message = client.on_message
    if on_message is None:
        return
    with client._in_callback_mutex:
        try:
            on_message(client, client._userdata, message)
        except Exception as err:
            client._easy_log(MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
            if not client.suppress_exceptions:
                raise


class BufferedReads:
    """Socket reads for ``client`` in chunks of ``chunk`` bytes, and every buffered packet handled
    per readable event.

    paho reads a packet with three or more ``recv`` calls (its first byte, each byte of its
    length, then the rest), and ``loop_read`` handles one packet per call: aiomqtt calls it once
    per readable event, so every message cost a wake-up and several system calls. Here ``recv``
    is served from one large read, the way a buffered file is, and ``loop_read`` goes on until
    the socket has nothing more. With the direct ``on_message`` above, the receive path fell
    from 27 % to 10 % of a worker's py-spy samples in ``bench.ingest``.

    That loop is bounded: the broker sends at most Receive Maximum unacknowledged PUBLISH
    packets, and ingest acknowledges only after a commit, which cannot happen inside this call.
    """

    def __init__(self, client: paho.Client, *, chunk: int = 256 * 1024) -> None:
        self._client = client
        self._chunk = chunk
        self._recv: Callable[[int], bytes] = client._sock_recv
        self._sock: object = None  # the socket the buffer was filled from
        self._buffer = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes, as ``socket.recv`` would (the same errors when empty)."""
        if self._sock is not self._client._sock:  # a new connection: nothing buffered is its
            self._sock, self._buffer, self._pos = self._client._sock, b"", 0
        if self._pos >= len(self._buffer):
            data = self._recv(max(bufsize, self._chunk))
            if len(data) <= bufsize:
                return data
            self._buffer, self._pos = data, 0
        start = self._pos
        self._pos = min(len(self._buffer), start + bufsize)
        return self._buffer[start : self._pos]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's ``loop_read``, except that it reads until nothing is left (``max_packets`` is
        ignored, as paho 2 itself ignores it)."""
        client = self._client
        while True:
            if client._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = client._packet_read()
            if rc > 0:
                return client._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS


def use_lean_publish(client: aiomqtt.Client) -> None:
    """Make ``client`` decode its incoming QoS 1 PUBLISH packets with :func:`lean_publish_handler`.

    Call before connecting. Raises TypeError unless ``client`` speaks MQTT 5 (an MQTT 3 PUBLISH
    has no property block to skip).
    """
    inner = client._client
    if inner.protocol != paho.MQTTv5:
        raise TypeError("lean PUBLISH decoding is for MQTT 5 clients only")
    inner._handle_publish = lean_publish_handler(inner)  # type: ignore[method-assign]
    use_buffered_reads(inner)


def use_buffered_reads(client: paho.Client) -> BufferedReads:
    """Make ``client`` read its socket through a :class:`BufferedReads`."""
    reads = BufferedReads(client)
    client._sock_recv = reads.recv  # type: ignore[method-assign]
    client.loop_read = reads.loop_read  # type: ignore[method-assign]
    return reads
