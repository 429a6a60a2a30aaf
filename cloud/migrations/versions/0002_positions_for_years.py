"""Positions for years of history: an index on ``positions.t`` for time-range scans and pruning.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30

On PostgreSQL a BRIN index: positions arrive roughly in time order, so a block-range summary is
a few pages for years of rows where a btree would be as big as the table's hot columns; it serves
fleet-wide time ranges and retention pruning. Per-vehicle queries keep the btree
``ix_positions_vehicle_t`` of 0001. SQLite has no BRIN; it gets a plain btree on ``t``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_positions_t",
            "positions",
            ["t"],
            postgresql_using="brin",
            postgresql_with={"pages_per_range": 32},
        )
    else:
        op.create_index("ix_positions_t", "positions", ["t"])


def downgrade() -> None:
    op.drop_index("ix_positions_t", table_name="positions")
