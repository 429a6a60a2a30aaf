"""Tables of the hub, as SQLAlchemy 2 ``Mapped`` classes. API schemas live apart, in ``cloud.api``.

The schema itself is owned by the Alembic migrations in ``cloud/migrations``; these classes must
match them (``tests/cloud/test_migrations.py`` checks that).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Double,
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
    """A parcel's lifecycle; :mod:`cloud.services.lifecycle` holds the legal transitions."""

    CREATED = "created"
    AT_DEPOT = "at_depot"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DEPOSITED = "deposited"
    PICKED_UP = "picked_up"
    RETURNED = "returned"


HOLDS_COMPARTMENT = text("status IN ('out_for_delivery', 'deposited')")
"""A parcel reserves its compartment from the courier grant until it leaves the locker."""


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
    # No foreign key to vehicles (0011): checked per row, it cost ingest 40 % of its rate, and
    # ingest creates the vehicle row in the same transaction before its first positions.
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol)
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
    sizes: Mapped[list[str] | None] = mapped_column(JSON)  # as the locker reports them


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
    command_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


class Parcel(Base):
    """A parcel for a locker (``locker_id``) or a home address (``address``, ``lat``/``lon``).

    Codes live in :class:`ParcelGrant` (keyed hashes only); the history in :class:`ParcelEvent`.
    """

    __tablename__ = "parcels"
    __table_args__ = (
        Index("ix_parcels_locker_status", "locker_id", "status"),
        Index("ix_parcels_created_at", "created_at"),
        # Two parcels may never hold one compartment, even if two requests race.
        Index(
            "uq_parcels_compartment_held",
            "locker_id",
            "compartment",
            unique=True,
            sqlite_where=HOLDS_COMPARTMENT,
            postgresql_where=HOLDS_COMPARTMENT,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    reference: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(20))
    size: Mapped[str] = mapped_column(String(1), default="M")
    locker_id: Mapped[str | None] = mapped_column(DeviceIdCol, ForeignKey("lockers.id"))
    compartment: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[float | None] = mapped_column(Double)
    lon: Mapped[float | None] = mapped_column(Double)
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]
    vehicle_id: Mapped[str | None] = mapped_column(DeviceIdCol, ForeignKey("vehicles.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
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


class ParcelEvent(Base):
    """One line of a parcel's history: a transition, a failed attempt, a code issued or revoked."""

    __tablename__ = "parcel_events"
    __table_args__ = (Index("ix_parcel_events_parcel_at", "parcel_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parcel_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("parcels.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(40), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class ParcelGrant(Base):
    """A code the hub issued for a parcel (courier, pickup or return), as its keyed hash only."""

    __tablename__ = "parcel_grants"
    __table_args__ = (
        Index("ix_parcel_grants_parcel", "parcel_id"),
        Index("ix_parcel_grants_state_until", "state", "valid_until"),
    )

    grant_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    parcel_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("parcels.id"))
    kind: Mapped[str] = mapped_column(String(10))
    locker_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("lockers.id"))
    compartment: Mapped[int] = mapped_column(Integer)
    code_hash: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10))
    ended_at: Mapped[datetime | None]


class ProofOfDelivery(Base):
    """Evidence that a parcel reached its recipient: a locker's pickup event or a driver's scan."""

    __tablename__ = "proofs_of_delivery"
    __table_args__ = (Index("ix_proofs_parcel", "parcel_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    parcel_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("parcels.id"))
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20))
    locker_id: Mapped[str | None] = mapped_column(DeviceIdCol)
    compartment: Mapped[int | None] = mapped_column(Integer)
    locker_event_id: Mapped[int | None] = mapped_column(BigInteger)
    vehicle_id: Mapped[str | None] = mapped_column(DeviceIdCol)
    lat: Mapped[float | None] = mapped_column(Double)
    lon: Mapped[float | None] = mapped_column(Double)
    note: Mapped[str] = mapped_column(String(200), default="")


class TrackingToken(Base):
    """A customer's tracking link: only the SHA-256 of its token is kept."""

    __tablename__ = "tracking_tokens"
    __table_args__ = (Index("ix_tracking_tokens_parcel", "parcel_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    parcel_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("parcels.id"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class LockerEventApplied(Base):
    """Locker events the parcel flows have acted on: each is applied exactly once."""

    __tablename__ = "locker_events_applied"

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("locker_events.id"), primary_key=True)
    applied_at: Mapped[datetime]


class LockerCommand(Base):
    """A signed command sent to a locker, and the locker's answer once it arrives."""

    __tablename__ = "locker_commands"
    __table_args__ = (Index("ix_locker_commands_locker_issued", "locker_id", "issued_at"),)

    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    locker_id: Mapped[str] = mapped_column(DeviceIdCol, ForeignKey("lockers.id"))
    name: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    nonce: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(String(200), default="")
    acked_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """Where parcel events go. The secret signs the deliveries, so the hub must keep it: sealed
    (AES-GCM, :mod:`cloud.services.webhook_secrets`) under a key that is not in the database."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret_sealed: Mapped[str] = mapped_column(String(400))
    events: Mapped[list[str]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one subscription: the stored queue the sender works through.

    ``code_grant_id`` names a grant whose code goes into the body at send time (it is derived
    from the master secret, never stored).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    code_grant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(500), default="")


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the delivery log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_deliveries.id"))
    at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(500), default="")
    duration_ms: Mapped[float] = mapped_column(Double)


class DeviceRecord(Base):
    """A provisioned van or locker (``lastmile provision``): ingest refuses a revoked one."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # protocol.topics.DeviceKind
    state: Mapped[str] = mapped_column(String(10))  # cloud.registry.DeviceState
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class PlanJob(Base):
    """A planning job and, once done, its plan (``cloud.services.plan_jobs``).

    ``spec`` is the problem in our JSON format (for a re-plan: the parent's, with the new orders in
    and the cancelled ones out), ``broken`` the vans taken out so far; with ``result`` that is all
    a later re-plan needs, so nothing lives only in the worker's memory."""

    __tablename__ = "plan_jobs"
    __table_args__ = (Index("ix_plan_jobs_created", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    status: Mapped[str] = mapped_column(String(12))
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    broken: Mapped[list[str]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str] = mapped_column(String(1000), default="")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("plan_jobs.id"))
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]


class PlanDispatch(Base):
    """One van's route of a dispatched plan; the van's ack is the ``vehicle_command_acks`` row
    whose ``command_id`` is ``route_id``."""

    __tablename__ = "plan_dispatches"
    __table_args__ = (Index("ix_plan_dispatches_vehicle", "vehicle_id", "sent_at"),)

    route_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("plan_jobs.id"))
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol)
    stops: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    sent_at: Mapped[datetime]


class DepotSite(Base):
    """Where a depot stands and when it is open (``cloud.services.sites``): the planner's start
    and end of every route from it. Times are seconds from midnight UTC (up to 48 h, for a depot
    open past midnight)."""

    __tablename__ = "depot_sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    opens_s: Mapped[int] = mapped_column(Integer)
    closes_s: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class DepotVan(Base):
    """A van based at a depot, with what the planner needs of it: capacity, shift, type."""

    __tablename__ = "depot_vans"
    __table_args__ = (Index("ix_depot_vans_depot", "depot_id"),)

    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    depot_id: Mapped[str] = mapped_column(String(64), ForeignKey("depot_sites.id"))
    type: Mapped[str] = mapped_column(String(40))
    capacity_parcels: Mapped[int] = mapped_column(Integer)
    capacity_volume_l: Mapped[int] = mapped_column(Integer, default=0)
    capacity_weight_kg: Mapped[int] = mapped_column(Integer, default=0)
    shift_start_s: Mapped[int] = mapped_column(Integer)
    shift_end_s: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class LockerSite(Base):
    """Where a locker stands and the depot whose vans fill it (lockers report no position)."""

    __tablename__ = "locker_sites"
    __table_args__ = (Index("ix_locker_sites_depot", "depot_id"),)

    locker_id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    depot_id: Mapped[str] = mapped_column(String(64), ForeignKey("depot_sites.id"))
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[datetime]


class RevokedCredential(Base):
    """An API key (``kind='key'``, its SHA-256 digest) or a bearer token (``kind='token'``, its
    ``jti``) refused from now on, even though the settings hold the key or the token has not
    expired; open streams re-check this table (:mod:`cloud.api.revocation`)."""

    __tablename__ = "revoked_credentials"

    kind: Mapped[str] = mapped_column(String(5), primary_key=True)
    ident: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_by: Mapped[str] = mapped_column(String(100), default="")


class KpiDay(Base):
    """A closed UTC day whose KPIs are materialised (``kpi_rows``, ``kpi_locker_rows``).

    ``version`` is bumped by a database trigger (migration 0008) whenever positions, vehicle
    events or parcel events of that day are inserted after the row exists (late data); the stored
    figures are current while ``built_version == version``. See :mod:`cloud.services.kpi_store`.
    """

    __tablename__ = "kpi_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    built_version: Mapped[int | None] = mapped_column(BigInteger)
    computed_at: Mapped[datetime | None]
    # Digests of the settings the figures were built with (trip rules, fleet): a change of either
    # makes them out of date too.
    rules_digest: Mapped[str | None] = mapped_column(String(64))
    fleet_digest: Mapped[str | None] = mapped_column(String(64))


class KpiRowRecord(Base):
    """One materialised :class:`cloud.services.kpis.KpiRow` (a depot's when ``vehicle_id`` is null)."""

    __tablename__ = "kpi_rows"
    __table_args__ = (Index("ix_kpi_rows_day", "day", "depot", "vehicle_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, ForeignKey("kpi_days.day"))
    depot: Mapped[str] = mapped_column(String(64))
    vehicle_id: Mapped[str | None] = mapped_column(DeviceIdCol)
    handovers: Mapped[int] = mapped_column(Integer)
    vehicle_handovers: Mapped[int] = mapped_column(Integer)
    on_time_eligible: Mapped[int] = mapped_column(Integer)
    on_time: Mapped[int] = mapped_column(Integer)
    first_attempts: Mapped[int] = mapped_column(Integer)
    first_attempt_successes: Mapped[int] = mapped_column(Integer)
    road_s: Mapped[float] = mapped_column(Double)
    distance_m: Mapped[float] = mapped_column(Double)
    co2_g: Mapped[float] = mapped_column(Double)
    pickups: Mapped[int] = mapped_column(Integer)
    dwell_median_s: Mapped[float | None] = mapped_column(Double)
    dwell_p90_s: Mapped[float | None] = mapped_column(Double)
    locker_occupied_s: Mapped[float | None] = mapped_column(Double)
    locker_available_s: Mapped[float | None] = mapped_column(Double)


class KpiLockerRecord(Base):
    """One materialised :class:`cloud.services.kpis.LockerDay`."""

    __tablename__ = "kpi_locker_rows"
    __table_args__ = (Index("ix_kpi_locker_rows_day", "day", "locker_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date, ForeignKey("kpi_days.day"))
    locker_id: Mapped[str] = mapped_column(DeviceIdCol)
    depot: Mapped[str] = mapped_column(String(64))
    compartments: Mapped[int] = mapped_column(Integer)
    occupied_s: Mapped[float] = mapped_column(Double)
    available_s: Mapped[float] = mapped_column(Double)
    pickups: Mapped[int] = mapped_column(Integer)
    dwell_median_s: Mapped[float | None] = mapped_column(Double)
    dwell_p90_s: Mapped[float | None] = mapped_column(Double)


class JourneyDay(Base):
    """A van's materialised day of trips and stops (``stored_trips``, ``stored_stops``), built
    with its day's KPIs and current under the same ``kpi_days`` row."""

    __tablename__ = "journey_days"

    day: Mapped[date] = mapped_column(Date, ForeignKey("kpi_days.day"), primary_key=True)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol, primary_key=True)
    gaps: Mapped[int] = mapped_column(Integer)


class StoredTrip(Base):
    """One trip of a :class:`JourneyDay`, as :class:`cloud.services.trips.Trip` has it."""

    __tablename__ = "stored_trips"
    __table_args__ = (Index("ix_stored_trips_day", "day", "vehicle_id", "start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol)
    start: Mapped[datetime]
    end: Mapped[datetime]
    start_lat: Mapped[float] = mapped_column(Double)
    start_lon: Mapped[float] = mapped_column(Double)
    end_lat: Mapped[float] = mapped_column(Double)
    end_lon: Mapped[float] = mapped_column(Double)
    distance_m: Mapped[float] = mapped_column(Double)
    points: Mapped[int] = mapped_column(Integer)
    ended_by: Mapped[str] = mapped_column(String(16))


class StoredStop(Base):
    """One stop of a :class:`JourneyDay`, as :class:`cloud.services.trips.Stop` has it."""

    __tablename__ = "stored_stops"
    __table_args__ = (Index("ix_stored_stops_day", "day", "vehicle_id", "start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    vehicle_id: Mapped[str] = mapped_column(DeviceIdCol)
    start: Mapped[datetime]
    end: Mapped[datetime]
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    points: Mapped[int] = mapped_column(Integer)
    ignition_off: Mapped[bool] = mapped_column(Boolean)
