"""The device registry: every van and locker provisioned, its state and credential dates.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

Written by ``lastmile provision vehicle|locker|rotate|revoke`` when it is given the hub's database;
ingest refuses messages from a device marked ``revoked``. Apart from ``vehicles``/``lockers``,
which ingest creates on first contact: a device is registered before it ever speaks, and a
revoked one must stay refused even though its old rows remain.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("rotated_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("devices")
