"""Writing one batch of received messages: idempotent on message id, one transaction (the caller's).

Only plain SQL-expression bulk inserts (``executemany``) and a few ORM updates, so the same code
runs on SQLite and PostgreSQL. Device rows are created on first contact, because positions and events
reference them and a device may speak before its first status arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cloud.models import (
    DeadLetter,
    IngestedMessage,
    Locker,
    LockerEventRow,
    Parcel,
    ParcelStatus,
    PositionRow,
    Vehicle,
    VehicleEventRow,
)
from protocol.messages import DeviceStatus, LockerEvent, Message, TelemetryBatch, VehicleEvent

D = TypeVar("D", Vehicle, Locker)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message that decoded and belongs to the device named in its topic."""

    topic: str
    message: Message
    payload: bytes  # as received, for a dead letter should storing it fail


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message to dead-letter: ``topic_kind`` and ``reason`` are what gets counted."""

    topic: str
    topic_kind: str
    reason: str
    detail: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0


def _fresh(session: Session, accepted: Sequence[Accepted]) -> tuple[list[Message], int]:
    """Messages whose id is neither stored already nor repeated earlier in the batch."""
    ids = {a.message.id for a in accepted}
    seen: set[uuid.UUID] = set()
    if ids:
        seen.update(
            session.scalars(
                select(IngestedMessage.message_id).where(IngestedMessage.message_id.in_(ids))
            )
        )
    fresh = []
    for a in accepted:
        if a.message.id not in seen:
            seen.add(a.message.id)
            fresh.append(a.message)
    return fresh, len(accepted) - len(fresh)


def _devices(
    session: Session, model: type[D], ids: Iterable[str], *, seen_at: datetime
) -> dict[str, D]:
    """Load or create the device rows for ``ids`` and mark them seen now."""
    wanted = set(ids)
    if not wanted:
        return {}
    found = {d.id: d for d in session.scalars(select(model).where(model.id.in_(wanted)))}
    for device_id in wanted - found.keys():
        device = model(id=device_id, online=False, version="")
        if isinstance(device, Locker):
            device.compartments = 0
        session.add(device)
        found[device_id] = device
    for device in found.values():
        if device.last_seen is None or device.last_seen < seen_at:
            device.last_seen = seen_at
    return found


def _item_count(message: Message) -> int:
    return len(message.points) if isinstance(message, TelemetryBatch) else 1


def _ingested_row(message: Message, received_at: datetime) -> dict[str, Any]:
    if isinstance(message, TelemetryBatch | VehicleEvent):
        device_id, seq = message.vehicle_id, message.seq
    elif isinstance(message, LockerEvent):
        device_id, seq = message.locker_id, message.seq
    elif isinstance(message, DeviceStatus):
        device_id, seq = message.device_id, None
    else:
        raise TypeError(f"the hub does not ingest {type(message).__name__}")
    return {
        "message_id": message.id,
        "device_id": device_id,
        "kind": message.type,
        "seq": seq,
        "received_at": received_at,
        "n_items": _item_count(message),
    }


def store_batch(
    session: Session, items: Sequence[Accepted | Rejected], *, received_at: datetime
) -> StoreResult:
    """Write ``items`` into the open transaction of ``session``; the caller commits.

    Status messages are applied in arrival order (not by ``sent_at``): a last will carries the time
    its device connected, so ordering by ``sent_at`` would let an old "online" win over the will.
    """
    accepted = [i for i in items if isinstance(i, Accepted)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    fresh, duplicates = _fresh(session, accepted)

    vehicle_ids = {m.vehicle_id for m in fresh if isinstance(m, TelemetryBatch | VehicleEvent)}
    vehicle_ids |= {
        m.device_id for m in fresh if isinstance(m, DeviceStatus) and m.kind == "vehicle"
    }
    locker_ids = {m.locker_id for m in fresh if isinstance(m, LockerEvent)}
    locker_ids |= {m.device_id for m in fresh if isinstance(m, DeviceStatus) and m.kind == "locker"}
    vehicles = _devices(session, Vehicle, vehicle_ids, seen_at=received_at)
    lockers = _devices(session, Locker, locker_ids, seen_at=received_at)

    positions: list[dict[str, Any]] = []
    vehicle_events: list[dict[str, Any]] = []
    locker_events: list[dict[str, Any]] = []
    for m in fresh:
        if isinstance(m, TelemetryBatch):
            positions.extend(
                {"vehicle_id": m.vehicle_id, "message_id": m.id, **p.model_dump()} for p in m.points
            )
        elif isinstance(m, VehicleEvent):
            vehicle_events.append(
                {
                    "vehicle_id": m.vehicle_id,
                    "seq": m.seq,
                    "kind": m.kind,
                    "at": m.at,
                    "lat": m.position.lat if m.position else None,
                    "lon": m.position.lon if m.position else None,
                    "evidence": m.evidence,
                    "message_id": m.id,
                }
            )
        elif isinstance(m, LockerEvent):
            locker_events.append(
                {
                    "locker_id": m.locker_id,
                    "seq": m.seq,
                    "kind": m.kind,
                    "at": m.at,
                    "compartment": m.compartment,
                    "grant_id": m.grant_id,
                    "reason": m.reason[:200],
                    "message_id": m.id,
                }
            )
        elif isinstance(m, DeviceStatus):
            device: Vehicle | Locker = (
                vehicles[m.device_id] if m.kind == "vehicle" else lockers[m.device_id]
            )
            device.online = m.online
            device.version = m.version[:64]
            if isinstance(device, Locker) and m.compartments is not None:
                device.compartments = m.compartments
    session.flush()  # device rows first: positions and events reference them

    if positions:
        session.execute(insert(PositionRow), positions)
    if vehicle_events:
        session.execute(insert(VehicleEventRow), vehicle_events)
    if locker_events:
        session.execute(insert(LockerEventRow), locker_events)
        _apply_pickups([m for m in fresh if isinstance(m, LockerEvent)], session)
    if fresh:
        session.execute(insert(IngestedMessage), [_ingested_row(m, received_at) for m in fresh])
    if rejected:
        session.execute(
            insert(DeadLetter),
            [
                {
                    "received_at": received_at,
                    "topic": r.topic[:256],
                    "reason": r.reason[:200],
                    "payload": r.payload,
                }
                for r in rejected
            ],
        )
    return StoreResult(stored=len(fresh), duplicates=duplicates, dead_letters=len(rejected))


def _apply_pickups(events: Sequence[LockerEvent], session: Session) -> None:
    """A code accepted for a parcel's grant means the parcel was collected (skeleton rule)."""
    for ev in events:
        if ev.kind != "code_accepted" or ev.grant_id is None:
            continue
        session.execute(
            update(Parcel)
            .where(
                Parcel.grant_id == ev.grant_id,
                Parcel.locker_id == ev.locker_id,
                Parcel.status == ParcelStatus.AWAITING_PICKUP,
            )
            .values(status=ParcelStatus.PICKED_UP, picked_up_at=ev.at)
        )
