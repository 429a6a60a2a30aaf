"""Schemas of ``/depots``: a depot's site and hours, the vans based there, its lockers' sites."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud.fleet import VehicleType
from cloud.services.sites import MAX_TIME_S

Lat = Annotated[float, Field(ge=-90, le=90)]
Lon = Annotated[float, Field(ge=-180, le=180)]
TimeOfDay = Annotated[
    int, Field(ge=0, le=MAX_TIME_S, description="seconds from midnight UTC (up to 48 h)")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DepotPut(_Strict):
    lat: Lat
    lon: Lon
    opens_s: TimeOfDay = 0
    closes_s: TimeOfDay = 86_400

    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> DepotPut:
        if self.closes_s <= self.opens_s:
            raise ValueError(f"closes_s ({self.closes_s}) must be after opens_s ({self.opens_s})")
        return self


class DepotVanPut(_Strict):
    type: VehicleType = "diesel_van"
    capacity_parcels: int = Field(ge=1, le=10_000)
    capacity_volume_l: int = Field(default=0, ge=0, le=1_000_000)
    capacity_weight_kg: int = Field(default=0, ge=0, le=1_000_000)
    shift_start_s: TimeOfDay
    shift_end_s: TimeOfDay

    @model_validator(mode="after")
    def _shift_starts_before_it_ends(self) -> DepotVanPut:
        if self.shift_end_s <= self.shift_start_s:
            raise ValueError(
                f"shift_end_s ({self.shift_end_s}) must be after shift_start_s "
                f"({self.shift_start_s})"
            )
        return self


class LockerSitePut(_Strict):
    lat: Lat
    lon: Lon


class DepotVanPublic(BaseModel):
    vehicle_id: str
    depot_id: str
    type: str
    capacity_parcels: int
    capacity_volume_l: int
    capacity_weight_kg: int
    shift_start_s: int
    shift_end_s: int
    updated_at: dt.datetime


class LockerSitePublic(BaseModel):
    locker_id: str
    depot_id: str
    lat: float
    lon: float
    updated_at: dt.datetime


class DepotPublic(BaseModel):
    id: str
    lat: float
    lon: float
    opens_s: int
    closes_s: int
    updated_at: dt.datetime
    vans: list[DepotVanPublic]
    lockers: list[LockerSitePublic]


class DepotsPublic(BaseModel):
    data: list[DepotPublic]
    count: int
