"""Peak memory of the van agent while it runs the demo van: ``lastmile edge run`` with the shipped
config (``firmware_configs/van/van.toml``) switched to the simulated receiver, against a local
Mosquitto, for ``--seconds``. ``peak_rss_mib`` is the kernel's high-water mark of the agent process's
resident set (``VmHWM`` in ``/proc/<pid>/status``), read just before it is stopped.

``--time-scale`` runs the simulated van faster than real time (more fixes, events and batches per
second than a van ever makes: a harder case); ``--can`` adds the ``[can]`` section with the virtual
bus, whose simulated drive (python-can, cantools and the frame player) then runs inside the agent.

    python -m bench.edge_rss [--seconds 60] [--time-scale 1] [--can]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.broker import MosquittoBroker
from protocol.topics import Channel, DeviceKind, subscription

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "firmware_configs" / "van" / "van.toml"
DBC = ROOT / "tests" / "data" / "can" / "toyota_prius_2010_pt.dbc"
CAN_SECTION = f"""
[can]
interface = "virtual"
channel = "bench-rss"
dbc_file = "{DBC}"
signals = [
    {{ name = "GEAR", max_interval_s = 10 }},
    {{ name = "DOOR_OPEN_FR", alias = "door_fr", max_interval_s = 10 }},
    {{ name = "ENGINE_RPM", deadband = 50, max_interval_s = 2 }},
    {{ name = "SPEED", message = "SPEED", deadband = 0.5 }},
]
"""


class Listener:
    """Counts what the van publishes, to show the agent did its work while it was measured."""

    def __init__(self, host: str, port: int) -> None:
        self.counts = {"telemetry": 0, "events": 0}
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-rss"
        )
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe(subscription(DeviceKind.VEHICLE, Channel.TELEMETRY), qos=1)
        self.client.subscribe(subscription(DeviceKind.VEHICLE, Channel.EVENTS), qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        key = "events" if msg.topic.endswith(Channel.EVENTS.value) else "telemetry"
        with self._lock:
            self.counts[key] += 1

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--can", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="lastmile-rss-") as tmp:
        config = Path(tmp) / "van.toml"
        config.write_text(CONFIG.read_text() + (CAN_SECTION if args.can else ""))
        with MosquittoBroker(data_dir=Path(tmp) / "mosquitto") as broker:
            listener = Listener(broker.host, broker.port)
            env = dict(
                os.environ,
                LASTMILE_GNSS="sim",
                LASTMILE_STATE_DIR=str(Path(tmp) / "state"),
                LASTMILE_MQTT__HOST=broker.host,
                LASTMILE_MQTT__PORT=str(broker.port),
                LASTMILE_SIM__TIME_SCALE=str(args.time_scale),
            )
            (Path(tmp) / "state").mkdir()
            # -m from the checkout, so the code measured is this tree's, not an installed copy.
            agent = subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "edge", "run", "--config", str(config)],
                cwd=ROOT,
                env=env,
            )
            try:
                deadline = time.monotonic() + args.seconds
                rss_max = 0
                while time.monotonic() < deadline:
                    if agent.poll() is not None:
                        raise SystemExit(f"the agent exited with {agent.returncode}")
                    rss_max = max(rss_max, status_kib(agent.pid, "VmRSS"))
                    time.sleep(0.5)
                peak = status_kib(agent.pid, "VmHWM")
            finally:
                agent.send_signal(signal.SIGTERM)
                try:
                    agent.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait()
            time.sleep(0.2)
            listener.close()
    if listener.counts["telemetry"] == 0:
        raise SystemExit("the agent published no telemetry: the figure would mean nothing")
    print(
        f"agent ran {args.seconds:.0f} s (time scale {args.time_scale}, can={args.can}): "
        f"{listener.counts['telemetry']} telemetry and {listener.counts['events']} event messages",
        flush=True,
    )
    print(
        json.dumps(
            {
                "peak_rss_mib": round(peak / 1024, 1),
                "max_sampled_rss_mib": round(rss_max / 1024, 1),
                "seconds": args.seconds,
                "time_scale": args.time_scale,
                "can": args.can,
                "telemetry_messages": listener.counts["telemetry"],
                "event_messages": listener.counts["events"],
            }
        )
    )


if __name__ == "__main__":
    main()
