"""OBD-II telematics through an ELM327 adapter (python-OBD); ELM327-emulator is the simulator.

Import this package only when OBD-II is configured: it needs python-OBD (and pint).
"""

from edge.obd.connection import Dtc, ObdConnection, Reading
from edge.obd.errors import (
    ObdConfigError,
    ObdConnectError,
    ObdDisconnectedError,
    ObdEmulatorError,
    ObdError,
    ObdNoAnswerError,
)
from edge.obd.settings import ObdSettings, PidSpec
from edge.obd.source import ObdSource, ObdStats

__all__ = [
    "Dtc",
    "ObdConfigError",
    "ObdConnectError",
    "ObdConnection",
    "ObdDisconnectedError",
    "ObdEmulatorError",
    "ObdError",
    "ObdNoAnswerError",
    "ObdSettings",
    "ObdSource",
    "ObdStats",
    "PidSpec",
    "Reading",
]
