"""API schemas, apart from the tables: ``XCreate`` in, ``XPublic`` out, ``XsPublic(data, count)``.

Parcel schemas live in :mod:`cloud.api.parcel_schemas`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class PositionPublic(_Out):
    t: AwareDatetime
    lat: float
    lon: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    alt_m: float | None = None
    hdop: float | None = None
    sats: int | None = None
    fix: Literal["2d", "3d"] | None = None


class PositionsPublic(BaseModel):
    data: list[PositionPublic]
    count: int


class VehicleStatusPublic(BaseModel):
    """The van's last status: each source's health (``gnss_state``, ``can``, ``obd``, ...) and
    its outbox (rows and bytes waiting, rows dropped by reason)."""

    online: bool
    sent_at: AwareDatetime
    uptime_s: float
    outbox_depth: int
    outbox_bytes: int = 0
    outbox_dropped: dict[str, int] = Field(default_factory=dict)
    health: dict[str, str] = Field(default_factory=dict)


class VehiclePublic(_Out):
    id: str
    online: bool
    last_seen: AwareDatetime | None
    version: str
    last_position: PositionPublic | None
    status: VehicleStatusPublic | None = None


class VehiclesPublic(BaseModel):
    data: list[VehiclePublic]
    count: int


class LockerPublic(_Out):
    id: str
    online: bool
    last_seen: AwareDatetime | None
    version: str
    compartments: int = Field(description="0 until the locker has reported its status")
    occupied: int = Field(
        description="compartments holding a parcel, or reserved for one on its way"
    )


class LockersPublic(BaseModel):
    data: list[LockerPublic]
    count: int


VehicleCommandName = Literal[
    "set_reporting_profile", "send_position", "read_dtcs", "reload_settings"
]


class VehicleCommandCreate(BaseModel):
    """A remote command for a van (see ``edge.commands`` for each command's arguments)."""

    model_config = ConfigDict(extra="forbid")

    name: VehicleCommandName
    args: dict[str, str | int | bool | float] = Field(
        default_factory=dict,
        description="e.g. {'profile': 'moving', 'interval_s': 2} for set_reporting_profile",
    )
    ttl_s: int = Field(
        default=300, ge=5, le=3600, description="the van refuses the command after this long"
    )


class CommandAckPublic(_Out):
    ok: bool
    reason: str = Field(description="why the van refused it (empty when ok)")
    detail: str
    result: dict[str, float | int | str | bool | list[str]]
    received_at: AwareDatetime


class VehicleCommandPublic(BaseModel):
    command_id: uuid.UUID
    vehicle_id: str
    name: str
    args: dict[str, str | int | bool | float]
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    status: Literal["pending", "done", "refused"]
    ack: CommandAckPublic | None


class VehicleCommandsPublic(BaseModel):
    data: list[VehicleCommandPublic]
    count: int
