"""The ingest client's lean PUBLISH decoding hands the callbacks what paho's own decoding does."""

from __future__ import annotations

import socket

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.lean_publish import BufferedReads, lean_publish_handler

Decoded = tuple[bytes, int, int, bool, bool, bytes, bool]


def _packet(
    *, topic: bytes, mid: int, qos: int, retain: bool, dup: bool, payload: bytes, props: bytes
) -> tuple[int, bytes]:
    """(first header byte, rest after the remaining length) of an MQTT 5 PUBLISH."""
    header = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = len(topic).to_bytes(2, "big") + topic
    if qos > 0:
        body += mid.to_bytes(2, "big")
    return header, body + props + payload


def _received(header: int, packet: bytes, *, lean: bool) -> tuple[list[Decoded], MQTTErrorCode]:
    """What an MQTT 5 client with manual acks hands its on_message for one PUBLISH."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    seen: list[Decoded] = []

    def on_message(_c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        has_props = m.properties is not None and bool(m.properties.json())  # type: ignore[no-untyped-call]
        seen.append((m.topic.encode(), m.mid, m.qos, m.retain, m.dup, bytes(m.payload), has_props))

    client.on_message = on_message
    client._in_packet = {"command": header, "packet": packet}  # type: ignore[typeddict-item]
    handle = lean_publish_handler(client) if lean else client._handle_publish
    return seen, handle()


_user_property = b"\x26" + b"\x00\x01k" + b"\x00\x01v"


@given(
    topic=st.sampled_from([b"fleet/van-1/telemetry", b"lockers/l-1/status", b"a"]),
    mid=st.integers(min_value=1, max_value=65_535),
    qos=st.sampled_from([0, 1, 2]),
    retain=st.booleans(),
    dup=st.booleans(),
    payload=st.binary(max_size=64),
    props=st.sampled_from([b"\x00", bytes([len(_user_property)]) + _user_property]),
)
def test_lean_and_paho_decoding_agree(
    topic: bytes, mid: int, qos: int, retain: bool, dup: bool, payload: bytes, props: bytes
) -> None:
    header, packet = _packet(
        topic=topic, mid=mid, qos=qos, retain=retain, dup=dup, payload=payload, props=props
    )
    lean, lean_rc = _received(header, packet, lean=True)
    paho_, paho_rc = _received(header, packet, lean=False)
    if qos == 2:  # paho keeps QoS 2 messages until PUBREL: both paths send the PUBREC alike
        assert lean == paho_ == []
        return
    assert lean == paho_
    assert len(lean) == 1
    assert lean_rc == paho_rc


def test_a_publish_with_properties_keeps_them() -> None:
    header, packet = _packet(
        topic=b"fleet/van-1/telemetry",
        mid=7,
        qos=1,
        retain=False,
        dup=False,
        payload=b"{}",
        props=bytes([len(_user_property)]) + _user_property,
    )
    seen, _ = _received(header, packet, lean=True)
    assert seen == [(b"fleet/van-1/telemetry", 7, 1, False, False, b"{}", True)]


def test_a_truncated_publish_is_refused_as_paho_refuses_it() -> None:
    header, packet = 0x32, b"\x00\x10fleet"  # topic length 16, 5 bytes of topic
    with pytest.raises(Exception) as paho_err:
        _received(header, packet, lean=False)
    with pytest.raises(type(paho_err.value)):
        _received(header, packet, lean=True)


def test_properties_are_decoded_by_paho_for_a_publish_that_has_them() -> None:
    """Sanity of the fixture: paho sees the user property the packets above carry."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.unpack(bytes([len(_user_property)]) + _user_property)  # type: ignore[no-untyped-call]
    assert getattr(props, "UserProperty") == [("k", "v")]  # noqa: B009 - set dynamically


def _wire(topic: bytes, mid: int, payload: bytes) -> bytes:
    """One QoS 1 MQTT 5 PUBLISH as sent: header byte, remaining length, body."""
    header, body = _packet(
        topic=topic, mid=mid, qos=1, retain=False, dup=False, payload=payload, props=b"\x00"
    )
    length, n = b"", len(body)
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([header]) + length + body


def _reading_client() -> tuple[paho.Client, list[tuple[int, bytes]], socket.socket]:
    """An MQTT 5 client reading through BufferedReads from one end of a socket pair."""
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5, manual_ack=True)
    seen: list[tuple[int, bytes]] = []
    client.on_message = lambda _c, _u, m: seen.append((m.mid, bytes(m.payload)))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    client._handle_publish = lean_publish_handler(client)  # type: ignore[method-assign]
    reads = BufferedReads(client, chunk=1000)
    client._sock_recv = reads.recv  # type: ignore[method-assign]
    client.loop_read = reads.loop_read  # type: ignore[method-assign]
    return client, seen, theirs


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=5),
)
def test_buffered_reads_hand_over_every_packet_whatever_the_read_boundaries(
    sizes: list[int], cuts: list[int]
) -> None:
    """Packets larger and smaller than the read chunk, arriving in pieces cut anywhere: each
    readable event hands over every complete packet, none twice, in order."""
    client, seen, theirs = _reading_client()
    sent = [(i + 1, bytes([i % 251]) * n) for i, n in enumerate(sizes)]
    stream = b"".join(_wire(b"fleet/van-1/telemetry", mid, p) for mid, p in sent)
    points = sorted({c for c in cuts if c < len(stream)})
    with theirs:
        for start, end in zip([0, *points], [*points, len(stream)], strict=True):
            theirs.sendall(stream[start:end])
            assert client.loop_read() == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert seen == sent


def test_buffered_reads_report_a_closed_connection() -> None:
    client, seen, theirs = _reading_client()
    theirs.sendall(_wire(b"fleet/van-1/telemetry", 1, b"x"))
    theirs.close()
    assert client.loop_read() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert seen == [(1, b"x")]


def test_per_topic_callbacks_still_get_their_messages() -> None:
    """The direct on_message call is only for clients without per-topic callbacks."""
    client, seen, theirs = _reading_client()
    routed: list[int] = []
    client.message_callback_add("fleet/+/telemetry", lambda _c, _u, m: routed.append(m.mid))
    with theirs:
        theirs.sendall(_wire(b"fleet/van-1/telemetry", 5, b"{}") + _wire(b"other", 6, b"{}"))
        client.loop_read()
    assert routed == [5]
    assert seen == [(6, b"{}")]
