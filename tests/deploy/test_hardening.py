"""The agents under their units' hardening, as far as this machine can apply it without systemd.

Applied, from ``firmware_configs/systemd/lastmile-locker.service`` and ``lastmile-edge.service``
(each value is read from the unit and the test fails if the unit stops asking for it):

- ``User=``/``Group=`` and no supplementary groups: ``setpriv --reuid --regid --clear-groups``;
- ``NoNewPrivileges=yes``: ``setpriv --no-new-privs``;
- ``CapabilityBoundingSet=`` / ``AmbientCapabilities=`` empty: ``--bounding-set -all --inh-caps
  -all --ambient-caps -all``;
- ``ProtectSystem=strict`` with ``StateDirectory=``: a private mount namespace (``unshare -m``) in
  which every mount is remounted read-only except the state directory (and /dev, /proc);
- ``PrivateTmp=yes``: a fresh tmpfs on /tmp and /var/tmp; ``ProtectHome=yes``: /home, /root and
  /run/user hidden under empty read-only tmpfs; ``ProtectKernelTunables=yes``: /proc/sys and /sys
  read-only;
- ``UMask=0077``; ``Type=notify``: ``$NOTIFY_SOCKET`` reachable from inside.

Not applied here (they need systemd's seccomp and cgroup set-up): ``SystemCallFilter=``,
``RestrictAddressFamilies=``, ``MemoryDenyWriteExecute=``, ``LockPersonality=``,
``RestrictNamespaces=``, ``DevicePolicy=``/``DeviceAllow=``, ``ProtectClock=``; their syntax is
checked by ``systemd-analyze verify`` in test_shipped_configs.py.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.settings import MqttSettings
from locker.grants import GrantStore
from protocol.codec import decode
from protocol.messages import DeviceStatus
from protocol.topics import Channel, locker_topic, vehicle_topic
from tests.locker.story import KEY, grant, listening, until

from .rig import require_tool
from .test_shipped_configs import SYSTEMD, _ini, _interpreter_for, _service_user

UNIT = SYSTEMD / "lastmile-locker.service"
VAN_UNIT = SYSTEMD / "lastmile-edge.service"
WRITABLE_API = ("/proc", "/dev", "/dev/shm", "/dev/pts")


def _mount_script(*, state: Path, service: dict[str, str]) -> str:
    """Shell commands that turn a fresh mount namespace into the unit's view of the system."""
    assert service["ProtectSystem"] == "strict"
    assert service["PrivateTmp"] == "yes"
    assert service["ProtectHome"] == "yes"
    assert service["ProtectKernelTunables"] == "yes"
    s = shlex.quote(str(state))
    keep = " ".join(shlex.quote(p) for p in (*WRITABLE_API, str(state)))
    return "\n".join(
        [
            "set -eu",
            "mount --make-rprivate /",
            f"mount --bind {s} {s}",  # StateDirectory=: the one writable place
            # ProtectSystem=strict: every other mount read-only (deepest last, so none is missed)
            "awk '{print $2}' /proc/self/mounts | sort -u | while read -r m; do",
            f'  case " {keep} " in *" $m "*) continue ;; esac',
            '  mount -o remount,bind,ro "$m" 2>/dev/null || mount --bind -o ro "$m" "$m"',
            "done",
            "mount -o remount,bind,ro /proc/sys 2>/dev/null || "
            "{ mount --bind /proc/sys /proc/sys; mount -o remount,bind,ro /proc/sys; }",
            "for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $d; done",
            "for d in /home /root /run/user; do",
            '  [ -d "$d" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$d"',
            "done",
            "true",
        ]
    )


def confined(
    argv: list[str], *, state: Path, user: pwd.struct_passwd, unit: Path = UNIT
) -> list[str]:
    """``argv`` as the locker unit would run it: one process (unshare and setpriv exec, they do not
    fork), so signals reach the agent itself."""
    service = dict(_ini(unit)["Service"])
    assert service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""
    setpriv = [
        require_tool("setpriv", "util-linux"),
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--ambient-caps=-all",
        "--",
        *argv,
    ]
    script = _mount_script(state=state, service=service) + "\nexec " + shlex.join(setpriv)
    return [require_tool("unshare", "util-linux"), "--mount", "--", "sh", "-c", script]


@pytest.fixture
def unit_state() -> Iterator[tuple[pwd.struct_passwd, Path]]:
    """/var/lib/lastmile-test-XXXX, owned by the service user, like StateDirectory= (not under /tmp,
    which PrivateTmp= hides)."""
    user = _service_user()
    path = Path(tempfile.mkdtemp(prefix="lastmile-unit-", dir="/var/lib"))
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)
    yield user, path
    shutil.rmtree(path)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _mount_options(pid: int) -> dict[str, str]:
    """Mount point → its per-mount options (rw/ro), as the process sees them."""
    out = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out[fields[4]] = fields[5].split(",")[0]
    return out


@pytest.mark.slow
def test_the_locker_agent_serves_under_its_units_hardening(
    unit_state: tuple[pwd.struct_passwd, Path], mqtt_settings: MqttSettings
) -> None:
    user, home = unit_state
    state = home / "state"
    state.mkdir(mode=0o700)
    with GrantStore(state / "L1-grants.db", locker_key=KEY) as store:
        store.add(grant("31415926", compartment=2))
    config = home / "lastmile.toml"
    config.write_text(
        f'device_id = "L1"\ncode_key = "{KEY.hex()}"\ncompartments = 4\nkeypad = "stdin"\n'
        f'simulate_people = true\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "{mqtt_settings.host}"\nport = {mqtt_settings.port}\n'
    )
    for path in (state, config, *state.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
        if path.is_file():
            path.chmod(0o600)  # as the agent itself would have made it (UMask=0077)
    notify_path = home / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    os.chown(notify_path, user.pw_uid, user.pw_gid)

    python, env = _interpreter_for(user)
    argv = confined(
        [*python, "-m", "edge.cli", "locker", "run", "--config", str(config)],
        state=state,
        user=user,
    )
    env = {"PATH": "/usr/bin:/bin", **env, "NOTIFY_SOCKET": str(notify_path)}

    async def story() -> tuple[int, str, dict[str, str], dict[str, str], list[DeviceStatus]]:
        events_topic = locker_topic("L1", Channel.STATUS)
        async with listening(mqtt_settings) as hub, listening(mqtt_settings, events_topic) as st:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=state, umask=0o077,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                loop = asyncio.get_running_loop()
                ready = await asyncio.wait_for(loop.sock_recv(notify, 4096), timeout=30)
                assert ready.startswith(b"READY=1"), ready
                status, mounts = _status(proc.pid), _mount_options(proc.pid)
                assert proc.stdin is not None
                proc.stdin.write(b"31415926\n")
                await proc.stdin.drain()
                events = await hub.wait_for(5, timeout=20)
                assert [e.kind for e in events][-1] == "picked_up"
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    output, _ = await proc.communicate()
                await until(lambda: len(st.payloads) >= 2, what="offline status")
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode is not None
            statuses = [decode(p, DeviceStatus) for p in st.payloads]
            return proc.returncode, output.decode(), status, mounts, statuses

    try:
        code, output, status, mounts, statuses = asyncio.run(story())
    finally:
        notify.close()
    assert code == 0, output
    assert "Traceback" not in output, output
    assert statuses[-1].online is False
    # Who the agent was, as the kernel saw it.
    assert status["Uid"].split()[:2] == [str(user.pw_uid)] * 2
    assert status["Groups"] == ""
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapBnd"], 16) == 0 and int(status["CapEff"], 16) == 0
    # What it could write: its state directory only.
    assert mounts["/"] == "ro" and mounts[str(state)] == "rw"
    assert mounts["/tmp"] == "rw" and mounts["/root"] == "ro"
    for path in state.iterdir():
        st = path.stat()
        assert st.st_uid == user.pw_uid and st.st_mode & 0o077 == 0, path


def test_the_confinement_refuses_what_the_unit_forbids(
    unit_state: tuple[pwd.struct_passwd, Path],
) -> None:
    """The control for the test above: the same wrapper, a probe instead of the agent. The user
    owns ``home``, so only the read-only remount can stop it writing there."""
    user, home = unit_state
    state = home / "state"
    state.mkdir(mode=0o700)
    os.chown(state, user.pw_uid, user.pw_gid)
    probe = (
        "import errno, os, sys\n"
        "def attempt(path):\n"
        "    try:\n"
        "        open(path, 'w').close()\n"
        "        return 'ok'\n"
        "    except OSError as err:\n"
        "        return errno.errorcode[err.errno]\n"
        f"print(attempt({str(state / 'x')!r}), attempt({str(home / 'x')!r}),"
        " attempt('/var/lib/x'), attempt('/tmp/x'), os.listdir('/tmp'))\n"
        "try:\n"
        "    os.setuid(0)\n"
        "    print('root')\n"
        "except PermissionError:\n"
        "    print('unprivileged')\n"
    )
    python, env = _interpreter_for(user)
    result = subprocess.run(
        confined([*python, "-c", probe], state=state, user=user),
        env={"PATH": "/usr/bin:/bin", **env},
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ok EROFS EROFS ok ['x']", "unprivileged"]


@pytest.mark.slow
def test_the_van_agent_reports_under_its_units_hardening(
    unit_state: tuple[pwd.struct_passwd, Path], mqtt_settings: MqttSettings
) -> None:
    user, home = unit_state
    state = home / "state"
    state.mkdir(mode=0o700)
    config = home / "lastmile.toml"
    config.write_text(
        f'device_id = "van-unit"\nstate_dir = "{state}"\ngnss = "sim"\n'
        f'[mqtt]\nhost = "{mqtt_settings.host}"\nport = {mqtt_settings.port}\n'
        "[sim]\ntime_scale = 20\n[batch]\nmax_age_s = 0.5\n"
    )
    for path in (state, config):
        os.chown(path, user.pw_uid, user.pw_gid)
    config.chmod(0o600)
    python, env = _interpreter_for(user)
    argv = confined(
        [*python, "-m", "edge.cli", "edge", "run", "--config", str(config)],
        state=state,
        user=user,
        unit=VAN_UNIT,
    )

    async def story() -> tuple[int, str, dict[str, str], dict[str, str]]:
        async with listening(mqtt_settings, vehicle_topic("van-unit", Channel.TELEMETRY)) as hub:
            proc = await asyncio.create_subprocess_exec(
                *argv, env={"PATH": "/usr/bin:/bin", **env}, cwd=state, umask=0o077,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                await until(lambda: len(hub.payloads) >= 1, timeout=30, what="telemetry")
                status, mounts = _status(proc.pid), _mount_options(proc.pid)
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    output, _ = await proc.communicate()
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            assert proc.returncode is not None
            return proc.returncode, output.decode(), status, mounts

    code, output, status, mounts = asyncio.run(story())
    assert code == 0 and "Traceback" not in output, output
    assert status["NoNewPrivs"] == "1" and int(status["CapBnd"], 16) == 0
    assert status["Uid"].split()[0] == str(user.pw_uid)
    assert mounts["/"] == "ro" and mounts[str(state)] == "rw"
    assert [p.name for p in state.iterdir()], "the outbox lives in the state directory"
