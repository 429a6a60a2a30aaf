"""Errors of the OBD-II source, by phase. python-OBD mostly logs instead of raising and returns null
responses; the adapter (:mod:`edge.obd.source`) turns that into these, and nothing above it sees
python-OBD's types."""

from __future__ import annotations

from edge.errors import SourceError


class ObdError(SourceError):
    """Base of every error of the OBD-II source."""


class ObdConfigError(ObdError):
    """A configured PID is not a python-OBD command name (e.g. ``"SPEED"``, ``"RPM"``)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("OBD config is invalid:\n  " + "\n  ".join(problems))
        self.problems = problems


class ObdConnectError(ObdError):
    """The adapter did not answer, or answered but found no car (ignition off, wrong protocol)."""

    def __init__(self, port: str, status: str) -> None:
        super().__init__(f"cannot connect to OBD-II adapter at {port}: {status}")
        self.port = port
        self.status = status


class ObdDisconnectedError(ObdError):
    """The connection was lost while querying (adapter unplugged, emulator gone, car switched off)."""

    def __init__(self, port: str, reason: str) -> None:
        super().__init__(f"OBD-II adapter at {port} disconnected: {reason}")
        self.port = port
        self.reason = reason


class ObdNoAnswerError(ObdError):
    """The adapter is there but the car did not answer a request made on demand (e.g. GET_DTC)."""

    def __init__(self, port: str, command: str) -> None:
        super().__init__(f"no answer to {command} from the car at {port}")
        self.port = port
        self.command = command


class ObdEmulatorError(ObdError):
    """ELM327-emulator is not installed, or did not come up."""
