"""Parcel lifecycle: history, grants of every kind, proofs of delivery, tracking, webhooks, commands.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Existing parcels were all in a locker: ``awaiting_pickup`` becomes ``deposited``, and each one's
pickup code (its keyed hash and grant id) moves to ``parcel_grants`` -- still valid if it was
waiting, ``used`` if it was picked up. Self-contained like 0001 (plain ``sa`` types).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(length=64)
HOLDS = sa.text("status IN ('out_for_delivery', 'deposited')")
AWAITING = sa.text("status = 'awaiting_pickup'")


def _id() -> sa.Column[int]:
    return sa.Column("id", BIG_ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    # A locker's answer to a remote command arrives as an event naming the command.
    op.add_column("locker_events", sa.Column("command_id", sa.Uuid(), nullable=True))
    # Compartment sizes as the locker reports them, so the hub reserves one that fits.
    op.add_column("lockers", sa.Column("sizes", sa.JSON(), nullable=True))
    # Recreating ``parcels`` (SQLite's batch mode) must happen before any table references it,
    # so the old codes wait in a plain scratch table meanwhile.
    op.execute(
        "CREATE TABLE scratch_0004_codes AS SELECT grant_id, id AS parcel_id, locker_id,"
        " compartment, code_hash, created_at, valid_until, status, picked_up_at FROM parcels"
    )
    op.drop_index("uq_parcels_awaiting_compartment", table_name="parcels")
    with op.batch_alter_table("parcels") as batch:
        batch.drop_column("code_hash")
        batch.drop_column("grant_id")
        batch.drop_column("valid_until")
        batch.alter_column("locker_id", existing_type=DEVICE_ID, nullable=True)
        batch.alter_column("compartment", existing_type=sa.Integer(), nullable=True)
        batch.add_column(
            sa.Column("reference", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("size", sa.String(length=1), nullable=False, server_default="M"))
        batch.add_column(sa.Column("address", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("lat", sa.Double(), nullable=True))
        batch.add_column(sa.Column("lon", sa.Double(), nullable=True))
        batch.add_column(sa.Column("window_start", TS, nullable=True))
        batch.add_column(sa.Column("window_end", TS, nullable=True))
        batch.add_column(sa.Column("vehicle_id", DEVICE_ID, nullable=True))
        batch.create_foreign_key("fk_parcels_vehicle_id", "vehicles", ["vehicle_id"], ["id"])
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("updated_at", TS, nullable=True))
        batch.add_column(sa.Column("delivered_at", TS, nullable=True))
    op.execute("UPDATE parcels SET status = 'deposited' WHERE status = 'awaiting_pickup'")
    op.execute("UPDATE parcels SET updated_at = coalesce(picked_up_at, created_at)")
    with op.batch_alter_table("parcels") as batch:
        batch.alter_column("updated_at", existing_type=TS, nullable=False)
        batch.alter_column("reference", existing_type=sa.String(length=100), server_default=None)
        batch.alter_column("size", existing_type=sa.String(length=1), server_default=None)
        batch.alter_column("attempts", existing_type=sa.Integer(), server_default=None)
    op.create_index("ix_parcels_created_at", "parcels", ["created_at"])
    op.create_index(
        "uq_parcels_compartment_held",
        "parcels",
        ["locker_id", "compartment"],
        unique=True,
        sqlite_where=HOLDS,
        postgresql_where=HOLDS,
    )
    op.create_table(
        "parcel_grants",
        sa.Column("grant_id", sa.Uuid(), primary_key=True),
        sa.Column("parcel_id", sa.Uuid(), sa.ForeignKey("parcels.id"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("locker_id", DEVICE_ID, sa.ForeignKey("lockers.id"), nullable=False),
        sa.Column("compartment", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("valid_until", TS, nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_index("ix_parcel_grants_parcel", "parcel_grants", ["parcel_id"])
    op.create_index("ix_parcel_grants_state_until", "parcel_grants", ["state", "valid_until"])
    op.execute(
        "INSERT INTO parcel_grants (grant_id, parcel_id, kind, locker_id, compartment, code_hash,"
        " issued_at, valid_until, state, ended_at)"
        " SELECT grant_id, parcel_id, 'pickup', locker_id, compartment, code_hash, created_at,"
        " valid_until, CASE WHEN status = 'awaiting_pickup' THEN 'active' ELSE 'used' END,"
        " picked_up_at FROM scratch_0004_codes"
    )
    op.drop_table("scratch_0004_codes")
    op.create_table(
        "parcel_events",
        _id(),
        sa.Column("parcel_id", sa.Uuid(), sa.ForeignKey("parcels.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_parcel_events_parcel_at", "parcel_events", ["parcel_id", "at"])
    op.create_table(
        "proofs_of_delivery",
        _id(),
        sa.Column("parcel_id", sa.Uuid(), sa.ForeignKey("parcels.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("locker_id", DEVICE_ID, nullable=True),
        sa.Column("compartment", sa.Integer(), nullable=True),
        sa.Column("locker_event_id", sa.BigInteger(), nullable=True),
        sa.Column("vehicle_id", DEVICE_ID, nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
    )
    op.create_index("ix_proofs_parcel", "proofs_of_delivery", ["parcel_id"])
    op.create_table(
        "tracking_tokens",
        sa.Column("token_hash", sa.String(length=64), primary_key=True),
        sa.Column("parcel_id", sa.Uuid(), sa.ForeignKey("parcels.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_tracking_tokens_parcel", "tracking_tokens", ["parcel_id"])
    op.create_table(
        "locker_events_applied",
        sa.Column("event_id", BIG_ID, sa.ForeignKey("locker_events.id"), primary_key=True),
        sa.Column("applied_at", TS, nullable=False),
    )
    op.create_table(
        "locker_commands",
        sa.Column("command_id", sa.Uuid(), primary_key=True),
        sa.Column("locker_id", DEVICE_ID, sa.ForeignKey("lockers.id"), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("acked_at", TS, nullable=True),
    )
    op.create_index(
        "ix_locker_commands_locker_issued", "locker_commands", ["locker_id", "issued_at"]
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column(
            "subscription_id",
            sa.Uuid(),
            sa.ForeignKey("webhook_subscriptions.id"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("code_grant_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=False),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "id"]
    )
    op.create_table(
        "webhook_attempts",
        _id(),
        sa.Column("delivery_id", BIG_ID, sa.ForeignKey("webhook_deliveries.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
    )
    op.create_index("ix_webhook_attempts_delivery", "webhook_attempts", ["delivery_id"])


def downgrade() -> None:
    for table in (
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_subscriptions",
        "locker_commands",
        "locker_events_applied",
        "tracking_tokens",
        "proofs_of_delivery",
        "parcel_events",
    ):
        op.drop_table(table)
    with op.batch_alter_table("locker_events") as batch:
        batch.drop_column("command_id")
    # Not batch mode: rebuilding ``lockers`` on SQLite would break the tables referencing it.
    op.execute("ALTER TABLE lockers DROP COLUMN sizes")
    op.drop_index("uq_parcels_compartment_held", table_name="parcels")
    op.drop_index("ix_parcels_created_at", table_name="parcels")
    op.execute("DELETE FROM parcel_grants WHERE kind <> 'pickup'")
    op.execute("DELETE FROM parcels WHERE id NOT IN (SELECT parcel_id FROM parcel_grants)")
    op.execute("UPDATE parcels SET status = 'awaiting_pickup' WHERE status <> 'picked_up'")
    op.execute(
        "CREATE TABLE scratch_0004_codes AS SELECT parcel_id, grant_id, code_hash, valid_until,"
        " issued_at FROM parcel_grants"
    )
    op.drop_table("parcel_grants")
    with op.batch_alter_table("parcels") as batch:
        for column in (
            "reference",
            "size",
            "address",
            "lat",
            "lon",
            "window_start",
            "window_end",
            "vehicle_id",
            "attempts",
            "updated_at",
            "delivered_at",
        ):
            batch.drop_column(column)
        batch.add_column(sa.Column("code_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("grant_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("valid_until", TS, nullable=True))
    latest = (
        "(SELECT g.{col} FROM scratch_0004_codes g WHERE g.parcel_id = parcels.id"
        " ORDER BY g.issued_at DESC LIMIT 1)"
    )
    op.execute(
        "UPDATE parcels SET "  # noqa: S608 - fixed column names, no input
        + ", ".join(
            f"{c} = {latest.format(col=c)}" for c in ("code_hash", "grant_id", "valid_until")
        )
    )
    op.drop_table("scratch_0004_codes")
    with op.batch_alter_table("parcels") as batch:
        batch.alter_column("code_hash", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("grant_id", existing_type=sa.Uuid(), nullable=False)
        batch.alter_column("valid_until", existing_type=TS, nullable=False)
        batch.create_unique_constraint("uq_parcels_grant_id", ["grant_id"])
    op.create_index(
        "uq_parcels_awaiting_compartment",
        "parcels",
        ["locker_id", "compartment"],
        unique=True,
        sqlite_where=AWAITING,
        postgresql_where=AWAITING,
    )
