"""A depot broker running the shipped bridge-depot.conf forwards devices' messages to the cloud
broker (the shipped mosquitto.conf) and brings the hub's commands back."""

from __future__ import annotations

import secrets
import shutil
import time
from pathlib import Path

from protocol.topics import Channel, vehicle_topic

from .conftest import Fleet, ProbeFn
from .rig import SHIPPED, WAIT_S, Ports, Probe, ProductionBroker, add_user, render_broker_config


def _enable_depot_account(acl: Path, depot: str) -> None:
    """Uncomment the shipped example block, as the field guide says to."""
    example = [
        ln[1:] for ln in acl.read_text().splitlines() if ln.startswith(("#user ", "#topic "))
    ]
    example[0] = f"user {depot}"
    with acl.open("a") as f:
        f.write("\n" + "\n".join(example) + "\n")


def test_a_van_at_the_depot_reaches_the_hub_and_back(
    cloud: ProductionBroker,
    fleet: Fleet,
    broker_dir: Path,
    tmp_path: Path,
    probe: ProbeFn,
    hub: Probe,
) -> None:
    depot_password = secrets.token_urlsafe(24)
    add_user(broker_dir / "passwd", "depot-north", depot_password)
    _enable_depot_account(broker_dir / "acl", "depot-north")
    cloud.reload()

    depot_etc = tmp_path / "depot-etc"
    shutil.copytree(broker_dir, depot_etc)  # passwd and acl synced from the cloud, as documented
    shutil.copy(broker_dir / "ca.crt", depot_etc / "cloud-ca.crt")
    ports = Ports()
    config = render_broker_config(
        SHIPPED / "bridge-depot.conf",
        etc_dir=depot_etc,
        data_dir=tmp_path / "depot",
        ports=ports,
        extra={
            "address cloud.example.net:8883": f"address 127.0.0.1:{cloud.ports.tls}",
            "remote_password REPLACE-WITH-THIS-DEPOTS-PASSWORD": f"remote_password {depot_password}",
        },
    )
    depot = ProductionBroker(config=config, data_dir=tmp_path / "depot", ports=ports).start()
    try:
        hub.subscribe("$share/hub/fleet/+/telemetry")
        van = fleet.van_a
        at_depot = probe(ports.tls, username=van.id, password=van.password)
        assert not at_depot.connect().is_failure
        cmd = vehicle_topic(van.id, Channel.CMD)
        at_depot.subscribe(cmd)

        telemetry = vehicle_topic(van.id, Channel.TELEMETRY)
        assert at_depot.publish(telemetry, b'{"n": 1}') == "Success"
        assert hub.expect(telemetry, timeout=10).payload == b'{"n": 1}'

        # Down: the bridge subscribes on the cloud as it connects; retry until that has happened.
        deadline = time.monotonic() + 10
        while at_depot.received_nothing(within=0.2):
            assert time.monotonic() < deadline, "the hub's command never reached the depot"
            hub.publish(cmd, b'{"cmd": "ping"}')
        assert at_depot.expect(cmd, timeout=WAIT_S).payload == b'{"cmd": "ping"}'
    finally:
        depot.stop()
