"""The whole hub as it runs in production: migrations, ingest, dispatcher and a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cloud.broker import MosquittoBroker, free_port, wait_for_port
from cloud.errors import HubError
from cloud.hub import run_hub
from cloud.settings import Role
from edge.cli import build_parser
from edge.settings import MqttSettings
from protocol.codec import encode
from protocol.messages import DeviceStatus
from protocol.topics import Channel, locker_topic
from tests.cloud.helpers import KEYS, MASTER_SECRET, auth, eventually, hub_settings, mqtt_client


def test_the_hub_serves_ingests_and_stops_cleanly(
    broker: MosquittoBroker, mqtt_settings: MqttSettings, database_url: str
) -> None:
    port = free_port()
    settings = hub_settings(database_url=database_url, mqtt=mqtt_settings, http_port=port)

    async def story() -> None:
        started = asyncio.Event()
        hub = asyncio.create_task(run_hub(settings, started=started))
        try:
            async with asyncio.timeout(20):
                await started.wait()
            base = f"http://127.0.0.1:{port}/api/v1"
            async with httpx.AsyncClient(base_url=base, headers=auth(Role.OPS)) as api:
                assert (await api.get("/healthz")).json() == {"status": "ok"}
                async with mqtt_client(mqtt_settings, "locker-9") as locker:
                    status = DeviceStatus(
                        device_id="locker-9", kind="locker", online=True, compartments=3
                    )

                    # The ingest worker subscribes in its own time: repeat (same id) until seen.
                    async def seen() -> bool:
                        await locker.publish(
                            locker_topic("locker-9", Channel.STATUS), encode(status), qos=1
                        )
                        return (await api.get("/lockers/locker-9")).status_code == 200

                    await eventually(seen, what="locker-9 through the running hub")
                made = await api.post("/parcels", json={"locker_id": "locker-9"})
                assert made.status_code == 201
        finally:
            hub.cancel()
            async with asyncio.timeout(15):  # stopping is bounded, not a hang
                with contextlib.suppress(asyncio.CancelledError):
                    await hub
        with pytest.raises(OSError):  # the port is closed again
            _reader, _writer = await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(story())


def test_hub_serve_is_a_subcommand_of_lastmile() -> None:
    args = build_parser().parse_args(["hub", "serve", "--config", "hub.toml"])
    assert args.config == Path("hub.toml")
    assert callable(args.handler)


LASTMILE = [sys.executable, "-m", "edge.cli"]


def _config(tmp_path: Path, *, mqtt_port: int, http_port: int) -> Path:
    digest = hashlib.sha256(KEYS[Role.OPS].encode()).hexdigest()
    path = tmp_path / "hub.toml"
    path.write_text(
        f'database_url = "sqlite:///{tmp_path / "hub.db"}"\n'
        f'code_master_secret = "{MASTER_SECRET}"\n'
        f"http_port = {http_port}\n"
        f"[mqtt]\nport = {mqtt_port}\n"
        f'[api_keys]\n{digest} = "ops"\n'
    )
    return path


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_hub_serve_stops_on_a_signal_without_a_traceback(
    tmp_path: Path, broker: MosquittoBroker, stop: signal.Signals
) -> None:
    http_port = free_port()
    config = _config(tmp_path, mqtt_port=broker.port, http_port=http_port)
    log = tmp_path / "hub.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*LASTMILE, "hub", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port("127.0.0.1", http_port, timeout=30, what="hub")
        deadline = time.monotonic() + 10
        while "ingest subscribed" not in log.read_text():  # fully up: nothing half-done
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        proc.send_signal(stop)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = log.read_text()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "hub stopped" in err


def test_hub_serve_explains_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('code_master_secret = "changeme"\n')
    done = subprocess.run(
        [*LASTMILE, "hub", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "code_master_secret" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_taken_http_port_is_a_hub_error(mqtt_settings: MqttSettings, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = hub_settings(
            database_url=f"sqlite:///{tmp_path / 'hub.db'}", mqtt=mqtt_settings, http_port=port
        )
        with pytest.raises(HubError, match=f"could not start on 127.0.0.1:{port}"):
            asyncio.run(asyncio.wait_for(run_hub(settings), timeout=20))


def test_a_taken_port_is_explained_by_the_cli(tmp_path: Path, broker: MosquittoBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = _config(tmp_path, mqtt_port=broker.port, http_port=taken.getsockname()[1])
        done = subprocess.run(
            [*LASTMILE, "hub", "serve", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "could not start" in done.stderr
    assert "Traceback" not in done.stderr
