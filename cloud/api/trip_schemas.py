"""API schemas of trips, stops and daily distance (``XPublic`` out, ``XsPublic(data, count)``)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TripPublic(_Out):
    start: AwareDatetime
    end: AwareDatetime
    duration_s: float
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: float = Field(
        description="along the fixes, steps below the jitter threshold ignored"
    )
    points: int
    ended_by: Literal["stop", "ignition_off", "gap", "end_of_track"] = Field(
        description="'gap': GNSS went silent for longer than the split threshold while moving; "
        "'end_of_track': the window or the data ended mid-trip"
    )


class TripsPublic(BaseModel):
    data: list[TripPublic]
    count: int = Field(description="trips in the whole window; 'data' is one page of them")
    distance_m: float = Field(description="of every trip in the window")


class StopPublic(_Out):
    start: AwareDatetime
    end: AwareDatetime
    duration_s: float
    lat: float
    lon: float
    points: int
    ignition_off: bool = Field(description="the engine was off for at least part of the stop")


class StopsPublic(BaseModel):
    data: list[StopPublic]
    count: int = Field(description="stops in the whole window; 'data' is one page of them")


class DayDistancePublic(_Out):
    day: dt.date
    distance_m: float
    trips: int
    driving_s: float


class DayDistancesPublic(BaseModel):
    data: list[DayDistancePublic]
    count: int


class TrackColumnsPublic(BaseModel):
    """A window's fixes as three parallel arrays, oldest first: a day at 1 Hz is 86,400 fixes,
    which as objects would cost the encoder and the client ten times the bytes and time."""

    vehicle_id: str
    count: int
    t: list[float] = Field(description="POSIX seconds (UTC), microsecond precision")
    lat: list[float]
    lon: list[float]
