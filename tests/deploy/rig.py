"""The production broker config, started for real on free loopback ports, and MQTT 5 probes.

The shipped ``firmware_configs/mosquitto/*.conf`` are rendered with only paths, ports, the TLS
listener's bind address (loopback, so a test broker is never reachable from the network), the run-as
user (root cannot hand our temp dir to user mosquitto) and, for the bridge, the cloud's address and
the depot's password substituted. Each substituted line must occur exactly once: if the shipped file
changes shape, these tests fail instead of quietly testing something else.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from cloud.broker import find_mosquitto, free_port, wait_for_port
from cloud.errors import BrokerError

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "firmware_configs" / "mosquitto"
ETC = "/etc/mosquitto/lastmile/"
HOST = "127.0.0.1"
WAIT_S = 5.0  # upper bound for anything that should happen; negative checks wait NOT_RECEIVED_S
NOT_RECEIVED_S = 1.0


def require_tool(name: str, package: str) -> str:
    """Fail (never skip) when a tool of this tier is missing: a skipped tier hides from CI."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (or run ./scripts/test)")
    return found


def add_user(passwd: Path, username: str, password: str) -> None:
    """A service account (hub, depot bridge), set the way the field guide does it."""
    if not passwd.exists():
        passwd.touch(mode=0o600)
    subprocess.run(
        [require_tool("mosquitto_passwd", "mosquitto"), str(passwd), username],
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        check=True,
    )


def _substitute(text: str, replacements: dict[str, str]) -> str:
    lines = text.splitlines()
    for old, new in replacements.items():
        hits = [i for i, line in enumerate(lines) if line == old]
        assert len(hits) == 1, f"expected exactly one line {old!r} in the shipped config"
        lines[hits[0]] = new
    out = "\n".join(lines) + "\n"
    return out


@dataclass
class Ports:
    tls: int = field(default_factory=free_port)
    local: int = field(default_factory=free_port)
    has_local: bool = True

    def all(self) -> list[int]:
        return [self.tls, self.local] if self.has_local else [self.tls]


def render_broker_config(
    shipped: Path,
    *,
    etc_dir: Path,
    data_dir: Path,
    ports: Ports,
    extra: dict[str, str] | None = None,
) -> str:
    replacements = {
        "listener 8883": f"listener {ports.tls} {HOST}",
        "persistence_location /var/lib/mosquitto/": f"persistence_location {data_dir}/",
        "log_dest file /var/log/mosquitto/mosquitto.log": f"log_dest file {data_dir}/mosquitto.log",
    }
    ports.has_local = "listener 1883 127.0.0.1" in shipped.read_text().splitlines()
    if ports.has_local:
        replacements["listener 1883 127.0.0.1"] = f"listener {ports.local} {HOST}"
    if os.geteuid() == 0:
        replacements["user mosquitto"] = "user root"
    replacements.update(extra or {})
    text = _substitute(shipped.read_text(), replacements)
    assert text.count(ETC) >= 5, "the shipped config keeps its files elsewhere than expected"
    return text.replace(ETC, f"{etc_dir}/")


class ProductionBroker:
    """One Mosquitto process running a rendered shipped config."""

    def __init__(self, *, config: str, data_dir: Path, ports: Ports) -> None:
        self.ports = ports
        self.data_dir = data_dir
        self.config_path = data_dir / "mosquitto.conf"
        self.log_path = data_dir / "mosquitto.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProductionBroker:
        self._proc = subprocess.Popen(
            [find_mosquitto(), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            for port in self.ports.all():
                wait_for_port(HOST, port, timeout=10, proc=self._proc, what="mosquitto")
        except BrokerError as err:
            self.stop()
            raise AssertionError(f"{err}\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def reload(self) -> None:
        """SIGHUP, then wait until Mosquitto says it re-read its files (bounded)."""
        assert self._proc is not None
        before = self.log().count("Reloading config")
        self._proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT_S
        while self.log().count("Reloading config") <= before:
            assert time.monotonic() < deadline, f"no reload logged:\n{self.log()}"
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._proc = None


class Probe:
    """A paho MQTT 5 client that records what the broker answers. Not a production client."""

    def __init__(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        ca: Path | None = None,
        client_id: str | None = None,
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or username or "",
            protocol=mqtt.MQTTv5,
        )
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: ReasonCode | None = None
        self.error: Exception | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._acks: dict[int, object] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_ack

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        self.connected.set()

    def _on_ack(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:
            self._acks[mid] = reason_code
            self._acked.notify_all()

    def connect(self) -> ReasonCode | None:
        """The CONNACK reason, or None when no CONNACK came (``self.error`` says why, if known)."""
        try:
            self.client.connect(HOST, self.port, keepalive=30)
        except (ssl.SSLError, OSError) as err:
            self.error = err
            return None
        self.client.loop_start()
        deadline = time.monotonic() + WAIT_S
        while not self.connected.wait(0.02):
            if self.disconnected.is_set() or time.monotonic() > deadline:
                return None
        return self.connack

    def _wait_ack(self, mid: int) -> object:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, WAIT_S), "no acknowledgement"
            return self._acks.pop(mid)

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> str:
        """QoS 1; returns the PUBACK's reason name ("Success", "Not authorized", ...)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        ack = self._wait_ack(info.mid)
        assert isinstance(ack, ReasonCode)
        return ack.getName()

    def subscribe(self, topic_filter: str) -> list[str]:
        """QoS 1; returns the SUBACK's reason names."""
        result, mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS and mid is not None
        ack = self._wait_ack(mid)
        assert isinstance(ack, list)
        return [rc.getName() for rc in ack]

    def expect(self, topic: str, *, timeout: float = WAIT_S) -> mqtt.MQTTMessage:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"nothing received on {topic} within {timeout} s"
            try:
                msg = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if msg.topic == topic:
                return msg

    def received_nothing(self, *, within: float = NOT_RECEIVED_S) -> bool:
        try:
            msg = self.messages.get(timeout=within)
        except queue.Empty:
            return True
        self.messages.put(msg)
        return False

    def close(self) -> None:
        self.client.disconnect()  # also stops a refused client's reconnect attempts
        self.client.loop_stop()
