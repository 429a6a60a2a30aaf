"""A production-configured broker with a throw-away PKI, a hub account and three provisioned devices."""

from __future__ import annotations

import secrets
import shutil
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.pki import Pki, make_pki
from cloud.provision import Bundle, provision
from protocol.topics import DeviceKind
from tests.deploy.rig import (
    SHIPPED,
    Ports,
    Probe,
    ProductionBroker,
    add_user,
    render_broker_config,
    require_tool,
)


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tool("mosquitto", "mosquitto")
    require_tool("mosquitto_passwd", "mosquitto")
    require_tool("openssl", "openssl")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def hub_password() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def broker_dir(tmp_path: Path, pki: Pki, hub_password: str) -> Path:
    """What /etc/mosquitto/lastmile/ holds on a fresh broker host (see the field guide)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for src in (pki.ca_cert, pki.server_cert, pki.server_key, SHIPPED / "acl"):
        shutil.copy(src, etc / src.name)
    add_user(etc / "passwd", "hub", hub_password)
    return etc


@dataclass(frozen=True)
class Device:
    bundle: Bundle
    password: str

    @property
    def id(self) -> str:
        return self.bundle.device_id


ProvisionFn = Callable[[DeviceKind, str], Device]


@pytest.fixture
def provision_device(broker_dir: Path, tmp_path: Path) -> ProvisionFn:
    def _provision(kind: DeviceKind, device_id: str) -> Device:
        out = tmp_path / "bundles"
        bundle = provision(
            kind=kind,
            device_id=device_id,
            broker_dir=broker_dir,
            out_dir=out,
            mqtt_host="127.0.0.1",
            mqtt_port=1,  # the broker's port is only known once it runs; tests connect by port
            install_dir=out / device_id,
        )
        password = tomllib.loads(bundle.config.read_text())["mqtt"]["password"]
        return Device(bundle, password)

    return _provision


@dataclass(frozen=True)
class Fleet:
    van_a: Device
    van_b: Device
    locker: Device


@pytest.fixture
def fleet(provision_device: ProvisionFn) -> Fleet:
    return Fleet(
        van_a=provision_device(DeviceKind.VEHICLE, "van-17"),
        van_b=provision_device(DeviceKind.VEHICLE, "van-18"),
        locker=provision_device(DeviceKind.LOCKER, "L042"),
    )


@pytest.fixture
def cloud(fleet: Fleet, broker_dir: Path, tmp_path: Path) -> Iterator[ProductionBroker]:
    """The cloud broker, running the shipped mosquitto.conf, with the fleet provisioned."""
    ports = Ports()
    config = render_broker_config(
        SHIPPED / "mosquitto.conf", etc_dir=broker_dir, data_dir=tmp_path / "cloud", ports=ports
    )
    broker = ProductionBroker(config=config, data_dir=tmp_path / "cloud", ports=ports).start()
    yield broker
    broker.stop()


ProbeFn = Callable[..., Probe]


@pytest.fixture
def probe(pki: Pki) -> Iterator[ProbeFn]:
    """``probe(port, username=..., password=...)``: an MQTT 5 test client, TLS with the test CA
    unless ``ca=None`` is passed; closed after the test."""
    made: list[Probe] = []
    default = object()

    def _probe(port: int, *, ca: object = default, **kwargs: object) -> Probe:
        p = Probe(port, ca=pki.ca_cert if ca is default else ca, **kwargs)  # type: ignore[arg-type]
        made.append(p)
        return p

    yield _probe
    for p in made:
        p.close()


@pytest.fixture
def hub(cloud: ProductionBroker, probe: ProbeFn, hub_password: str) -> Probe:
    """The hub's account, connected the way the hub is: loopback listener, no TLS."""
    p = probe(
        cloud.ports.local, ca=None, username="hub", password=hub_password, client_id="hub-ingest"
    )
    assert p.connect() is not None and p.connack is not None and not p.connack.is_failure
    return p
