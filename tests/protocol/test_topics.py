import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import TopicError
from protocol.topics import (
    Channel,
    DeviceKind,
    locker_topic,
    parse_topic,
    shared,
    subscription,
    vehicle_topic,
)


def test_every_vehicle_and_locker_topic_round_trips() -> None:
    for channel in (
        Channel.TELEMETRY,
        Channel.EVENTS,
        Channel.STATUS,
        Channel.ROUTE,
        Channel.CMD,
        Channel.CMD_ACK,
    ):
        info = parse_topic(vehicle_topic("van-17", channel))
        assert (info.kind, info.device_id, info.channel) == (DeviceKind.VEHICLE, "van-17", channel)
    for channel in (Channel.EVENTS, Channel.STATUS, Channel.GRANTS, Channel.CMD, Channel.CMD_ACK):
        info = parse_topic(locker_topic("L042", channel))
        assert (info.kind, info.device_id, info.channel) == (DeviceKind.LOCKER, "L042", channel)


def test_the_layout_is_the_documented_one() -> None:
    assert vehicle_topic("van-1", Channel.TELEMETRY) == "fleet/van-1/telemetry"
    assert vehicle_topic("van-1", Channel.CMD_ACK) == "fleet/van-1/cmd/ack"
    assert locker_topic("L1", Channel.GRANTS) == "lockers/L1/grants"
    assert subscription(DeviceKind.VEHICLE, Channel.TELEMETRY) == "fleet/+/telemetry"
    assert shared("hub", "fleet/+/telemetry") == "$share/hub/fleet/+/telemetry"


@pytest.mark.parametrize("bad", ["", "a/b", "van+1", "van#", " van", "x" * 65, "-van", "ü"])
def test_ids_that_would_break_a_topic_are_refused(bad: str) -> None:
    with pytest.raises(TopicError, match="device id"):
        vehicle_topic(bad, Channel.TELEMETRY)


def test_a_channel_the_device_kind_lacks_is_refused() -> None:
    with pytest.raises(TopicError, match="has no grants"):
        vehicle_topic("van-1", Channel.GRANTS)
    with pytest.raises(TopicError, match="has no telemetry"):
        parse_topic("lockers/L1/telemetry")


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("fleet/van-1", "expected"),
        ("trucks/van-1/telemetry", "unknown root"),
        ("fleet/van-1/gossip", "unknown channel"),
        ("fleet/van+1/telemetry", "device id"),
        ("fleet/van-1/cmd/ack/extra", "unknown channel"),
    ],
)
def test_parse_topic_says_what_is_wrong(topic: str, reason: str) -> None:
    with pytest.raises(TopicError, match=reason):
        parse_topic(topic)


@given(st.text(max_size=80))
def test_parse_topic_raises_only_topic_error(topic: str) -> None:
    with contextlib.suppress(TopicError):
        parse_topic(topic)
