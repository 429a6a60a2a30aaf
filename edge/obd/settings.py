"""Settings of the OBD-II source: where the ELM327 adapter is, and which PIDs to poll how often."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PidSpec(BaseModel):
    """One python-OBD mode-01 command by name (``SPEED``, ``RPM``, ``COOLANT_TEMP``, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Z0-9_]+$")
    interval_s: float = Field(default=1.0, gt=0, le=3600)


class ObdSettings(BaseModel):
    """How the ELM327 adapter is reached.

    ``port`` is a serial device or pty (``/dev/rfcomm0``, ``/dev/pts/3``) or ``socket://host:port`` for a
    Wi-Fi adapter; a socket port needs ``baudrate`` (python-OBD's baud detection hangs on sockets).
    ``protocol`` pins the OBD protocol (``"6"`` = ISO 15765-4 CAN 11-bit 500 kbaud, what most vans since
    2008 speak): connecting takes ~1 s instead of ~4 s with auto-detection.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    port: str = Field(min_length=1)
    baudrate: int | None = Field(default=38400, gt=0)
    protocol: str | None = Field(default="6", pattern=r"^[1-9A-C]$")
    fast: bool = Field(
        default=False, description="python-OBD's fast mode; off, as some adapters mis-answer it."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    pids: list[PidSpec] = Field(min_length=1)
    failures_before_reconnect: int = Field(
        default=3, ge=1, description="Consecutive unanswered queries that mean the link is gone."
    )
    reconnect_min_s: float = Field(
        default=0.5,
        ge=0.5,
        description="At least 0.5 s: reopening right after close() fails (rigs README section 3).",
    )
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ObdSettings:
        if self.port.startswith("socket://") and self.baudrate is None:
            raise ValueError("a socket:// port needs baudrate (auto-detection hangs on sockets)")
        names = [p.name for p in self.pids]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"PIDs listed twice: {', '.join(dup)}")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self
