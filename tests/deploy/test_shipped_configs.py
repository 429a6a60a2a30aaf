"""Every file in firmware_configs/ is checked by the program that will read it. A new kind of file
fails here until it gets a check."""

from __future__ import annotations

import re
import secrets
import subprocess
from pathlib import Path

import pytest

from cloud.provision import hub_acl_lines
from cloud.settings import HubSettings
from edge.config import VehicleSettings
from edge.errors import ConfigError
from edge.settings import load_settings
from locker.settings import LockerSettings

from .rig import ROOT, SHIPPED, Ports, ProductionBroker, render_broker_config

FIRMWARE = ROOT / "firmware_configs"
SETTINGS = {"van": VehicleSettings, "locker": LockerSettings, "hub": HubSettings}
CHECKED_SUFFIXES = {".toml", ".conf", ".sh", ""}  # systemd units: add systemd-analyze verify


def _shipped_files() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*") if p.is_file())


def test_every_shipped_file_is_of_a_kind_checked_here() -> None:
    for path in _shipped_files():
        assert path.suffix in CHECKED_SUFFIXES, f"{path}: add a check for this kind of file"
        if path.suffix == "":
            assert path == SHIPPED / "acl", f"{path}: add a check for this file"


@pytest.mark.parametrize(
    "path", [p for p in _shipped_files() if p.suffix == ".toml"], ids=lambda p: p.name
)
def test_a_shipped_settings_file_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = SETTINGS[path.parent.name]
    if cls is HubSettings:
        with pytest.raises(ConfigError, match="code_master_secret"):
            load_settings(cls, path)  # the secret is not in the file, and nothing runs without it
        monkeypatch.setenv("LASTMILE_CODE_MASTER_SECRET", secrets.token_urlsafe(48))
        monkeypatch.setenv("LASTMILE_MQTT__PASSWORD", "from-the-environment")
        hub = load_settings(cls, path)
        assert hub.mqtt.username == "hub"
        assert hub.mqtt.password is not None
        assert hub.mqtt.password.get_secret_value() == "from-the-environment"
    else:
        load_settings(cls, path)


@pytest.mark.parametrize("name", ["mosquitto.conf", "bridge-depot.conf"])
def test_a_shipped_broker_config_starts(name: str, tmp_path: Path, broker_dir: Path) -> None:
    ports = Ports()
    extra = (
        {
            "address cloud.example.net:8883": f"address 127.0.0.1:{Ports().tls}",
            "bridge_cafile /etc/mosquitto/lastmile/cloud-ca.crt": f"bridge_cafile {broker_dir}/ca.crt",
        }
        if name == "bridge-depot.conf"
        else {}
    )
    config = render_broker_config(
        SHIPPED / name, etc_dir=broker_dir, data_dir=tmp_path / "b", ports=ports, extra=extra
    )
    broker = ProductionBroker(config=config, data_dir=tmp_path / "b", ports=ports).start()
    try:
        log = broker.log()
    finally:
        broker.stop()
    assert "Warning" not in log, log  # a config error makes mosquitto exit: start() fails


def test_the_shipped_acl_grants_the_hub_exactly_what_the_contract_needs() -> None:
    lines = [ln.strip() for ln in (SHIPPED / "acl").read_text().splitlines()]
    rules = [ln for ln in lines if ln and not ln.startswith("#")]
    assert rules[0] == "user hub", "a topic line before the first user would apply to anonymous"
    assert rules[1:] == hub_acl_lines()
    assert not any(ln.startswith("pattern") for ln in rules)
    # The commented depot-bridge example is the hub's grants turned around.
    example = [ln[1:] for ln in lines if re.match(r"#(user|topic) ", ln)]
    flipped = [ln.replace("read", "WRITE").replace("write", "read").lower() for ln in rules[1:]]
    assert example[0].startswith("user depot-") and example[1:] == flipped


def test_the_field_ca_script_makes_a_chain_the_broker_can_serve(tmp_path: Path) -> None:
    out = tmp_path / "ca"
    subprocess.run(
        ["sh", str(SHIPPED / "make-ca.sh"), str(out), "broker.example.net", "127.0.0.1"],
        check=True,
        capture_output=True,
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(out / "ca.crt"), str(out / "server.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    san = subprocess.run(
        ["openssl", "x509", "-in", str(out / "server.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:broker.example.net" in san and "IP Address:127.0.0.1" in san
    assert (out / "ca.key").stat().st_mode & 0o077 == 0
