"""API schemas, apart from the tables: ``XCreate`` in, ``XPublic`` out, ``XsPublic(data, count)``.

Parcel schemas live in :mod:`cloud.api.parcel_schemas`.
"""

from __future__ import annotations

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


class VehiclePublic(_Out):
    id: str
    online: bool
    last_seen: AwareDatetime | None
    version: str
    last_position: PositionPublic | None


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
