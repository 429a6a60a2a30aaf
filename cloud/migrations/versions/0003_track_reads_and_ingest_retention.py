"""Day-track reads without heap visits, and pruning of the idempotency table by age.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- PostgreSQL: ``ix_positions_vehicle_t`` becomes a covering index ``(vehicle_id, t) INCLUDE (lat,
  lon)``. Trips are derived on read from one vehicle's fixes of a day; with 1,000 vans interleaved
  in arrival order, each of a van's 36,000 fixes of a day sits on a different heap page, so a
  plain index scan reads 36,000 pages, while an index-only scan reads a few hundred index pages.
  On a large live table, build the new index ``CONCURRENTLY`` by hand before upgrading (this
  migration then only swaps names); SQLite keeps its plain index (it has no INCLUDE).
- ``ix_ingested_messages_received_at``: retention deletes idempotency rows by age
  (:mod:`cloud.retention`); BRIN on PostgreSQL (rows arrive in ``received_at`` order, so a few
  pages cover years), a btree on SQLite.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_positions_vehicle_t_covering"
            " ON positions (vehicle_id, t) INCLUDE (lat, lon)"
        )
        op.drop_index("ix_positions_vehicle_t", table_name="positions")
        op.execute("ALTER INDEX ix_positions_vehicle_t_covering RENAME TO ix_positions_vehicle_t")
        op.create_index(
            "ix_ingested_messages_received_at",
            "ingested_messages",
            ["received_at"],
            postgresql_using="brin",
            postgresql_with={"pages_per_range": 32},
        )
    else:
        op.create_index("ix_ingested_messages_received_at", "ingested_messages", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_ingested_messages_received_at", table_name="ingested_messages")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_positions_vehicle_t", table_name="positions")
        op.create_index("ix_positions_vehicle_t", "positions", ["vehicle_id", "t"])
