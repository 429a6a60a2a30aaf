"""The ingest client's lean PUBLISH decoding hands the callbacks what paho's own decoding does."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.lean_publish import lean_publish_handler

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
