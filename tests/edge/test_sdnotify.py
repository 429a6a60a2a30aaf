"""sd_notify on a real AF_UNIX datagram socket standing in for systemd's: READY once the agent has
reached a real Mosquitto, WATCHDOG=1 while its loop runs, silence while the loop is blocked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloud.broker import MosquittoBroker, free_port
from edge.sdnotify import NullNotifier, ServiceWatchdog, SocketNotifier, supervised
from edge.settings import MqttSettings
from locker.app import run_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.cloud.test_hub import _config as hub_config
from tests.locker.story import KEY, listening, settings_for, until

ROOT = Path(__file__).resolve().parents[2]


class ServiceManager:
    """The listening end of ``$NOTIFY_SOCKET``: every datagram with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="fake-systemd", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.received.append((time.monotonic(), data.decode()))

    def messages(self) -> list[str]:
        with self._lock:
            return [m for _, m in self.received]

    def times_of(self, message: str) -> list[float]:
        with self._lock:
            return [t for t, m in self.received if m == message]

    def ready(self) -> bool:
        return any(m.startswith("READY=1") for m in self.messages())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path / "notify.sock")
    yield manager
    manager.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    watchdog = ServiceWatchdog.from_environ({"WATCHDOG_USEC": "1000000"})
    assert isinstance(watchdog.notifier, NullNotifier)
    assert watchdog.interval_s is None


def test_the_ping_interval_is_half_the_watchdog_and_only_for_our_pid(tmp_path: Path) -> None:
    sock = str(tmp_path / "s")
    wd = ServiceWatchdog.from_environ({"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "4000000"})
    assert isinstance(wd.notifier, SocketNotifier)
    assert wd.interval_s == 2.0
    other = ServiceWatchdog.from_environ(
        {"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other.interval_s is None  # the watchdog is meant for another process (a parent shell)
    with pytest.raises(ValueError, match="NOTIFY_SOCKET"):
        ServiceWatchdog.from_environ({"NOTIFY_SOCKET": "relative/path"})


def test_an_abstract_socket_name_is_reached() -> None:
    name = f"lastmile-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(5)
    try:
        notifier = SocketNotifier("@" + name)
        notifier.notify("READY=1")
        assert server.recv(100) == b"READY=1"
        notifier.close()
    finally:
        server.close()


def test_a_send_that_fails_is_counted_not_raised(tmp_path: Path) -> None:
    notifier = SocketNotifier(str(tmp_path / "nobody-listens"))
    notifier.notify("WATCHDOG=1")
    assert notifier.failures == 1
    notifier.close()


def test_ready_waits_for_the_broker_and_pings_stop_while_the_loop_is_blocked(
    tmp_path: Path, systemd: ServiceManager
) -> None:
    """In-process: the real locker agent on mock pins, its broker started only after a while, then
    a synchronous sleep on the agent's own loop (a wedged loop) between pings."""
    broker = MosquittoBroker(data_dir=tmp_path / "mosquitto")
    mqtt = MqttSettings(host=broker.host, port=broker.port, reconnect_min_s=0.05,
                        reconnect_max_s=0.2)  # fmt: skip
    settings = settings_for(tmp_path, mqtt)
    watchdog = ServiceWatchdog(notifier=SocketNotifier(str(systemd.path)), interval_s=0.05)

    async def story() -> tuple[float, float, float]:
        locker = asyncio.create_task(
            run_locker(
                settings, pin_factory=MockLockerFactory(), keypad=SimKeypad(), watchdog=watchdog
            )
        )
        try:
            await until(lambda: len(systemd.times_of("WATCHDOG=1")) >= 5, what="pings")
            await asyncio.sleep(0.5)
            assert not systemd.ready(), "READY before the broker was reachable"
            broker.start()
            status = locker_topic("L1", Channel.STATUS)
            async with listening(mqtt, status) as presence:
                await until(systemd.ready, what="READY=1")
                # The retained "online" status was published before READY was sent.
                await until(lambda: len(presence.payloads) >= 1, what="online status")
            await asyncio.sleep(0.3)
            blocked_at = time.monotonic()
            time.sleep(1.0)  # the wedged loop under test: blocks every task on it
            unblocked_at = time.monotonic()
            await until(
                lambda: any(t > unblocked_at for t in systemd.times_of("WATCHDOG=1")),
                what="pings after the loop is free again",
            )
            return blocked_at, unblocked_at, time.monotonic()
        finally:
            locker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await locker
            broker.stop()

    blocked_at, unblocked_at, _ = asyncio.run(story())
    pings = systemd.times_of("WATCHDOG=1")
    # Nothing was sent during the block, beyond one ping racing its start.
    assert len([t for t in pings if blocked_at + 0.1 < t < unblocked_at]) == 0
    assert len([t for t in pings if t < blocked_at]) >= 10
    assert any(m.startswith("READY=1\nSTATUS=serving") for m in systemd.messages())
    assert systemd.messages()[-1] == "STOPPING=1"


def test_an_agent_that_never_reaches_its_broker_still_says_ready(systemd: ServiceManager) -> None:
    """A locker serves offline: it must not be killed as a failed start."""
    watchdog = ServiceWatchdog(notifier=SocketNotifier(str(systemd.path)), interval_s=None)

    async def story() -> None:
        never = asyncio.Event()
        main = asyncio.create_task(asyncio.sleep(30))
        feeder = asyncio.create_task(
            supervised(main, watchdog=watchdog, ready=never.wait, ready_timeout_s=0.2)
        )
        await until(systemd.ready, what="READY after the grace period")
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder

    asyncio.run(story())
    assert systemd.messages()[0] == "READY=1\nSTATUS=serving, not connected after 0.2 s"
    assert "WATCHDOG=1" not in systemd.messages()  # the unit has no watchdog: no pings


@pytest.mark.slow
def test_the_locker_command_talks_to_systemd_and_a_stopped_process_goes_silent(
    tmp_path: Path, systemd: ServiceManager, mqtt_settings: MqttSettings
) -> None:
    """``lastmile locker run`` as systemd starts it: NOTIFY_SOCKET and WATCHDOG_USEC in its
    environment. SIGSTOP freezes it as a wedged process would be; the pings stop."""
    config = tmp_path / "locker.toml"
    config.write_text(
        f'device_id = "L1"\ncode_key = "{KEY.hex()}"\ncompartments = 4\nkeypad = "sim"\n'
        f'state_dir = "{tmp_path}"\n'
        f'[mqtt]\nhost = "{mqtt_settings.host}"\nport = {mqtt_settings.port}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env |= {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "200000"}

    async def story() -> int:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge.cli", "locker", "run", "--config", str(config),
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await until(systemd.ready, timeout=20, what="READY=1")
            await until(lambda: len(systemd.times_of("WATCHDOG=1")) >= 5, what="pings")
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.3)  # a ping may be in flight
            stopped = time.monotonic()
            await asyncio.sleep(1.0)
            silent = [t for t in systemd.times_of("WATCHDOG=1") if t > stopped]
            proc.send_signal(signal.SIGCONT)
            assert silent == []
            resumed = time.monotonic()
            await until(
                lambda: any(t > resumed for t in systemd.times_of("WATCHDOG=1")), what="pings"
            )
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                return await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert asyncio.run(story()) == 0
    assert systemd.messages()[-1] == "STOPPING=1"


def _notified_run(
    argv: list[str], systemd: ServiceManager, *, ready_check: Callable[[], None]
) -> int:
    """Run a program as systemd would (NOTIFY_SOCKET, WATCHDOG_USEC), wait for READY, run
    ``ready_check`` (what READY promises must hold by then), see pings, stop it with SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env |= {"NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not systemd.ready():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no READY=1 within 30 s"
            time.sleep(0.02)
        ready_check()
        deadline = time.monotonic() + 10
        while len(systemd.times_of("WATCHDOG=1")) < 3:
            assert time.monotonic() < deadline, "no watchdog pings"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return proc.returncode


@pytest.mark.slow
def test_the_hub_says_ready_once_its_api_answers(
    tmp_path: Path, systemd: ServiceManager, broker: MosquittoBroker
) -> None:
    http_port = free_port()
    config = hub_config(tmp_path, mqtt_port=broker.port, http_port=http_port)

    def api_answers() -> None:
        with socket.create_connection(("127.0.0.1", http_port), timeout=5):
            pass  # READY was sent after the listening socket was up: this must not be refused

    _notified_run([sys.executable, "-m", "edge.cli", "hub", "serve", "--config", str(config)],
                  systemd, ready_check=api_answers)  # fmt: skip
    assert systemd.messages()[-1] == "STOPPING=1"


@pytest.mark.slow
def test_the_van_says_ready_once_its_uplink_is_connected(
    tmp_path: Path, systemd: ServiceManager, broker: MosquittoBroker
) -> None:
    config = tmp_path / "van.toml"
    config.write_text(
        f'device_id = "van-sd"\nstate_dir = "{tmp_path}"\ngnss = "sim"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
    )
    seen: list[str] = []

    def connected() -> None:
        # The van's retained "online" status is on the broker by the time READY is sent.
        out = subprocess.run(
            ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-C", "1", "-W", "5",
             "-t", vehicle_topic("van-sd", Channel.STATUS)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        seen.append(out.stdout)

    _notified_run([sys.executable, "-m", "edge.cli", "edge", "run", "--config", str(config)],
                  systemd, ready_check=connected)  # fmt: skip
    assert '"online":true' in seen[0].replace(" ", "")
