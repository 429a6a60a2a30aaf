"""Driving events on the van: harsh acceleration, braking and cornering, overspeed, idling, and
ignition inferred from motion. One small pure detector per event (no clock, no I/O), composed by
:class:`DrivingMonitor`, which the agent feeds with GNSS fixes and CAN/OBD-II signal updates."""

from edge.driving.events import DrivingEvent
from edge.driving.monitor import DrivingMonitor
from edge.driving.settings import (
    CorneringSettings,
    DrivingSettings,
    HarshSettings,
    IdlingSettings,
    IgnitionSettings,
    OverspeedSettings,
    QualitySettings,
)

__all__ = [
    "CorneringSettings",
    "DrivingEvent",
    "DrivingMonitor",
    "DrivingSettings",
    "HarshSettings",
    "IdlingSettings",
    "IgnitionSettings",
    "OverspeedSettings",
    "QualitySettings",
]
