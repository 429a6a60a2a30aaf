"""Every file in firmware_configs/ is checked by the program that will read it. A new kind of file
fails here until it gets a check."""

from __future__ import annotations

import configparser
import grp
import os
import pwd
import queue
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.broker import MosquittoBroker
from cloud.provision import hub_acl_lines
from cloud.settings import HubSettings
from edge.cli import _edge_run, _hub_serve, _locker_run, build_parser
from edge.config import VehicleSettings
from edge.errors import ConfigError
from edge.settings import load_settings
from locker.settings import LockerSettings
from protocol.codec import decode
from protocol.messages import DeviceStatus
from protocol.topics import Channel, vehicle_topic

from .rig import ROOT, SHIPPED, Ports, ProductionBroker, render_broker_config, require_tool

FIRMWARE = ROOT / "firmware_configs"
SETTINGS = {"van": VehicleSettings, "locker": LockerSettings, "hub": HubSettings}
CHECKED_SUFFIXES = {
    ".toml",
    ".conf",
    ".sh",
    "",
    ".service",
    ".network",
    ".rules",
    ".snippet",
    ".default",
}
SYSTEMD = FIRMWARE / "systemd"
PI_VAN = FIRMWARE / "pi" / "van"
BROKER_CONFS = {SHIPPED / "mosquitto.conf", SHIPPED / "bridge-depot.conf"}
JOURNALD_CONF = SYSTEMD / "journald-lastmile.conf"
USB_KEYPAD_DROPIN = SYSTEMD / "lastmile-locker.service.d" / "usb-keypad.conf"


def _shipped_files() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*") if p.is_file())


def test_every_shipped_file_is_of_a_kind_checked_here() -> None:
    for path in _shipped_files():
        assert path.suffix in CHECKED_SUFFIXES, f"{path}: add a check for this kind of file"
        if path.suffix == "":
            assert path == SHIPPED / "acl", f"{path}: add a check for this file"
        if path.suffix == ".conf":
            assert path in BROKER_CONFS | {JOURNALD_CONF, USB_KEYPAD_DROPIN}, (
                f"{path}: add a check for this file"
            )
        if path.suffix in {".snippet", ".default"}:
            assert path in {PI_VAN / "config.txt.snippet", PI_VAN / "gpsd.default"}, path


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


# --- systemd units (firmware_configs/systemd/) ----------------------------------------------------

UNITS = sorted(SYSTEMD.glob("*.service"))
VENV_LASTMILE = "/opt/lastmile/venv/bin/lastmile"
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "CapabilityBoundingSet": "",
    "DevicePolicy": "closed",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
    "User": "lastmile",
    "Group": "lastmile",
    "StateDirectory": "lastmile",
    "ConfigurationDirectory": "lastmile",
    "Restart": "on-failure",
    "RestartSec": "2",
    # edge/sdnotify.py: READY=1 once serving, WATCHDOG=1 from the main loop, only from the main pid
    "Type": "notify",
    "NotifyAccess": "main",
    "WatchdogSec": "30",
}
# What each program may reach beyond the common set: handler, address families, device nodes.
PROGRAMS = {
    "lastmile-edge.service": (
        _edge_run,
        {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK", "AF_CAN"},
        {"/dev/gnss0 rw", "char-ttyAMA rw", "char-ttyACM rw"},
    ),
    "lastmile-locker.service": (
        _locker_run,
        {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"},
        {"char-gpiochip rw", "/dev/serial0 rw", "char-ttyAMA rw"},
    ),
    "lastmile-hub.service": (
        _hub_serve,
        {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"},
        set(),
    ),
}


class _MultiDict(dict):  # type: ignore[type-arg]
    """configparser's option store, keeping every value of a repeated key (DeviceAllow=, ...) as
    systemd does, instead of the last one."""

    def __setitem__(self, key: str, value: object) -> None:
        if isinstance(value, list) and isinstance(self.get(key), list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def _ini(path: Path) -> configparser.RawConfigParser:
    """A systemd-style file (unit, .network, drop-in) as INI: case-sensitive keys, no interpolation,
    repeated keys joined by newlines. Raises configparser.Error on a line that is no key=value."""
    parser = configparser.RawConfigParser(
        strict=False, dict_type=_MultiDict, delimiters=("=",), comment_prefixes=("#", ";")
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(), source=str(path))
    return parser


def _values(ini: configparser.RawConfigParser, section: str, key: str) -> list[str]:
    return ini[section][key].splitlines() if key in ini[section] else []


def test_the_units_are_the_three_programs() -> None:
    assert {u.name for u in UNITS} == set(PROGRAMS)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_runs_its_program_unprivileged_and_confined(unit: Path) -> None:
    ini = _ini(unit)
    assert set(ini.sections()) == {"Unit", "Service", "Install"}
    service = ini["Service"]
    for key, expected in HARDENING.items():
        assert service.get(key) == expected, f"{unit.name}: {key}={service.get(key)!r}"
    assert ini["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in ini["Unit"]["Wants"].split()
    assert "network-online.target" in ini["Unit"]["After"].split()

    handler, families, devices = PROGRAMS[unit.name]
    assert set(service["RestrictAddressFamilies"].split()) == families
    assert set(_values(ini, "Service", "DeviceAllow")) == devices

    argv = shlex.split(service["ExecStart"])
    assert argv[0] == VENV_LASTMILE  # the venv docs/field-install.md creates
    args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown subcommand
    assert args.handler is handler
    assert args.config.parent == Path("/etc") / service["ConfigurationDirectory"]


def test_the_van_unit_starts_after_gpsd_and_may_open_the_receiver() -> None:
    ini = _ini(SYSTEMD / "lastmile-edge.service")
    assert "gpsd.service" in ini["Unit"]["After"].split()
    assert "dialout" in ini["Service"]["SupplementaryGroups"].split()
    assert (
        "gpio"
        in _ini(SYSTEMD / "lastmile-locker.service")["Service"]["SupplementaryGroups"].split()
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_accepts_a_unit(unit: Path, tmp_path: Path) -> None:
    """``systemd-analyze verify`` on a copy whose ExecStart is /bin/true: the real one checks that the
    binary exists, and /opt/lastmile is not installed here. Every other line is verified as shipped.
    It exits 0 even on unknown keys or bad values, so any output at all is a failure."""
    analyze = require_tool("systemd-analyze", "systemd")
    text = unit.read_text()
    assert text.count(f"ExecStart={VENV_LASTMILE} ") == 1
    copy = tmp_path / unit.name
    copy.write_text(text.replace(f"ExecStart={VENV_LASTMILE} ", "ExecStart=/bin/true "))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr


_SIZE = re.compile(r"^(\d+)([KMGT]?)$")
_TIMESPAN = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|min|h|d|week|month|year)?$")
_SPAN_S = {"ms": 1e-3, "s": 1, "min": 60, "h": 3600, "d": 86400, "week": 604800}


def _bytes(value: str) -> int:
    m = _SIZE.match(value)
    assert m, f"not a size: {value!r}"
    unit: int = 1024 ** " KMGT".index(m[2] or " ")
    return int(m[1]) * unit


def _seconds(value: str) -> float:
    m = _TIMESPAN.match(value)
    assert m, f"not a time span: {value!r}"
    return float(m[1]) * _SPAN_S[m[2] or "s"]


def test_journald_keeps_the_sd_card_small() -> None:
    journal = _ini(JOURNALD_CONF)
    assert journal.sections() == ["Journal"]
    assert set(journal["Journal"]) == {"SystemMaxUse", "RuntimeMaxUse", "MaxRetentionSec"}
    assert _bytes(journal["Journal"]["SystemMaxUse"]) == 50 * 1024**2
    assert _bytes(journal["Journal"]["RuntimeMaxUse"]) == 20 * 1024**2
    assert _seconds(journal["Journal"]["MaxRetentionSec"]) == 7 * 86400


# --- The van's Pi (firmware_configs/pi/van/) ------------------------------------------------------


def test_networkd_brings_can0_up_at_the_vehicle_bit_rate() -> None:
    network = _ini(PI_VAN / "80-can0.network")
    assert set(network.sections()) == {"Match", "CAN"}
    assert dict(network["Match"]) == {"Name": "can0"}
    assert set(network["CAN"]) == {"BitRate", "RestartSec"}
    m = re.fullmatch(r"(\d+)([KM]?)", network["CAN"]["BitRate"])  # networkd: SI prefixes, 1000
    assert m, network["CAN"]["BitRate"]
    assert int(m[1]) * {"": 1, "K": 1000, "M": 1000**2}[m[2]] == 500_000
    assert 0 < _seconds(network["CAN"]["RestartSec"]) <= 1


_UDEV_PAIR = re.compile(r'\s*([A-Z_]+(?:\{[^}"]+\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')
_UDEV_MATCH = {"SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "KERNELS", "ACTION", "DRIVERS", "ATTR", "ATTRS"}
_UDEV_ASSIGN = {"SYMLINK", "GROUP", "MODE", "OWNER", "NAME", "TAG", "ENV"}


def _udev_rules(path: Path) -> list[dict[str, tuple[str, str]]]:
    """Each rule line as {key: (operator, value)}; fails on anything udev would reject or ignore."""
    rules = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert not line.endswith("\\"), f"line {number}: keep a rule on one line"
        pairs, pos = {}, 0
        while pos < len(line):
            m = _UDEV_PAIR.match(line, pos)
            assert m, f'line {number}, column {pos}: not KEY op "value"'
            key, op, value = m[1], m[2], m[3]
            base = key.split("{")[0]
            if base in _UDEV_MATCH:
                assert op in {"==", "!="}, f"line {number}: {key} is a match key, {op} assigns"
            else:
                assert base in _UDEV_ASSIGN, f"line {number}: unknown key {key}"
                assert op in {"=", "+=", "-=", ":="}, f"line {number}: {key} {op} matches nothing"
            pairs[key] = (op, value)
            pos = m.end()
        rules.append(pairs)
    return rules


def test_udev_names_the_gnss_receiver_gnss0_for_group_dialout() -> None:
    rules = _udev_rules(PI_VAN / "99-lastmile-gnss.rules")
    assert len(rules) == 2
    for rule in rules:
        assert rule["SUBSYSTEM"] == ("==", "tty")
        assert rule["SYMLINK"] == ("+=", "gnss0")
        assert rule["GROUP"] == ("=", "dialout")
        assert rule["MODE"] == ("=", "0660")
    uart, usb = rules
    assert uart["KERNEL"] == ("==", "ttyAMA0")  # the PL011 that dtoverlay=disable-bt frees
    assert usb["ATTRS{idVendor}"] == ("==", "1546")  # u-blox


def _boot_config(path: Path) -> list[tuple[str, str]]:
    """config.txt lines as (key, value), in order; fails on what the firmware would not understand."""
    known = {"dtparam", "dtoverlay", "enable_uart"}
    lines = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            assert line in {"[all]", "[pi3]", "[pi4]", "[pi5]"}, f"line {number}: filter {line}"
            continue
        key, sep, value = line.partition("=")
        assert sep and key in known, f"line {number}: {line!r}"
        assert " " not in value and "#" not in value, f"line {number}: no inline comments"
        lines.append((key, value))
    return lines


def test_the_boot_config_enables_the_can_hat_and_the_gnss_uart() -> None:
    lines = _boot_config(PI_VAN / "config.txt.snippet")
    assert ("dtparam", "spi=on") in lines
    assert ("enable_uart", "1") in lines
    assert ("dtoverlay", "disable-bt") in lines
    overlays = dict(
        (v.split(",")[0], dict(p.split("=") for p in v.split(",")[1:]))
        for k, v in lines
        if k == "dtoverlay"
    )
    assert overlays["mcp2515-can0"] == {"oscillator": "16000000", "interrupt": "25"}
    assert int(overlays["mcp2515-can0"]["interrupt"]) not in {14, 15}  # the GNSS UART's pins
    assert lines.index(("dtparam", "spi=on")) < lines.index(
        ("dtoverlay", "mcp2515-can0,oscillator=16000000,interrupt=25")
    )


def test_gpsd_reads_the_receiver_udev_names() -> None:
    path = PI_VAN / "gpsd.default"
    # gpsd.service reads it as an EnvironmentFile, its init script sources it: both must agree.
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            m = re.fullmatch(r'([A-Z_]+)="([^"$`\\]*)"', line)
            assert m, f'{line!r}: KEY="value" only'
            env[m[1]] = m[2]
    assert env == {"DEVICES": "/dev/gnss0", "GPSD_OPTIONS": "-n", "USBAUTO": "false"}
    sourced = subprocess.run(
        [
            "sh",
            "-euc",
            '. "$1"; printf "%s|%s|%s" "$DEVICES" "$GPSD_OPTIONS" "$USBAUTO"',
            "sh",
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert sourced == "/dev/gnss0|-n|false"
    # One name everywhere: udev makes it, gpsd opens it, the van's unit may open it.
    symlinks = {r["SYMLINK"][1] for r in _udev_rules(PI_VAN / "99-lastmile-gnss.rules")}
    assert {f"/dev/{s}" for s in symlinks} == {env["DEVICES"]}
    edge = _ini(SYSTEMD / "lastmile-edge.service")
    assert f"{env['DEVICES']} rw" in _values(edge, "Service", "DeviceAllow")


# --- The van agent as its unit runs it ------------------------------------------------------------

SERVICE_USER = "lastmile-test"


def _service_user() -> pwd.struct_passwd:
    """A system account like the field's ``lastmile``: no home, no shell, its own group."""
    if os.geteuid() != 0:
        pytest.fail("running the agent as a service user needs root (useradd, setuid)")
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _interpreter_for(user: pwd.struct_passwd) -> tuple[list[str], dict[str, str]]:
    """A Python the service user can run this checkout with. The venv's own interpreter when the
    user may execute it; else (a pyenv build under root's 0700 home) the system Python of the same
    version, with the venv's site-packages and the checkout on PYTHONPATH. Nothing is copied and
    no permission on the host is changed."""
    venv_python = ROOT / ".venv" / "bin" / "python"
    system_python = shutil.which(
        f"python{sysconfig.get_python_version()}", path="/usr/local/bin:/usr/bin:/bin"
    )
    site = sysconfig.get_paths()["purelib"]
    candidates: list[tuple[list[str], dict[str, str]]] = [([str(venv_python)], {})]
    if system_python:
        candidates.append(([system_python], {"PYTHONPATH": f"{ROOT}:{site}"}))
    for argv, env in candidates:
        try:
            probe = subprocess.run(
                [*argv, "-c", "import edge.cli, edge.app"],
                user=user.pw_uid,
                group=user.pw_gid,
                extra_groups=[],
                env={"PATH": "/usr/bin:/bin", **env},
                cwd="/",
                capture_output=True,
                check=False,
            )
        except OSError:  # no such interpreter (a worktree has no .venv), or exec refused
            continue
        if probe.returncode == 0:
            return argv, env
    pytest.fail(f"{SERVICE_USER} can run no Python with this checkout (is {ROOT} readable?)")


@pytest.fixture
def service_dir() -> Iterator[tuple[pwd.struct_passwd, Path]]:
    """A directory only the service user can enter, as StateDirectory= makes /var/lib/lastmile
    (pytest's tmp_path is root's, mode 0700: the user could not reach it)."""
    user = _service_user()
    path = Path(tempfile.mkdtemp(prefix="lastmile-unit-"))
    os.chown(path, user.pw_uid, user.pw_gid)
    yield user, path
    shutil.rmtree(path)


@pytest.mark.slow
def test_the_van_agent_runs_as_a_service_user_and_stops_cleanly_on_sigterm(
    service_dir: tuple[pwd.struct_passwd, Path], broker: MosquittoBroker
) -> None:
    """What ``lastmile-edge.service`` does, short of systemd: setuid to an unprivileged user with no
    supplementary groups, umask 0077, a clean environment, the working directory its state
    directory, then SIGTERM to the main process (not to a ``runuser`` wrapper, which would re-raise
    the signal on itself and hide the agent's exit code)."""
    user, home = service_dir
    state = home / "state"
    state.mkdir(mode=0o700)
    os.chown(state, user.pw_uid, user.pw_gid)
    config = home / "lastmile.toml"
    config.write_text(
        f'device_id = "van-unit"\nstate_dir = "{state}"\ngnss = "sim"\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        "[sim]\ntime_scale = 20\n[batch]\nmax_age_s = 0.5\n"
    )
    os.chown(config, user.pw_uid, user.pw_gid)
    config.chmod(0o600)

    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: received.put(msg)
    sub.connect(broker.host, broker.port)
    sub.subscribe(
        [(vehicle_topic("van-unit", ch), 1) for ch in (Channel.TELEMETRY, Channel.STATUS)]
    )
    sub.loop_start()

    python, env = _interpreter_for(user)
    agent = subprocess.Popen(
        [*python, "-m", "edge.cli", "edge", "run", "--config", str(config)],
        user=user.pw_uid,
        group=user.pw_gid,
        extra_groups=[],
        umask=0o077,
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=state,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        topics: list[str] = []
        while vehicle_topic("van-unit", Channel.TELEMETRY) not in topics:
            try:
                topics.append(received.get(timeout=20).topic)
            except queue.Empty:
                agent.kill()
                pytest.fail(f"no telemetry; got {topics}; agent said:\n{agent.communicate()[0]}")
        agent.send_signal(signal.SIGTERM)
        output, _ = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
        sub.loop_stop()
        sub.disconnect()

    assert agent.returncode == 0, output
    statuses = []
    while not received.empty():
        msg = received.get()
        if msg.topic == vehicle_topic("van-unit", Channel.STATUS):
            statuses.append(decode(bytes(msg.payload), DeviceStatus))
    assert statuses and not statuses[-1].online, "a clean stop publishes offline status itself"
    made = [p for p in state.iterdir()]
    assert made, "the outbox lives in state_dir"
    for path in made:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), path
        assert st.st_mode & 0o077 == 0, f"{path}: {oct(st.st_mode)} (UMask=0077)"
    assert grp.getgrgid(user.pw_gid).gr_name == SERVICE_USER


def test_the_usb_keypad_drop_in_adds_only_the_input_devices(tmp_path: Path) -> None:
    """The drop-in a USB-keypad locker installs: verified by systemd together with the unit (on
    the unit's search path, where systemd finds drop-ins), and it only adds to the unit's lists."""
    analyze = require_tool("systemd-analyze", "systemd")
    unit = SYSTEMD / "lastmile-locker.service"
    (tmp_path / unit.name).write_text(
        unit.read_text().replace(f"ExecStart={VENV_LASTMILE} ", "ExecStart=/bin/true ")
    )
    dropins = tmp_path / f"{unit.name}.d"
    dropins.mkdir()
    (dropins / USB_KEYPAD_DROPIN.name).write_text(USB_KEYPAD_DROPIN.read_text())
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / unit.name)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},  # ":" keeps the defaults
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stderr
    dropin = _ini(USB_KEYPAD_DROPIN)
    assert dropin.sections() == ["Service"]
    assert dict(dropin["Service"]) == {
        "SupplementaryGroups": "input",
        "DeviceAllow": "char-input r",
    }
