"""API schemas of the KPIs (``GET /api/v1/kpis``); the definitions are in :mod:`cloud.services.kpis`."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class KpiRowPublic(_Out):
    """One UTC day of a depot (``vehicle_id`` null: all its vans and lockers) or of one van.
    A ratio is null when its denominator is zero."""

    day: dt.date
    depot: str
    vehicle_id: str | None
    handovers: int = Field(description="parcels delivered (home) or deposited (locker)")
    vehicle_handovers: int = Field(description="handovers by a van; the rates below use these")
    on_time_eligible: int = Field(description="handovers of parcels promised a window")
    on_time: int
    on_time_pct: float | None
    first_attempts: int
    first_attempt_successes: int
    first_attempt_success_pct: float | None
    road_s: float = Field(description="first trip start to last trip end, summed over vans")
    deliveries_per_hour: float | None = Field(description="handovers per van-hour on the road")
    distance_m: float
    km_per_parcel: float | None
    co2_g: float = Field(description="distance x the vehicle type's emission factor")
    co2_g_per_parcel: float | None
    pickups: int = Field(description="locker pickups of the day")
    dwell_median_s: float | None = Field(description="deposit -> pickup, of the day's pickups")
    dwell_p90_s: float | None
    locker_utilisation_pct: float | None = Field(
        description="depot rows: occupied / available compartment-hours of its lockers"
    )


class LockerKpiPublic(_Out):
    day: dt.date
    locker_id: str
    depot: str
    compartments: int
    occupied_s: float = Field(description="compartment-seconds occupied by deposited parcels")
    available_s: float = Field(description="compartments x seconds of the day up to now")
    utilisation_pct: float | None
    pickups: int
    dwell_median_s: float | None
    dwell_p90_s: float | None


class KpisPublic(BaseModel):
    first: dt.date = Field(serialization_alias="from")
    last: dt.date = Field(serialization_alias="to")
    data: list[KpiRowPublic]
    count: int
    lockers: list[LockerKpiPublic]
