"""The van agent's settings: one TOML file (see firmware_configs/) plus ``LASTMILE_...`` variables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from edge.can.settings import CanSettings
from edge.driving.settings import DrivingSettings
from edge.gnss.settings import GpsdSettings, NmeaSettings
from edge.gnss.sim import SimGnssSettings
from edge.obd.settings import ObdSettings
from edge.outbox import OutboxLimits
from edge.reporting import ReportingSettings
from edge.settings import AgentSettingsBase

GnssBackend = Literal["sim", "gpsd", "nmea"]


class BatchSettings(BaseModel):
    """Positions are sent in batches: per-message cost dominates MQTT, per-point cost is tiny."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # 1,000 points are ~120 KiB of JSON: well inside the broker's 256 KiB message limit.
    max_points: int = Field(default=60, ge=1, le=1_000)
    max_age_s: float = Field(default=5.0, gt=0, le=3600)


class VehicleSettings(AgentSettingsBase):
    """``gnss`` picks the receiver backend; only the sub-settings of the chosen one are used.

    ``can`` and ``obd`` are optional: a van reads its CAN bus and/or OBD-II port only when the section
    is present (``[can]`` with ``interface = "virtual"`` runs the simulated drive, see
    :func:`edge.app.build_signal_sources`).
    """

    gnss: GnssBackend = "sim"
    sim: SimGnssSettings = SimGnssSettings()
    gpsd: GpsdSettings = GpsdSettings()
    nmea: NmeaSettings = NmeaSettings()
    reporting: ReportingSettings = ReportingSettings()
    batch: BatchSettings = BatchSettings()
    status_interval_s: float = Field(default=30.0, gt=0)
    can: CanSettings | None = None
    obd: ObdSettings | None = None
    # Driving-event thresholds: [driving.harsh], [driving.overspeed], ... (edge/driving/settings.py)
    driving: DrivingSettings = DrivingSettings()
    outbox: OutboxLimits = OutboxLimits()
    command_key: SecretStr | None = Field(
        default=None,
        description="Hex of protocol.commands.derive_command_key(master, id, kind=VEHICLE); "
        "without it every remote command is refused (and acknowledged as such).",
    )

    @field_validator("command_key")
    @classmethod
    def _command_key_is_hex(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                raw = bytes.fromhex(value.get_secret_value())
            except ValueError:
                raise ValueError("must be hex (the derived key, not the master secret)") from None
            if len(raw) < 16:
                raise ValueError("must be at least 16 bytes (32 hex digits)")
        return value

    def command_secret(self) -> bytes | None:
        """The command key as bytes, for :mod:`protocol.commands`; None if not configured."""
        key = self.command_key
        return None if key is None else bytes.fromhex(key.get_secret_value())
