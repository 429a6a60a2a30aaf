"""Remote commands to vans and their acknowledgements; each van's last status.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``vehicle_commands`` holds what the API signed and queued; ``vehicle_command_acks`` every ack that
ingest received on ``fleet/{id}/cmd/ack`` (the first per command is its outcome). No foreign key
from acks to commands: a van also acknowledges what it refused as malformed, and that need not
be a command the hub issued. ``vehicles.last_status`` keeps the van's last retained status (each
source's health, outbox depth and drops) so the API can show it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
DEVICE_ID = sa.String(length=64)


def upgrade() -> None:
    op.add_column("vehicles", sa.Column("last_status", sa.JSON(), nullable=True))
    op.create_table(
        "vehicle_commands",
        sa.Column("command_id", sa.Uuid(), primary_key=True),
        sa.Column("vehicle_id", DEVICE_ID, sa.ForeignKey("vehicles.id"), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("issued_by", sa.String(length=20), nullable=False),
    )
    op.create_index(
        "ix_vehicle_commands_vehicle_issued", "vehicle_commands", ["vehicle_id", "issued_at"]
    )
    op.create_table(
        "vehicle_command_acks",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("vehicle_id", DEVICE_ID, sa.ForeignKey("vehicles.id"), nullable=False),
        sa.Column("command_id", sa.Uuid(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("message_id", sa.Uuid(), nullable=False),
    )
    op.create_index("ix_vehicle_command_acks_command", "vehicle_command_acks", ["command_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_vehicle_command_acks_command", table_name="vehicle_command_acks")
    op.drop_table("vehicle_command_acks")
    op.drop_index("ix_vehicle_commands_vehicle_issued", table_name="vehicle_commands")
    op.drop_table("vehicle_commands")
    with op.batch_alter_table("vehicles") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("last_status")
