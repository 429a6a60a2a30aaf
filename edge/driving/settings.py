"""Thresholds of the driving-event detectors, one small model per detector (``[driving.*]`` in TOML).

The defaults are fleet defaults for a delivery van, in SI units like the rest of the settings (m/s,
m/s^2, s). Most telematics fleets score harsh events at 0.25-0.35 g held for about half a second; a
van brakes for a red light at ~2-2.5 m/s^2, so -3.0 m/s^2 catches late braking without flagging
ordinary stops.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class HarshSettings(_Frozen):
    """Harsh acceleration and braking, from the vehicle bus's speed or else from GNSS speed."""

    accel_mps2: float = Field(default=2.5, gt=0, description="~0.25 g forward.")
    brake_mps2: float = Field(
        default=-3.0, lt=0, description="~0.3 g backward (a negative number)."
    )
    min_duration_s: float = Field(default=0.5, ge=0, description="The rate must hold this long.")
    min_speed_mps: float = Field(
        default=4.0,
        ge=0,
        description="~15 km/h: slower, GNSS speed is noisy and a last-metre stop is not harsh.",
    )
    window_s: float = Field(
        default=0.25,
        gt=0,
        le=5,
        description="A rate spans at least this much time (CAN speeds are quantised finely).",
    )


class CorneringSettings(_Frozen):
    """Harsh cornering: lateral acceleration = speed x yaw rate (GNSS course change per second)."""

    lateral_mps2: float = Field(default=3.0, gt=0, description="~0.3 g sideways.")
    min_duration_s: float = Field(default=1.0, ge=0)
    min_speed_mps: float = Field(
        default=5.0,
        ge=0,
        description="~18 km/h: below it a receiver's course wanders by tens of degrees.",
    )
    window_s: float = Field(default=0.5, gt=0, le=5)


class OverspeedSettings(_Frozen):
    """One fleet-wide limit (the agent knows no road map). The event is sent when the van is back
    below ``limit_mps - hysteresis_mps``, carrying the peak speed and how long it lasted."""

    limit_mps: float = Field(default=25.0, gt=0, le=150, description="90 km/h.")
    hysteresis_mps: float = Field(
        default=1.5, ge=0, description="So hovering at the limit is one event."
    )
    min_duration_s: float = Field(default=5.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> OverspeedSettings:
        if self.hysteresis_mps >= self.limit_mps:
            raise ValueError("hysteresis_mps must be smaller than limit_mps")
        return self


class IdlingSettings(_Frozen):
    """Engine running (RPM from CAN/OBD-II) while the van stands still for longer than ``after_s``."""

    after_s: float = Field(
        default=180.0, gt=0, description="Traffic lights and short drops are not idling."
    )
    rpm_above: float = Field(
        default=0.0, ge=0, description="The engine counts as on above this RPM."
    )
    stationary_below_mps: float = Field(default=0.5, ge=0)


class IgnitionSettings(_Frozen):
    """Ignition inferred from motion, used only when the van has no vehicle bus (else CAN/OBD RPM)."""

    infer: bool = True
    on_above_mps: float = Field(default=3.0, gt=0, description="Moving faster than this ...")
    on_after_s: float = Field(default=5.0, ge=0, description="... for this long: the engine is on.")
    off_below_mps: float = Field(default=0.5, ge=0, description="Standing slower than this ...")
    off_after_s: float = Field(
        default=300.0,
        gt=0,
        description="... for this long: the engine is off (a delivery stop is shorter).",
    )

    @model_validator(mode="after")
    def _check(self) -> IgnitionSettings:
        if self.off_below_mps > self.on_above_mps:
            raise ValueError("off_below_mps must not exceed on_above_mps")
        return self


class QualitySettings(_Frozen):
    """Which samples the detectors trust. Fixes that fail are skipped (and counted), which the
    detectors then see as a gap."""

    gnss_max_hdop: float = Field(default=5.0, gt=0)
    gnss_min_fix: Literal["2d", "3d"] = "3d"
    gnss_max_gap_s: float = Field(
        default=2.5, gt=0, description="A longer silence between good fixes ends any episode."
    )
    bus_max_gap_s: float = Field(
        default=11.0,
        gt=0,
        description="A bus reports speed on change, with a heartbeat (10 s by default): longer is a gap.",
    )
    max_plausible_mps2: float = Field(
        default=10.0,
        gt=0,
        description="~1 g: a van does not corner or brake harder; a glitch does.",
    )
    speed_signals: tuple[str, ...] = Field(
        default=("speed", "vehicle_speed", "wheel_speed"),
        min_length=1,
        description="Bus signal names (any case) that carry the vehicle speed; the first seen wins.",
    )


class DrivingSettings(_Frozen):
    """Thresholds of every driving-event detector (see :mod:`edge.driving`)."""

    enabled: bool = True
    harsh: HarshSettings = HarshSettings()
    cornering: CorneringSettings = CorneringSettings()
    overspeed: OverspeedSettings = OverspeedSettings()
    idling: IdlingSettings = IdlingSettings()
    ignition: IgnitionSettings = IgnitionSettings()
    quality: QualitySettings = QualitySettings()
