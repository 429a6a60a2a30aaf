"""The narrow interface between the OBD-II source and an adapter, and its python-OBD implementation.

python-OBD is blocking, logs instead of raising, and answers a lost link with null responses; this
module is the only one that imports it (lazily, so an agent without OBD never loads it and pint) and
turns its conventions into ours: ``None`` for "no answer", :class:`ObdDisconnectedError` for a lost
link. The simulator is the same code against ELM327-emulator (:mod:`edge.obd.emulator`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge.obd.errors import (
    ObdConfigError,
    ObdConnectError,
    ObdDisconnectedError,
    ObdNoAnswerError,
)
from edge.obd.settings import ObdSettings


@dataclass(frozen=True, slots=True)
class Reading:
    """One answered query: magnitude, unit as a short string (``"kph"``, ``"rpm"``, ``"°C"``) and the
    wall-clock time of the answer."""

    value: float
    unit: str
    t: float


@dataclass(frozen=True, slots=True)
class Dtc:
    """A diagnostic trouble code (``"P0143"``) and python-OBD's description of it (may be empty)."""

    code: str
    description: str


class ObdConnection(Protocol):
    """An open link to a car's OBD-II port. Blocking: the source calls it from one worker thread."""

    def supports(self, pid: str) -> bool: ...

    def query(self, pid: str) -> Reading | None:
        """The PID's current value, or ``None`` if the car did not answer. Raises
        :class:`ObdDisconnectedError` if the link is gone."""
        ...

    def dtcs(self) -> tuple[Dtc, ...]: ...

    def close(self) -> None: ...


ObdConnector = Callable[[ObdSettings], ObdConnection]


def check_pid_names(names: list[str]) -> None:
    """Raise :class:`ObdConfigError` for names python-OBD does not know, all at once."""
    import obd  # type: ignore[import-untyped]

    bad = [n for n in names if not obd.commands.has_name(n)]
    if bad:
        raise ObdConfigError(
            [f"unknown PID {n!r} (python-OBD command names, e.g. SPEED)" for n in bad]
        )


class PythonObdConnection:
    """:class:`ObdConnection` over python-OBD's synchronous ``obd.OBD``."""

    def __init__(self, settings: ObdSettings) -> None:
        import obd

        self._obd = obd
        self._port = settings.port
        try:
            conn = obd.OBD(
                settings.port,
                baudrate=settings.baudrate,
                protocol=settings.protocol,
                fast=settings.fast,
                timeout=settings.timeout_s,
                check_voltage=False,
            )
        except (OSError, ValueError) as err:  # pyserial errors are OSError subclasses
            raise ObdConnectError(settings.port, str(err)) from err
        if conn.status() != obd.OBDStatus.CAR_CONNECTED:
            status = str(conn.status())
            conn.close()
            raise ObdConnectError(settings.port, status)
        self._conn: Any = conn

    def _check(self) -> None:
        if self._conn.status() == self._obd.OBDStatus.NOT_CONNECTED:
            raise ObdDisconnectedError(self._port, "no answer from the adapter")

    def supports(self, pid: str) -> bool:
        return bool(self._conn.supports(self._obd.commands[pid]))

    def query(self, pid: str) -> Reading | None:
        try:
            response = self._conn.query(self._obd.commands[pid])
        except (OSError, ValueError) as err:
            raise ObdDisconnectedError(self._port, str(err)) from err
        self._check()
        value = response.value
        if response.is_null() or value is None:
            return None
        magnitude = getattr(value, "magnitude", value)
        if not isinstance(magnitude, int | float):
            return None  # not a number (status bits, strings): not a signal
        unit = f"{value.units:~}" if hasattr(value, "units") else ""
        return Reading(value=float(magnitude), unit=unit, t=float(response.time))

    def dtcs(self) -> tuple[Dtc, ...]:
        try:
            response = self._conn.query(self._obd.commands.GET_DTC)
        except (OSError, ValueError) as err:
            raise ObdDisconnectedError(self._port, str(err)) from err
        self._check()
        if response.is_null():
            raise ObdNoAnswerError(self._port, "GET_DTC")
        return tuple(Dtc(code=str(c), description=str(d or "")) for c, d in response.value)

    def close(self) -> None:
        self._conn.close()


def connect_python_obd(settings: ObdSettings) -> ObdConnection:
    """The default connector: python-OBD to a real adapter or to ELM327-emulator."""
    return PythonObdConnection(settings)
