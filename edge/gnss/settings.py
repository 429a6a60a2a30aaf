"""Settings of the real-receiver backends.

They live apart from the backends so that loading a van's settings never imports pyserial or
pynmeagps: a backend's dependencies are imported only when that backend is selected.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _ReconnectSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    stale_after_s: float = Field(
        default=10.0,
        gt=0,
        description="Report no_fix when nothing usable arrived for this long while connected.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> _ReconnectSettings:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self


class GpsdSettings(_ReconnectSettings):
    """Where gpsd listens. gpsd owns the receiver, so several programs can share it."""

    host: str = "127.0.0.1"
    port: int = Field(default=2947, ge=1, le=65535)


class NmeaSettings(_ReconnectSettings):
    """A receiver on a serial port that speaks NMEA 0183 (USB receivers appear as ttyACM/ttyUSB)."""

    port: str = Field(default="/dev/ttyACM0", min_length=1, description="Device path.")
    baudrate: int = Field(
        default=9600, gt=0, description="u-blox default 9600; many SiRF receivers use 4800."
    )
