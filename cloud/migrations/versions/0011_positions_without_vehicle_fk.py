"""Positions without a foreign key to vehicles: the per-row check cost ingest 40 % of its rate.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

A foreign key is checked row by row, by an internal trigger that looks the vehicle up (``SELECT
1 FROM vehicles ... FOR KEY SHARE``) for every position. On this 2-core machine that check was
5.7 of PostgreSQL's 13 us per COPYed position, and a COPY into ``positions`` ran at 71k rows/s
against 119k without it (``bench.ingest`` and a COPY-only comparison). ``positions`` is the one
table written at that rate, and its only writer already guarantees what the key would: ingest
creates a vehicle's row, in the same transaction, before its first positions
(``cloud.services.ingest._ensure_devices``), and vehicle rows are never deleted. Lower-volume
tables (vehicle events, commands) keep their keys.

SQLite cannot drop a constraint in place: the table is rebuilt (Alembic's batch mode), and its
KPI trigger from 0008, which goes with the old table, is created again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reflects the key of 0001 without a name; batch mode names it by this convention.
SQLITE_FK_NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
SQLITE_FK = "fk_positions_vehicle_id_vehicles"
# As migration 0008 created it (a table rebuild drops the table's triggers).
SQLITE_TRIGGER = """
CREATE TRIGGER kpi_days_bump_positions AFTER INSERT ON positions
WHEN EXISTS (SELECT 1 FROM kpi_days WHERE day = date(NEW.t))
BEGIN
    UPDATE kpi_days SET version = version + 1 WHERE day = date(NEW.t);
END
"""


def _pg_vehicle_keys() -> list[str]:
    """Names of the foreign keys from ``positions`` to ``vehicles`` (0001 left them unnamed)."""
    keys = sa.inspect(op.get_bind()).get_foreign_keys("positions")
    return [k["name"] for k in keys if k["referred_table"] == "vehicles" and k["name"]]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _pg_vehicle_keys():
            op.drop_constraint(name, "positions", type_="foreignkey")
        return
    with op.batch_alter_table(
        "positions", recreate="always", naming_convention=SQLITE_FK_NAMING
    ) as batch:
        batch.drop_constraint(SQLITE_FK, type_="foreignkey")
    op.execute("DROP TRIGGER IF EXISTS kpi_days_bump_positions")
    op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            "positions_vehicle_id_fkey", "positions", "vehicles", ["vehicle_id"], ["id"]
        )
        return
    with op.batch_alter_table("positions", recreate="always") as batch:
        batch.create_foreign_key(SQLITE_FK, "vehicles", ["vehicle_id"], ["id"])
    op.execute("DROP TRIGGER IF EXISTS kpi_days_bump_positions")
    op.execute(SQLITE_TRIGGER)
