"""The hub's device registry: which vans and lockers were provisioned, and which are revoked.

``lastmile provision`` writes it alongside the broker's files (:mod:`cloud.provision`), so the hub
itself knows a revoked device: the broker refuses its new connections once reloaded, but a message
already queued for the hub, or one published before the reload, would still arrive; ingest
dead-letters those (reason ``device_revoked``). A device never provisioned through the registry
(the demo, a hub older than it) is not refused: the registry is a deny list, not an allow list, so
turning it on cannot silence a fleet.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import DeviceRecord
from protocol.topics import DeviceKind


class DeviceState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


def record_provisioned(
    session: Session, *, kind: DeviceKind, device_id: str, now: datetime
) -> DeviceRecord:
    """A new broker account: active. Provisioning a revoked id again gives it a new credential."""
    device = session.get(DeviceRecord, device_id)
    if device is None:
        device = DeviceRecord(id=device_id, kind=kind, state=DeviceState.ACTIVE, created_at=now)
        session.add(device)
    else:
        device.kind, device.state, device.rotated_at = kind, DeviceState.ACTIVE, now
    device.revoked_at = None
    return device


def record_rotated(
    session: Session, *, kind: DeviceKind, device_id: str, now: datetime
) -> DeviceRecord:
    """A new password for a device; one provisioned before the registry existed is added now."""
    device = session.get(DeviceRecord, device_id) or record_provisioned(
        session, kind=kind, device_id=device_id, now=now
    )
    device.rotated_at = now
    return device


def record_revoked(
    session: Session, *, kind: DeviceKind, device_id: str, now: datetime
) -> DeviceRecord:
    device = session.get(DeviceRecord, device_id) or record_provisioned(
        session, kind=kind, device_id=device_id, now=now
    )
    device.state, device.revoked_at = DeviceState.REVOKED, now
    return device


def revoked_among(session: Session, device_ids: Iterable[str]) -> set[str]:
    """Which of ``device_ids`` the registry marks revoked (one primary-key lookup)."""
    wanted = set(device_ids)
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(DeviceRecord.id).where(
                DeviceRecord.id.in_(wanted), DeviceRecord.state == DeviceState.REVOKED
            )
        )
    )


def list_devices(
    session: Session, *, kind: DeviceKind | None = None, state: DeviceState | None = None
) -> list[DeviceRecord]:
    query = select(DeviceRecord).order_by(DeviceRecord.id)
    if kind is not None:
        query = query.where(DeviceRecord.kind == kind)
    if state is not None:
        query = query.where(DeviceRecord.state == state)
    return list(session.scalars(query))
