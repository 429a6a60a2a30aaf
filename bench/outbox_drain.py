"""How fast a van's backlog drains once the broker is back: outbox -> Uplink -> real Mosquitto.

A van offline for ``--hours`` hours of 1 Hz positions (default 100 h, like 10 vans' 10-hour days:
360,000 points) queues them in :class:`edge.outbox.Outbox` as TelemetryBatch messages of 60 points,
encoded with :mod:`protocol.codec`. Then a Mosquitto comes up, a subscriber counts unique points by
(message id, seq), and :class:`edge.uplink.Uplink` drains the outbox. ``points_per_s`` = points / time
from the uplink's start until the subscriber holds every point.

    python -m bench.outbox_drain [--hours 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from cloud.broker import MosquittoBroker
from edge.outbox import Outbox
from edge.settings import MqttSettings
from edge.uplink import Uplink
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic

VAN = "van001"
BATCH = 60


class Counter:
    """A QoS 1 subscriber in paho's thread, counting points by (message id, seq)."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.seen: dict[tuple[str, int], int] = {}
        self.points_received = 0
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id="bench-counter",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not ready.wait(10):
            raise TimeoutError("counter could not subscribe")

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        n = len(body["points"])
        with self.lock:
            self.points_received += n
            self.seen[(body["id"], body["seq"])] = n

    def unique_points(self) -> int:
        with self.lock:
            return sum(self.seen.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def fill(outbox: Outbox, hours: float) -> tuple[int, int]:
    topic = vehicle_topic(VAN, Channel.TELEMETRY)
    start = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)
    total = int(hours * 3600)
    messages = 0
    for first in range(0, total, BATCH):
        points = tuple(
            Position(
                t=start + timedelta(seconds=i),
                lat=52.37 + (i % 3600) * 1e-5,
                lon=4.89 + (i % 3600) * 1e-5,
                speed_mps=8.3,
                heading_deg=90.0,
                hdop=0.9,
                sats=11,
                fix="3d",
            )
            for i in range(first, min(first + BATCH, total))
        )
        outbox.put(
            topic,
            lambda seq, pts=points: encode(TelemetryBatch(vehicle_id=VAN, seq=seq, points=pts)),  # type: ignore[misc]
        )
        messages += 1
    return total, messages


async def drain(outbox: Outbox, broker: MosquittoBroker, counter: Counter, total: int) -> float:
    uplink = Uplink(
        client_id=f"vehicle-{VAN}",
        settings=MqttSettings(host=broker.host, port=broker.port),
        outbox=outbox,
        status_topic=vehicle_topic(VAN, Channel.STATUS),
        status_payload=lambda online: b"online" if online else b"offline",
    )
    t0 = time.perf_counter()
    task = asyncio.create_task(uplink.run())
    deadline = time.monotonic() + 600
    while counter.unique_points() < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)  # the counter lives in paho's thread: poll it
    elapsed = time.perf_counter() - t0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=100.0, help="hours of 1 Hz positions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-outbox-") as tmp:
        path = Path(tmp) / "outbox.db"
        t0 = time.perf_counter()
        filler = Outbox(path, synchronous="NORMAL")  # filling is not what we measure
        total, messages = fill(filler, args.hours)
        filler.close()
        print(f"queued {total} points in {messages} messages in {time.perf_counter() - t0:.1f} s")
        outbox = Outbox(path)  # synchronous=FULL, as the agent runs it
        with MosquittoBroker(data_dir=Path(tmp) / "mosquitto") as broker:
            counter = Counter(broker.host, broker.port, vehicle_topic(VAN, Channel.TELEMETRY))
            print(f"broker up on {broker.port}; draining", flush=True)
            elapsed = asyncio.run(drain(outbox, broker, counter, total))
            time.sleep(0.3)  # let any redelivery arrive before counting duplicates
            counter.close()
        unique = counter.unique_points()
        lost = total - unique
        duplicated = counter.points_received - unique
        left = len(outbox)
        outbox.close()
        rate = unique / elapsed
        print(
            f"drained in {elapsed:.2f} s: {rate:,.0f} points/s, {messages / elapsed:,.0f} msgs/s; "
            f"lost {lost}, duplicated {duplicated}, left in outbox {left}"
        )
        print(
            json.dumps(
                {
                    "points_per_s": round(rate),
                    "lost": lost,
                    "duplicated": duplicated,
                    "messages": messages,
                    "points": total,
                    "seconds": round(elapsed, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
