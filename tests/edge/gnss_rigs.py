"""Test rigs for GNSS: a real gpsd replaying a log (gpsfake), NMEA logs, and pty serial ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import shutil
import socket
import subprocess
import time
import tty
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge.gnss.source import GnssSource
from protocol.messages import Position

NMEA_DIR = Path(__file__).resolve().parents[1] / "data" / "nmea"
LOGS = ("bt451.log", "haicom-305N.log", "bu353-glonass.log")
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def nmea_lines(name: str) -> list[bytes]:
    """The sentences of a log, without comments or line endings (haicom uses LF, the others CRLF)."""
    lines = (NMEA_DIR / name).read_bytes().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(b"#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.02)


def require_gpsfake() -> str:
    """The gpsfake path; fails (never skips) when missing: the gpsd tier must not vanish from CI."""
    exe = shutil.which("gpsfake", path=SBIN_PATH)
    if exe is None or shutil.which("gpsd", path=SBIN_PATH) is None:
        pytest.fail(
            "gpsfake/gpsd not found: install them with `apt-get install gpsd gpsd-clients`",
            pytrace=False,
        )
    return exe


class Gpsfake:
    """A real gpsd fed by gpsfake, replaying ``log`` in a loop on ``port``."""

    def __init__(self, log: Path, *, port: int) -> None:
        self.log = log
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = require_gpsfake()
        self._proc = subprocess.Popen(
            [exe, "-q", "-P", str(self.port), "-c", "0.02", str(self.log)],
            env={**os.environ, "PATH": SBIN_PATH},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        """Killing gpsfake also ends its gpsd (checked in the rigs README)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


class PtyPort:
    """A pseudo-terminal: the source opens ``path`` like a serial device, the test writes to it."""

    def __init__(self) -> None:
        self.master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)

    def write_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            os.write(self.master, line + b"\r\n")

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        """Like pulling the plug: the reader's next read fails with EIO."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def until(
    cond: Callable[[], bool],
    *,
    timeout: float = 10.0,
    what: str | Callable[[], str] = "condition",
) -> None:
    """Poll ``cond`` until true; fail with ``what`` (a callable is asked at failure) after ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"{said}: not reached within {timeout} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def collecting(source: GnssSource) -> AsyncIterator[list[Position]]:
    """Run ``source.fixes()`` in a task, appending to the yielded list; cancel the task on exit."""
    got: list[Position] = []

    async def collect() -> None:
        async for fix in source.fixes():
            got.append(fix)

    task = asyncio.create_task(collect(), name="collect-fixes")
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a source that crashed re-raises here
