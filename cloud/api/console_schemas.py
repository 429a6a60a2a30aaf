"""Schemas of the read routes the ops dashboard needs beside the core ones: who am I, the
compartment grid, the event feed, the parcel search."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel

Severity = Literal["info", "warning", "critical"]


class MePublic(BaseModel):
    role: str
    permissions: list[str]


class CompartmentPublic(BaseModel):
    number: int
    occupied: bool
    parcel_id: uuid.UUID | None
    door: Literal["open", "closed", "unknown"]
    alarm: str | None
    last_event_at: AwareDatetime | None


class CompartmentsPublic(BaseModel):
    locker_id: str
    data: list[CompartmentPublic]
    count: int


class EventPublic(BaseModel):
    source: Literal["vehicle", "locker"]
    device_id: str
    kind: str
    severity: Severity
    at: AwareDatetime
    compartment: int | None = None
    reason: str = ""
    lat: float | None = None
    lon: float | None = None
    evidence: dict[str, Any] = {}


class EventsPublic(BaseModel):
    data: list[EventPublic]
    count: int
