"""Broker credentials for vans and lockers: provision, rotate, revoke.

The broker's directory (``/etc/mosquitto/lastmile`` in production, see
``firmware_configs/mosquitto/mosquitto.conf``) holds ``passwd`` (Mosquitto's ``password_file``),
``acl`` (its ``acl_file``) and ``ca.crt``. A device's MQTT username is its device id, and Mosquitto
makes it the client id too (``use_username_as_clientid`` on the device listener).

Access control is one ``user`` block per device in the ACL file, written and removed here, with the
device's exact topics taken from :mod:`protocol.topics`. Mosquitto ``pattern`` lines apply to every
user alike and cannot tell a van from a locker: ``pattern write fleet/%u/telemetry`` would let locker
``L042`` publish vehicle telemetry as ``fleet/L042/telemetry``. Per-user blocks can.

Every change takes effect when the broker reloads (``systemctl reload mosquitto``, i.e. SIGHUP);
until then the broker still uses the files it read last. Passwords go to ``mosquitto_passwd`` on its
standard input, never on a command line (``ps`` would show them) nor in a log. Registering the device
in the hub's database is :mod:`cloud.registry`'s, driven by ``lastmile provision --database-url``
(:mod:`cloud.provision_cli`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloud.errors import HubError
from protocol.errors import TopicError
from protocol.topics import Channel, DeviceKind, subscription, topic, validate_device_id

log = logging.getLogger(__name__)

DEVICE_PUBLISHES: dict[DeviceKind, tuple[Channel, ...]] = {
    DeviceKind.VEHICLE: (Channel.TELEMETRY, Channel.EVENTS, Channel.STATUS, Channel.CMD_ACK),
    DeviceKind.LOCKER: (Channel.EVENTS, Channel.STATUS, Channel.CMD_ACK),
}
"""What a device may publish, on its own topics only; it may subscribe to the rest of its channels."""

DEVICE_SUBSCRIBES: dict[DeviceKind, tuple[Channel, ...]] = {
    DeviceKind.VEHICLE: (Channel.CMD, Channel.ROUTE),
    DeviceKind.LOCKER: (Channel.GRANTS, Channel.CMD),
}

RESERVED_USERNAMES = frozenset({"hub"})
"""Service accounts of the shipped ACL file; no device may take their name."""

PASSWORD_BYTES = 24  # 32 URL-safe characters, 192 bits
MOSQUITTO_PASSWD_SEARCH_PATH = ("/usr/bin", "/usr/local/bin", "/usr/sbin")
DEFAULT_INSTALL_DIR = Path("/etc/lastmile")
DEFAULT_MQTT_PORT = 8883
CONFIG_NAME = "lastmile.toml"
CA_NAME = "ca.crt"

_BLOCK = re.compile(
    r"^# >>> lastmile (?P<kind>vehicle|locker) (?P<id>\S+)\n.*?^# <<< lastmile (?P=kind) (?P=id)\n",
    re.MULTILINE | re.DOTALL,
)


class ProvisionError(HubError):
    """A device could not be provisioned, rotated or revoked; the broker's files are unchanged
    unless the message says otherwise."""


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """The broker's credential store: ``passwd``, ``acl`` and ``ca.crt`` in one directory."""

    directory: Path

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_NAME


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """What goes onto the device's Pi: a directory with its settings file (holding the password)
    and the CA certificate that signs the broker's certificate."""

    kind: DeviceKind
    device_id: str
    directory: Path
    config: Path
    ca_cert: Path


def acl_block(kind: DeviceKind, device_id: str) -> str:
    """The ACL lines of one device, between markers that :func:`revoke` finds again."""
    validate_device_id(device_id)
    lines = [f"# >>> lastmile {kind} {device_id}", f"user {device_id}"]
    lines += [f"topic write {topic(kind, device_id, ch)}" for ch in DEVICE_PUBLISHES[kind]]
    lines += [f"topic read {topic(kind, device_id, ch)}" for ch in DEVICE_SUBSCRIBES[kind]]
    lines.append(f"# <<< lastmile {kind} {device_id}")
    return "\n".join(lines) + "\n"


def hub_acl_lines() -> list[str]:
    """The hub's ``topic`` lines: it reads what every device publishes (through ``$share/...``
    subscriptions) and writes what every device subscribes to. The shipped ACL file holds them."""
    lines = []
    for kind in DeviceKind:
        lines += [f"topic read {subscription(kind, ch)}" for ch in DEVICE_PUBLISHES[kind]]
        lines += [f"topic write {subscription(kind, ch)}" for ch in DEVICE_SUBSCRIBES[kind]]
    return lines


def find_mosquitto_passwd() -> str:
    found = shutil.which("mosquitto_passwd") or shutil.which(
        "mosquitto_passwd", path=os.pathsep.join(MOSQUITTO_PASSWD_SEARCH_PATH)
    )
    if found is None:
        raise ProvisionError(
            "mosquitto_passwd is not installed: run 'apt-get install mosquitto' on the broker host"
        )
    return found


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def provision(
    *,
    kind: DeviceKind,
    device_id: str,
    broker_dir: Path,
    out_dir: Path,
    mqtt_host: str,
    mqtt_port: int = DEFAULT_MQTT_PORT,
    install_dir: Path = DEFAULT_INSTALL_DIR,
) -> Bundle:
    """Create ``device_id``'s broker account (random password, ACL block) and write its bundle to
    ``out_dir/<device_id>/``. Reload the broker afterwards.

    Raises :class:`ProvisionError` if the id is invalid or reserved, the device already exists
    (use :func:`rotate`), or the broker's files cannot be changed.
    """
    files = _broker_files(broker_dir)
    _check_device_id(device_id)
    _check_endpoint(mqtt_host, mqtt_port)
    with _locked(files):
        if _has_user(files, device_id) or _find_block(files, device_id) is not None:
            raise ProvisionError(f"{device_id} is already provisioned: rotate or revoke it")
        password = new_password()
        _set_password(files, device_id, password)
        try:
            _write_atomically(files.acl, _read(files.acl) + "\n" + acl_block(kind, device_id))
        except BaseException:
            _delete_password(files, device_id)
            raise
    log.info("provisioned %s %s (reload the broker to apply)", kind, device_id)
    return _write_bundle(
        kind=kind,
        device_id=device_id,
        password=password,
        files=files,
        out_dir=out_dir,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        install_dir=install_dir,
    )


def rotate(
    *,
    device_id: str,
    broker_dir: Path,
    out_dir: Path,
    mqtt_host: str,
    mqtt_port: int = DEFAULT_MQTT_PORT,
    install_dir: Path = DEFAULT_INSTALL_DIR,
) -> Bundle:
    """Give ``device_id`` a new password and write a new bundle; after the broker reloads, the old
    password is refused for new connections.

    Raises :class:`ProvisionError` if the device is not provisioned.
    """
    files = _broker_files(broker_dir)
    _check_endpoint(mqtt_host, mqtt_port)
    with _locked(files):
        kind = _existing_kind(files, device_id)
        password = new_password()
        _set_password(files, device_id, password)
    log.info("rotated the password of %s %s (reload the broker to apply)", kind, device_id)
    return _write_bundle(
        kind=kind,
        device_id=device_id,
        password=password,
        files=files,
        out_dir=out_dir,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        install_dir=install_dir,
    )


def revoke(*, device_id: str, broker_dir: Path) -> DeviceKind:
    """Remove ``device_id``'s password and ACL block; after the broker reloads it is refused, and
    Mosquitto (2.0.11, tested) drops its open connection too.

    Returns the kind the device had. Raises :class:`ProvisionError` if it is not provisioned.
    """
    files = _broker_files(broker_dir)
    with _locked(files):
        kind = _existing_kind(files, device_id)
        _delete_password(files, device_id)
        text = _read(files.acl)
        block = _find_block(files, device_id)
        if block is not None:
            text = (text[: block.start()] + text[block.end() :]).replace("\n\n\n", "\n\n")
            _write_atomically(files.acl, text)
    log.info("revoked %s %s (reload the broker to apply)", kind, device_id)
    return kind


# --- internals --------------------------------------------------------------------------------


def _broker_files(broker_dir: Path) -> BrokerFiles:
    files = BrokerFiles(broker_dir)
    if not files.acl.is_file():
        raise ProvisionError(
            f"{files.acl} not found: install the shipped firmware_configs/mosquitto/acl there first"
        )
    if not files.ca_cert.is_file():
        raise ProvisionError(f"{files.ca_cert} not found: the devices need it to trust the broker")
    return files


def _check_endpoint(mqtt_host: str, mqtt_port: int) -> None:
    if not mqtt_host or any(c in mqtt_host for c in '/: \t\n"\\'):
        raise ProvisionError(f"mqtt host {mqtt_host!r}: expected a host name or IPv4 address")
    if not 1 <= mqtt_port <= 65535:
        raise ProvisionError(f"mqtt port {mqtt_port}: expected 1-65535")


def _check_device_id(device_id: str) -> None:
    try:
        validate_device_id(device_id)
    except TopicError as err:
        raise ProvisionError(str(err)) from None
    if device_id in RESERVED_USERNAMES:
        raise ProvisionError(f"{device_id!r} is a service account's name, not a device id")


@contextlib.contextmanager
def _locked(files: BrokerFiles) -> Iterator[None]:
    """One change at a time: two provisioners editing the ACL file would lose one's block."""
    with open(files.directory / ".provision.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _has_user(files: BrokerFiles, username: str) -> bool:
    prefix = f"{username}:"
    return any(line.startswith(prefix) for line in _read(files.passwd).splitlines())


def _find_block(files: BrokerFiles, device_id: str) -> re.Match[str] | None:
    for match in _BLOCK.finditer(_read(files.acl)):
        if match["id"] == device_id:
            return match
    return None


def _existing_kind(files: BrokerFiles, device_id: str) -> DeviceKind:
    block = _find_block(files, device_id)
    if block is None or not _has_user(files, device_id):
        raise ProvisionError(f"{device_id} is not provisioned on this broker")
    return DeviceKind(block["kind"])


def _set_password(files: BrokerFiles, username: str, password: str) -> None:
    """Add or replace ``username``'s entry (PBKDF2-SHA512, Mosquitto's ``$7$`` format)."""
    if not files.passwd.exists():
        _create_private(files.passwd, "")
    result = subprocess.run(
        [find_mosquitto_passwd(), str(files.passwd), username],
        input=f"{password}\n{password}\n",  # its prompts read standard input: nothing on argv
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0 or not _has_user(files, username):
        raise ProvisionError(
            f"mosquitto_passwd could not set the password of {username}: {result.stderr.strip()}"
        )


def _delete_password(files: BrokerFiles, username: str) -> None:
    if not _has_user(files, username):
        return
    result = subprocess.run(
        [find_mosquitto_passwd(), "-D", str(files.passwd), username],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0 or _has_user(files, username):
        raise ProvisionError(
            f"mosquitto_passwd could not delete {username}: {result.stderr.strip()}"
        )


def _create_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that existed


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` keeping its owner, group and mode (Mosquitto reads it as its own user)."""
    before = path.stat() if path.exists() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if before is not None:
            os.chmod(tmp, before.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, before.st_uid, before.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _bundle_config(
    *,
    kind: DeviceKind,
    device_id: str,
    password: str,
    mqtt_host: str,
    mqtt_port: int,
    install_dir: Path,
) -> str:
    example = "van/van.toml" if kind is DeviceKind.VEHICLE else "locker/locker.toml"
    command = "edge run" if kind is DeviceKind.VEHICLE else "locker run"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Lastmile {kind} {device_id}: broker account written by 'lastmile provision' ({stamp}).",
        f"# Install this directory on the Pi as {install_dir}/ (0700, owned by the agent's user),",
        f"# then: lastmile {command} --config {install_dir / CONFIG_NAME}",
        f"# Add this device's hardware settings from firmware_configs/{example}.",
        "# SECRET: mqtt.password. Keep this file 0600 and out of version control and tickets.",
        "",
        f"device_id = {_toml_str(device_id)}",
        'state_dir = "/var/lib/lastmile"',
        "",
    ]
    if kind is DeviceKind.LOCKER:
        lines += [
            "# code_key, courier_key, command_key: this locker's keys, derived by the hub from its",
            "# master secret (protocol.codes.derive_locker_key, ...). Not written here: set them in",
            "# the agent's environment, LASTMILE_CODE_KEY=<hex> (and LASTMILE_COURIER_KEY,",
            "# LASTMILE_COMMAND_KEY); the agent refuses to start without a code key.",
            "",
        ]
    lines += [
        "[mqtt]",
        f"host = {_toml_str(mqtt_host)}",
        f"port = {mqtt_port}",
        f"username = {_toml_str(device_id)}",
        f"password = {_toml_str(password)}",
        f"tls_ca_file = {_toml_str(str(install_dir / CA_NAME))}",
        "",
    ]
    return "\n".join(lines)


def _write_bundle(
    *,
    kind: DeviceKind,
    device_id: str,
    password: str,
    files: BrokerFiles,
    out_dir: Path,
    mqtt_host: str,
    mqtt_port: int,
    install_dir: Path,
) -> Bundle:
    directory = out_dir / device_id
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    bundle = Bundle(
        kind=kind,
        device_id=device_id,
        directory=directory,
        config=directory / CONFIG_NAME,
        ca_cert=directory / CA_NAME,
    )
    text = _bundle_config(
        kind=kind,
        device_id=device_id,
        password=password,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        install_dir=install_dir,
    )
    tomllib.loads(text)  # a bug here must not ship a file the agent refuses
    _create_private(bundle.config, text)
    _create_private(bundle.ca_cert, files.ca_cert.read_text())
    return bundle
