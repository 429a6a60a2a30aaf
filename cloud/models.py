"""Tables of the hub, as SQLAlchemy 2 ``Mapped`` classes. API schemas live apart, in ``cloud.api``.

The schema itself is owned by the Alembic migrations in ``cloud/migrations``; these classes must
match them (``tests/cloud/test_migrations.py`` checks that).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cloud.db import UtcDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
DeviceIdCol = String(64)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class ParcelStatus(StrEnum):
    AWAITING_PICKUP = "awaiting_pickup"
    PICKED_UP = "picked_up"


class Vehicle(Base):
    __tablename__ = "vehicles"

    id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    last_seen: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[str] = mapped_column(String(64), default="")
    # The last status as received: uptime, each source's health, outbox depth and drops.
    last_status: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class PositionRow(Base):
    __tablename__ = "positions"
    __table_args__ = (
        # Covering on PostgreSQL (0003): a day's track is read by an index-only scan.
        Index("ix_positions_vehicle_t", "vehicle_id", "t", postgresql_include=["lat", "lon"]),
        # BRIN on PostgreSQL (tiny for years of rows in arrival order), a btree on SQLite.
        Index(
            "ix_positions_t",
            "t",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": 32},
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("vehicles.id"))
    t: Mapped[datetime]
    lat: Mapped[float]
    lon: Mapped[float]
    speed_mps: Mapped[float | None]
    heading_deg: Mapped[float | None]
    alt_m: Mapped[float | None]
    hdop: Mapped[float | None]
    sats: Mapped[int | None]
    fix: Mapped[str | None] = mapped_column(String(2))
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class VehicleEventRow(Base):
    __tablename__ = "vehicle_events"
    __table_args__ = (Index("ix_vehicle_events_vehicle_at", "vehicle_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("vehicles.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class IngestedMessage(Base):
    """One row per message id ever stored: the primary key is what makes redeliveries harmless."""

    __tablename__ = "ingested_messages"
    __table_args__ = (
        # Retention deletes by age (cloud.retention); BRIN on PostgreSQL, as rows arrive in order.
        Index(
            "ix_ingested_messages_received_at",
            "received_at",
            postgresql_using="brin",
            postgresql_with={"pages_per_range": 32},
        ),
    )

    message_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[str] = mapped_column(DeviceIdCol)
    kind: Mapped[str] = mapped_column(String(20))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime]
    n_items: Mapped[int] = mapped_column(Integer)


class Locker(Base):
    __tablename__ = "lockers"

    id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    compartments: Mapped[int] = mapped_column(Integer, default=0)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None]
    version: Mapped[str] = mapped_column(String(64), default="")


class LockerEventRow(Base):
    __tablename__ = "locker_events"
    __table_args__ = (Index("ix_locker_events_locker_at", "locker_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    locker_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("lockers.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]
    compartment: Mapped[int | None]
    grant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    reason: Mapped[str] = mapped_column(String(200), default="")
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class Parcel(Base):
    """A parcel waiting in (or taken from) a compartment. Only the code's keyed hash is kept."""

    __tablename__ = "parcels"
    __table_args__ = (
        Index("ix_parcels_locker_status", "locker_id", "status"),
        # Two parcels may never wait in one compartment, even if two requests race.
        Index(
            "uq_parcels_awaiting_compartment",
            "locker_id",
            "compartment",
            unique=True,
            sqlite_where=text("status = 'awaiting_pickup'"),
            postgresql_where=text("status = 'awaiting_pickup'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    locker_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("lockers.id"))
    compartment: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    code_hash: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    created_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    picked_up_at: Mapped[datetime | None]


class OutboundMessage(Base):
    """The transactional outbox: written with the change that caused it, sent by the dispatcher."""

    __tablename__ = "outbound_messages"
    __table_args__ = (Index("ix_outbound_unsent", "sent_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(256))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    qos: Mapped[int] = mapped_column(Integer, default=1)
    retain: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class DeadLetter(Base):
    """A message ingest could not use, kept verbatim so that the sender's bug can be diagnosed."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(200))
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class VehicleCommand(Base):
    """A signed command the hub queued for a van (through ``outbound_messages``, in the same
    transaction). What became of it is in :class:`VehicleCommandAck`."""

    __tablename__ = "vehicle_commands"
    __table_args__ = (Index("ix_vehicle_commands_vehicle_issued", "vehicle_id", "issued_at"),)

    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("vehicles.id"))
    name: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    issued_by: Mapped[str] = mapped_column(String(20))


class VehicleCommandAck(Base):
    """Every acknowledgement a van sent, as received; the first one for a command is its outcome.
    Kept even for a command id the hub never issued (a refused malformed command says so)."""

    __tablename__ = "vehicle_command_acks"
    __table_args__ = (Index("ix_vehicle_command_acks_command", "command_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("vehicles.id"))
    command_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    ok: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(String(500))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]
    message_id: Mapped[uuid.UUID] = mapped_column(Uuid)
