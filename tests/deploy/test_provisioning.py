"""Provisioning, rotation and revocation of device accounts, against the running shipped broker."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cloud.broker import MosquittoBroker
from cloud.provision import ProvisionError, provision, revoke, rotate
from edge.config import VehicleSettings
from edge.mqtt import connected, make_client
from edge.outbox import Outbox
from edge.settings import load_settings
from edge.uplink import Uplink
from locker.settings import LockerSettings
from protocol.topics import Channel, DeviceKind, vehicle_topic

from .conftest import Fleet, ProbeFn, ProvisionFn
from .rig import WAIT_S, Probe, ProductionBroker

NOT_AUTHORIZED = "Not authorized"


def _bundle_settings(cls, device, port: int):
    settings = load_settings(cls, device.bundle.config)
    # The bundle names the real broker's port; only the port differs on this test broker.
    return settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"port": port})})


def test_a_bundle_is_private_and_holds_what_the_pi_needs(fleet: Fleet) -> None:
    bundle = fleet.van_a.bundle
    assert stat.S_IMODE(bundle.directory.stat().st_mode) == 0o700
    for path in (bundle.config, bundle.ca_cert):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    mqtt = tomllib.loads(bundle.config.read_text())["mqtt"]
    assert mqtt["username"] == "van-17"
    assert len(mqtt["password"]) >= 32
    assert Path(mqtt["tls_ca_file"]) == bundle.ca_cert
    assert "LASTMILE_CODE_KEY" in fleet.locker.bundle.config.read_text()


async def test_a_provisioned_van_connects_with_its_bundle_and_the_hub_receives_it(
    cloud: ProductionBroker, fleet: Fleet, hub: Probe
) -> None:
    settings = _bundle_settings(VehicleSettings, fleet.van_a, cloud.ports.tls)
    assert settings.device_id == "van-17" and settings.mqtt.tls_ca_file is not None
    hub.subscribe("$share/hub/fleet/+/telemetry")
    client = make_client(settings=settings.mqtt, client_id=settings.device_id, manual_ack=False)
    topic = vehicle_topic(settings.device_id, Channel.TELEMETRY)
    async with connected(client):
        await client.publish(topic, b"{}", qos=1)
    msg = await asyncio.to_thread(hub.expect, topic)
    assert msg.payload == b"{}"


async def test_a_provisioned_locker_connects_with_its_bundle_and_its_code_key_from_the_env(
    cloud: ProductionBroker, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LASTMILE_CODE_KEY", "ab" * 32)
    settings = _bundle_settings(LockerSettings, fleet.locker, cloud.ports.tls)
    client = make_client(settings=settings.mqtt, client_id=settings.device_id, manual_ack=False)
    async with connected(client):
        await client.subscribe(f"lockers/{settings.device_id}/grants", qos=1)


def test_rotate_refuses_the_old_password_and_accepts_the_new(
    cloud: ProductionBroker, fleet: Fleet, probe: ProbeFn, broker_dir: Path
) -> None:
    old = fleet.van_a.password
    bundle = rotate(
        device_id="van-17",
        broker_dir=broker_dir,
        out_dir=fleet.van_a.bundle.directory.parent,
        mqtt_host="127.0.0.1",
    )
    new = tomllib.loads(bundle.config.read_text())["mqtt"]["password"]
    assert new != old
    cloud.reload()
    assert probe(cloud.ports.tls, username="van-17", password=old).connect().getName() == (
        NOT_AUTHORIZED
    )
    assert not probe(cloud.ports.tls, username="van-17", password=new).connect().is_failure


def test_revoke_then_reload_refuses_the_device_at_once(
    cloud: ProductionBroker, fleet: Fleet, probe: ProbeFn, broker_dir: Path
) -> None:
    van = fleet.van_a
    online = probe(cloud.ports.tls, username=van.id, password=van.password)
    assert not online.connect().is_failure
    assert revoke(device_id=van.id, broker_dir=broker_dir) is DeviceKind.VEHICLE
    assert "van-17" not in (broker_dir / "acl").read_text()
    assert "van-18" in (broker_dir / "acl").read_text()
    cloud.reload()
    refused = probe(cloud.ports.tls, username=van.id, password=van.password, client_id="again")
    assert refused.connect().getName() == NOT_AUTHORIZED
    assert online.disconnected.wait(WAIT_S), "the revoked van's open connection stayed up"
    other = fleet.van_b
    assert (
        not probe(cloud.ports.tls, username=other.id, password=other.password).connect().is_failure
    )


def test_provisioning_refuses_duplicates_reserved_and_invalid_ids(
    fleet: Fleet, provision_device: ProvisionFn, broker_dir: Path, tmp_path: Path
) -> None:
    acl_before = (broker_dir / "acl").read_text()
    for kind, device_id in [
        (DeviceKind.VEHICLE, "van-17"),  # exists
        (DeviceKind.LOCKER, "van-17"),  # same username, other kind
        (DeviceKind.VEHICLE, "hub"),
        (DeviceKind.VEHICLE, "van/#"),
    ]:
        with pytest.raises(ProvisionError):
            provision_device(kind, device_id)
    with pytest.raises(ProvisionError, match="not provisioned"):
        revoke(device_id="van-99", broker_dir=broker_dir)
    with pytest.raises(ProvisionError, match="mqtt host"):
        provision(
            kind=DeviceKind.VEHICLE,
            device_id="van-20",
            broker_dir=broker_dir,
            out_dir=tmp_path,
            mqtt_host="mqtts://broker",
        )
    assert (broker_dir / "acl").read_text() == acl_before


def test_the_cli_prints_where_the_bundle_is_but_never_the_password(
    broker_dir: Path, tmp_path: Path
) -> None:
    """Through the real `lastmile provision ...` entry point, as a technician types it."""
    lastmile = [sys.executable, "-m", "edge.cli", "provision"]
    where = ["--broker-dir", str(broker_dir)]
    bundle = ["--out", str(tmp_path / "out"), "--mqtt-host", "broker.example.net"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*lastmile, *args], capture_output=True, text=True, timeout=60, check=False
        )

    made = run("vehicle", "van-30", *where, *bundle)
    assert made.returncode == 0, made.stderr
    rotated = run("rotate", "van-30", *where, *bundle)
    assert rotated.returncode == 0, rotated.stderr
    config = (tmp_path / "out" / "van-30" / "lastmile.toml").read_text()
    password = tomllib.loads(config)["mqtt"]["password"]
    gone = run("revoke", "van-30", *where)
    again = run("revoke", "van-30", *where)
    assert gone.returncode == 0 and again.returncode == 1
    assert "reload" in gone.stdout and "not provisioned" in again.stderr
    for done in (made, rotated, gone, again):
        assert password not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr


def test_the_demo_broker_can_be_reloaded() -> None:
    with MosquittoBroker() as broker:
        broker.reload()
        broker.reload()
        assert broker.running
    from cloud.errors import BrokerError

    with pytest.raises(BrokerError):
        broker.reload()


async def test_a_message_the_acl_refuses_is_set_aside_with_its_reason_not_counted_as_sent(
    cloud: ProductionBroker, fleet: Fleet, hub: Probe, tmp_path: Path
) -> None:
    """A van's outbox holding a message for a topic it may not write (here: another van's) gets an
    MQTT 5 PUBACK "Not authorized". That message must not be deleted as if delivered, nor block the
    messages behind it: it is set aside with the broker's reason."""
    settings = _bundle_settings(VehicleSettings, fleet.van_a, cloud.ports.tls)
    hub.subscribe("$share/hub/fleet/+/telemetry")
    outbox = Outbox(tmp_path / "o.db")
    own = vehicle_topic("van-17", Channel.TELEMETRY)
    outbox.put(own, b"before")
    foreign = outbox.put(vehicle_topic("van-18", Channel.TELEMETRY), b"spoof")
    outbox.put(own, b"after")
    uplink = Uplink(
        client_id=settings.device_id,
        settings=settings.mqtt,
        outbox=outbox,
        status_topic=vehicle_topic("van-17", Channel.STATUS),
        status_payload=lambda online: b"{}",
    )
    task = asyncio.create_task(uplink.run())
    try:
        async with asyncio.timeout(WAIT_S * 2):
            while len(outbox):
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    got = [(await asyncio.to_thread(hub.expect, own)).payload for _ in range(2)]
    assert got == [b"before", b"after"]
    assert outbox.refused() == [
        (foreign, vehicle_topic("van-18", Channel.TELEMETRY), NOT_AUTHORIZED)
    ]
    assert uplink.stats.refused == 1


def test_a_connection_open_with_a_rotated_password_is_dropped_at_the_reload(
    cloud: ProductionBroker, fleet: Fleet, probe: ProbeFn, broker_dir: Path
) -> None:
    """Mosquitto re-checks every connected client against the reloaded password file
    (``mosquitto_security_apply``), so a session opened with the old password does not outlive
    the rotation; the device reconnects with the new bundle's password."""
    van, other = fleet.van_a, fleet.van_b
    online = probe(cloud.ports.tls, username=van.id, password=van.password)
    assert not online.connect().is_failure
    bystander = probe(cloud.ports.tls, username=other.id, password=other.password)
    assert not bystander.connect().is_failure
    rotate(
        device_id=van.id,
        broker_dir=broker_dir,
        out_dir=van.bundle.directory.parent,
        mqtt_host="127.0.0.1",
    )
    assert not online.disconnected.wait(1.0), "dropped before the broker was told"
    cloud.reload()
    assert online.disconnected.wait(WAIT_S), "the old password's open connection stayed up"
    # The control: a reload alone drops nobody whose credentials still hold.
    assert not bystander.disconnected.wait(1.0), "the reload dropped an unchanged device"


def test_the_cli_records_each_device_in_the_hubs_registry_and_changes_nothing_without_it(
    broker_dir: Path, tmp_path: Path, database_url: str
) -> None:
    """`--database-url`: provision, rotate and revoke land in the registry the API lists; an
    unreachable database stops the command before the broker's files change."""
    from cloud.db import make_engine, make_session_factory
    from cloud.models import DeviceRecord

    lastmile = [sys.executable, "-m", "edge.cli", "provision"]
    where = ["--broker-dir", str(broker_dir), "--database-url", database_url]
    bundle = ["--out", str(tmp_path / "out"), "--mqtt-host", "broker.example.net"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*lastmile, *args], capture_output=True, text=True, timeout=60, check=False
        )

    def registry() -> dict[str, DeviceRecord]:
        engine = make_engine(database_url)
        try:
            with make_session_factory(engine)() as session:
                return {d.id: d for d in session.query(DeviceRecord)}
        finally:
            engine.dispose()

    for args in (
        ("vehicle", "van-40", *where, *bundle),
        ("locker", "locker-40", *where, *bundle),
        ("rotate", "locker-40", *where, *bundle),
        ("revoke", "van-40", *where),
    ):
        done = run(*args)
        assert done.returncode == 0, done.stderr
        assert "recorded" in done.stdout and "registry" in done.stdout
    found = registry()
    assert (found["van-40"].kind, found["van-40"].state) == ("vehicle", "revoked")
    assert found["van-40"].revoked_at is not None
    assert (found["locker-40"].kind, found["locker-40"].state) == ("locker", "active")
    assert found["locker-40"].rotated_at is not None

    acl_before = (broker_dir / "acl").read_text()
    dead = "postgresql+psycopg://nobody@127.0.0.1:1/hub?connect_timeout=5"  # nothing listens
    refused = run(
        "vehicle", "van-41", "--broker-dir", str(broker_dir), "--database-url", dead, *bundle
    )
    assert refused.returncode == 1
    assert "the hub database cannot be used, nothing changed" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (broker_dir / "acl").read_text() == acl_before
    assert not (tmp_path / "out" / "van-41").exists()
