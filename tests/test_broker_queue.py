"""The broker must never drop QoS 1 messages a publisher was told it accepted.

Mosquitto's default ``max_queued_messages 1000`` drops messages queued for a subscriber that is behind
(here: offline with a persistent session) after PUBACKing them. The control case proves this test can
see that loss; the real case proves the config we generate does not have it.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.broker import MosquittoBroker

N = 5000


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )


def _persistent_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    return props


def _deliver_to_lagging_subscriber(broker: MosquittoBroker) -> int:
    subscribed = threading.Event()
    sub = _client("slow-sub")
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect(broker.host, broker.port, clean_start=False, properties=_persistent_props())
    sub.loop_start()
    result, _ = sub.subscribe("load/#", qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert subscribed.wait(10), "no SUBACK"
    sub.disconnect()  # the subscriber falls behind: it is away while the publisher runs
    sub.loop_stop()

    pub = _client("fast-pub")
    pub.max_inflight_messages_set(100)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    infos = [pub.publish("load/x", str(i).encode(), qos=1) for i in range(N)]
    for info in infos:
        info.wait_for_publish(timeout=30)
    assert all(info.is_published() for info in infos), "publisher did not get every PUBACK"
    pub.disconnect()
    pub.loop_stop()

    received: set[int] = set()
    back = _client("slow-sub")
    back.on_message = lambda c, u, m: received.add(int(m.payload))
    back.connect(broker.host, broker.port, clean_start=False, properties=_persistent_props())
    back.loop_start()
    deadline = time.monotonic() + 30
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline and len(received) < N:
        if len(received) != last:
            last, stable_since = len(received), time.monotonic()
        elif time.monotonic() - stable_since > 2.0:
            break  # nothing more is coming
        time.sleep(0.05)
    back.disconnect()
    back.loop_stop()
    return len(received)


def test_generated_config_loses_nothing_for_a_subscriber_that_falls_behind(tmp_path) -> None:
    with MosquittoBroker(data_dir=tmp_path / "b") as broker:
        assert "max_queued_messages 0" in broker.config_path.read_text()
        assert _deliver_to_lagging_subscriber(broker) == N


@pytest.mark.slow
def test_control_mosquittos_default_queue_limit_silently_drops(tmp_path) -> None:
    with MosquittoBroker(data_dir=tmp_path / "b", queue_limit=1000) as broker:
        delivered = _deliver_to_lagging_subscriber(broker)
    assert delivered < N, "the control should lose messages; if not, this test proves nothing"


def _received_after_restart(broker: MosquittoBroker, topic_filter: str) -> list[bytes]:
    """Subscribe persistently, go away, restart the broker, publish, come back: what arrives?"""
    subscribed = threading.Event()
    sub = _client("restart-sub")
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.connect(broker.host, broker.port, clean_start=False, properties=_persistent_props())
    sub.loop_start()
    sub.subscribe(topic_filter, qos=1)
    assert subscribed.wait(10), "no SUBACK"
    sub.disconnect()
    sub.loop_stop()
    broker.restart()
    pub = _client("restart-pub")
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    pub.publish("load/x", b"published after the restart", qos=1).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    got: list[bytes] = []
    back = _client("restart-sub")
    back.on_message = lambda c, u, m: got.append(bytes(m.payload))
    back.connect(broker.host, broker.port, clean_start=False, properties=_persistent_props())
    back.loop_start()
    deadline = time.monotonic() + 3  # a bounded wait: the negative case has nothing to wait for
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    back.disconnect()
    back.loop_stop()
    return got


def test_a_plain_persistent_subscription_survives_a_broker_restart(tmp_path) -> None:
    """Why the hub's single ingest worker subscribes plainly by default (cloud/ingest.py)."""
    with MosquittoBroker(data_dir=tmp_path / "b", persistence=True) as broker:
        assert _received_after_restart(broker, "load/#") == [b"published after the restart"]


def test_mosquitto_2_does_not_restore_shared_subscriptions_after_a_restart(tmp_path) -> None:
    """The known hole in scaling ingest out on Mosquitto: a shared subscription is gone after a
    broker restart until its workers re-subscribe, and what is published meanwhile is lost. If this
    test starts failing, Mosquitto fixed it and shared ingest can become the default again."""
    with MosquittoBroker(data_dir=tmp_path / "b", persistence=True) as broker:
        assert _received_after_restart(broker, "$share/hub/load/#") == []
