"""ELM327-emulator as a managed process: the OBD-II simulator for the demo and the tests.

The emulator (PyPI ``ELM327-emulator``, command ``elm``) plays a car behind an ELM327 adapter, on a pty
or a TCP port; the source talks to it through python-OBD exactly as it would to a real adapter.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from edge.obd.errors import ObdEmulatorError


def find_elm() -> str:
    """The ``elm`` executable: on PATH, or next to this Python (a venv's bin/)."""
    found = shutil.which("elm") or shutil.which("elm", path=str(Path(sys.executable).parent))
    if found is None:
        raise ObdEmulatorError(
            "ELM327-emulator is not installed: run 'pip install ELM327-emulator==4.0.0' "
            "(it provides the 'elm' command)"
        )
    return found


class ElmEmulator:
    """Start and stop one ``elm -s SCENARIO`` process. A context manager.

    ``tcp_port=None`` serves on a new pty (:attr:`port` is its path); otherwise on
    ``127.0.0.1:tcp_port`` (:attr:`port` is ``socket://127.0.0.1:N``, which keeps its address across a
    restart). ``dtcs`` are stored trouble codes as 4 hex digits (``"0143"`` = P0143).
    """

    def __init__(
        self,
        *,
        scenario: str = "car",
        tcp_port: int | None = None,
        dtcs: Sequence[str] = (),
        work_dir: Path | None = None,
    ) -> None:
        self.scenario = scenario
        self.tcp_port = tcp_port
        self.dtcs = tuple(dtcs)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lastmile-elm-")
            work_dir = Path(self._tmp.name)
        self.work_dir = work_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _batch(self) -> bytes:
        if not self.dtcs:
            return b""
        # ELM327-emulator 4.0 answers mode 03 on CAN as "43 <DTCs>", without the DTC count byte that
        # ISO 15765-4 puts after 43 and that python-OBD skips; so we store the count as a first "DTC".
        codes = [f"{len(self.dtcs):02X}", *self.dtcs]
        return f"import elm.obd_message as m; m.DTC_STORED[:] = {codes!r}\n".encode()

    def start(self, *, timeout: float = 10.0) -> ElmEmulator:
        if self.running:
            return self
        out = self.work_dir / "elm.out"
        out.unlink(missing_ok=True)
        args = [find_elm(), "-s", self.scenario, "-b", str(out)]
        if self.tcp_port is not None:
            args += ["-n", str(self.tcp_port)]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.work_dir,  # the emulator writes elm.log into its working directory
            start_new_session=True,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(self._batch())
        self._proc.stdin.close()  # end of batch commands: the emulator serves from here on
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ObdEmulatorError(f"elm exited with code {self._proc.returncode} at start")
            if self.tcp_port is None:
                lines = out.read_text().splitlines() if out.exists() else []
                if lines and lines[0].startswith("/dev/"):
                    self.port = lines[0].strip()
                    return self
            else:
                try:
                    with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.2):
                        pass
                except OSError:
                    pass
                else:
                    self.port = f"socket://127.0.0.1:{self.tcp_port}"
                    return self
            time.sleep(0.02)
        self.stop()
        raise ObdEmulatorError(f"elm did not come up within {timeout:.0f} s")

    def kill(self) -> None:
        """kill -9: the car (or adapter) vanishes mid-conversation."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ElmEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
