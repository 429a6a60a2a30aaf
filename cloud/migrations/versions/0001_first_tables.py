"""First tables: devices, positions, events, ingest bookkeeping, parcels, outbox, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Self-contained on purpose (plain ``sa`` types, no imports from ``cloud``): a migration must keep
producing the same schema after the models have moved on. ``DateTime(timezone=True)`` is what
``cloud.db.UtcDateTime`` renders to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(length=64)
AWAITING = sa.text("status = 'awaiting_pickup'")


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "vehicles",
        sa.Column("id", DEVICE_ID, primary_key=True),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "lockers",
        sa.Column("id", DEVICE_ID, primary_key=True),
        sa.Column("compartments", sa.Integer(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("version", sa.String(length=64), nullable=False),
    )
    op.create_table(
        "ingested_messages",
        sa.Column("message_id", sa.Uuid(), primary_key=True),
        sa.Column("device_id", DEVICE_ID, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
    )
    op.create_table(
        "positions",
        _id(),
        sa.Column("vehicle_id", DEVICE_ID, sa.ForeignKey("vehicles.id"), nullable=False),
        sa.Column("t", TS, nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("speed_mps", sa.Double(), nullable=True),
        sa.Column("heading_deg", sa.Double(), nullable=True),
        sa.Column("alt_m", sa.Double(), nullable=True),
        sa.Column("hdop", sa.Double(), nullable=True),
        sa.Column("sats", sa.Integer(), nullable=True),
        sa.Column("fix", sa.String(length=2), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=False),
    )
    op.create_index("ix_positions_vehicle_t", "positions", ["vehicle_id", "t"])
    op.create_table(
        "vehicle_events",
        _id(),
        sa.Column("vehicle_id", DEVICE_ID, sa.ForeignKey("vehicles.id"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
    )
    op.create_index("ix_vehicle_events_vehicle_at", "vehicle_events", ["vehicle_id", "at"])
    op.create_table(
        "locker_events",
        _id(),
        sa.Column("locker_id", DEVICE_ID, sa.ForeignKey("lockers.id"), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("compartment", sa.Integer(), nullable=True),
        sa.Column("grant_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
    )
    op.create_index("ix_locker_events_locker_at", "locker_events", ["locker_id", "at"])
    op.create_table(
        "parcels",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("locker_id", DEVICE_ID, sa.ForeignKey("lockers.id"), nullable=False),
        sa.Column("compartment", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("picked_up_at", TS, nullable=True),
    )
    op.create_index("ix_parcels_locker_status", "parcels", ["locker_id", "status"])
    op.create_index(
        "uq_parcels_awaiting_compartment",
        "parcels",
        ["locker_id", "compartment"],
        unique=True,
        sqlite_where=AWAITING,
        postgresql_where=AWAITING,
    )
    op.create_table(
        "outbound_messages",
        _id(),
        sa.Column("topic", sa.String(length=256), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("qos", sa.Integer(), nullable=False),
        sa.Column("retain", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index("ix_outbound_unsent", "outbound_messages", ["sent_at", "id"])
    op.create_table(
        "dead_letters",
        _id(),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("topic", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "dead_letters",
        "outbound_messages",
        "parcels",
        "locker_events",
        "vehicle_events",
        "positions",
        "ingested_messages",
        "lockers",
        "vehicles",
    ):
        op.drop_table(table)
