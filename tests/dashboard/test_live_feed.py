"""The live feed shows the page only what it has a view of, and no device message can stop it.

A van's command ack once reached the feed (ingest reads ``fleet/+/cmd/ack``, and the feed took the
same topic list): it had no page view, raised, and took the whole hub's task group down with it.
"""

from __future__ import annotations

import uuid

from cloud.dashboard.live import LiveFeed, LiveHub, live_subscriptions
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import CommandAck
from protocol.topics import Channel, DeviceKind, subscription, vehicle_topic


def test_a_command_ack_is_not_subscribed_and_is_skipped_if_it_arrives_anyway() -> None:
    assert subscription(DeviceKind.VEHICLE, Channel.CMD_ACK) not in live_subscriptions()
    assert subscription(DeviceKind.VEHICLE, Channel.TELEMETRY) in live_subscriptions()

    feed = LiveFeed(settings=MqttSettings(port=1), client_id="t", hub=LiveHub())
    ack = CommandAck(device_id="van-1", command_id=uuid.uuid4(), ok=True)
    assert feed.handle(vehicle_topic("van-1", Channel.CMD_ACK), encode(ack)) is None
    assert (feed.received, feed.rejected) == (0, 1)
