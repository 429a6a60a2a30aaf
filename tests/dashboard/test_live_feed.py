"""The live feed shows the page only what it has a view of, and no device message can stop it.

A van's command ack once reached the feed (ingest reads ``fleet/+/cmd/ack``, and the feed took the
same topic list): it had no page view, raised, and took the whole hub's task group down with it.
Now the feed reads acks on purpose, for one of them: a van acknowledging its route (the page's
planned routes turn ``acknowledged``). Every other command's ack is skipped, and counted.
"""

from __future__ import annotations

import uuid

from cloud.dashboard.live import LiveFeed, LiveHub, live_subscriptions
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import CommandAck
from protocol.topics import Channel, DeviceKind, subscription, vehicle_topic


def test_a_route_ack_is_a_page_update_and_any_other_ack_is_skipped() -> None:
    assert subscription(DeviceKind.VEHICLE, Channel.CMD_ACK) in live_subscriptions()
    assert subscription(DeviceKind.VEHICLE, Channel.TELEMETRY) in live_subscriptions()

    hub = LiveHub()
    feed = LiveFeed(settings=MqttSettings(port=1), client_id="t", hub=hub)
    topic = vehicle_topic("van-1", Channel.CMD_ACK)
    with hub.subscribe() as page:
        other = CommandAck(device_id="van-1", command_id=uuid.uuid4(), ok=True, name="locate")
        assert feed.handle(topic, encode(other)) is None
        route_id = uuid.uuid4()
        ack = CommandAck(device_id="van-1", command_id=route_id, ok=True, name="route")
        update = feed.handle(topic, encode(ack))
        assert update is not None and page._queue.qsize() == 1
    assert update.kind == "route_ack"
    assert update.data == {
        "vehicle_id": "van-1",
        "route_id": str(route_id),
        "ok": True,
        "reason": "",
    }
    assert (feed.received, feed.skipped, feed.rejected) == (1, 1, 0)
    assert feed.handle(topic, b'{"type": "cmd_ack"}') is None  # garbage is still refused
    assert feed.rejected == 1
