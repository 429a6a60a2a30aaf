"""The event feed: vehicle and locker events, newest first, each with how much it matters.

Severity is data here (not in the page) so every client ranks an alert the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import false, select
from sqlalchemy.orm import Session

from cloud.models import LockerEventRow, VehicleEventRow

Severity = Literal["info", "warning", "critical"]

SEVERITY: dict[str, Severity] = {
    "door_forced": "critical",
    "door_left_open": "warning",
    "unlock_not_opened": "warning",
    "keypad_lockout": "warning",
    "command_refused": "warning",
    "harsh_braking": "warning",
    "harsh_acceleration": "warning",
    "harsh_cornering": "warning",
    "overspeed": "warning",
    "crash": "critical",
    "route_late": "warning",  # a planned stop predicted late (cloud.services.route_alerts)
}
"""Kinds that are alerts; any other kind is ``info``. Vehicle kinds are open-ended strings."""


def severity_of(kind: str) -> Severity:
    return SEVERITY.get(kind, "info")


@dataclass(frozen=True, slots=True)
class FeedEvent:
    source: Literal["vehicle", "locker"]
    device_id: str
    kind: str
    severity: Severity
    at: datetime
    compartment: int | None = None
    reason: str = ""
    lat: float | None = None
    lon: float | None = None
    evidence: dict[str, Any] | None = None


def list_events(
    session: Session,
    *,
    since: datetime | None,
    limit: int,
    alerts_only: bool,
    until: datetime | None = None,
    device_id: str | None = None,
    compartment: int | None = None,
) -> list[FeedEvent]:
    """At most ``limit`` events of both kinds in [``since``, ``until``), newest first; of one
    device, and of one locker compartment (which leaves vehicles out), when given."""
    # Ties in time keep arrival order (id), so a door's open and close never swap.
    vq = (
        select(VehicleEventRow)
        .order_by(VehicleEventRow.at.desc(), VehicleEventRow.id.desc())
        .limit(limit)
    )
    lq = (
        select(LockerEventRow)
        .order_by(LockerEventRow.at.desc(), LockerEventRow.id.desc())
        .limit(limit)
    )
    if since is not None:
        vq = vq.where(VehicleEventRow.at >= since)
        lq = lq.where(LockerEventRow.at >= since)
    if until is not None:
        vq = vq.where(VehicleEventRow.at < until)
        lq = lq.where(LockerEventRow.at < until)
    if device_id is not None:
        vq = vq.where(VehicleEventRow.vehicle_id == device_id)
        lq = lq.where(LockerEventRow.locker_id == device_id)
    if compartment is not None:
        vq = vq.where(false())  # a van has no compartments
        lq = lq.where(LockerEventRow.compartment == compartment)
    if alerts_only:
        vq = vq.where(VehicleEventRow.kind.in_(SEVERITY))
        lq = lq.where(LockerEventRow.kind.in_(SEVERITY))
    events = [
        FeedEvent(
            source="vehicle",
            device_id=v.vehicle_id,
            kind=v.kind,
            severity=severity_of(v.kind),
            at=v.at,
            lat=v.lat,
            lon=v.lon,
            evidence=dict(v.evidence),
        )
        for v in session.scalars(vq)
    ]
    events += [
        FeedEvent(
            source="locker",
            device_id=e.locker_id,
            kind=e.kind,
            severity=severity_of(e.kind),
            at=e.at,
            compartment=e.compartment,
            reason=e.reason,
        )
        for e in session.scalars(lq)
    ]
    events.sort(key=lambda e: e.at, reverse=True)
    return events[:limit]
