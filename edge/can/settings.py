"""Settings of the CAN source: which bus, which DBC, which signals and how often to report them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CanInterface = Literal["socketcan", "slcan", "virtual"]
"""``virtual`` is the simulator: python-can's in-process bus, fed by :mod:`edge.can.player`."""


class SignalSpec(BaseModel):
    """One DBC signal to report. ``message`` is needed only when the signal name is not unique in the
    DBC (e.g. ``CHECKSUM``, ``STATE``); ``alias`` renames it in the updates (default: the DBC name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    message: str | None = None
    alias: str | None = None
    deadband: float = Field(default=0.0, ge=0, description="Report only changes larger than this.")
    max_interval_s: float = Field(
        default=10.0, gt=0, description="Report at least this often while frames arrive."
    )

    @property
    def output_name(self) -> str:
        return self.alias or self.name


class CanSettings(BaseModel):
    """How the van's CAN bus is reached and decoded.

    Only frames whose ids carry a configured signal are received at all: the filters go to the kernel
    on SocketCAN, so the Pi never wakes for the rest of the bus.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    interface: CanInterface = "virtual"
    channel: str = Field(default="vcan0", min_length=1)
    bitrate: int = Field(default=500_000, gt=0, le=1_000_000)
    dbc_file: Path
    signals: list[SignalSpec] = Field(min_length=1)
    receive_timeout_s: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="How long the reader thread blocks; bounds stop latency.",
    )
    queue_size: int = Field(
        default=10_000, ge=1, description="Updates held for a slow consumer before the oldest drop."
    )
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> CanSettings:
        names = [s.output_name for s in self.signals]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"signals reported twice under the same name: {', '.join(dup)}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self
