"""Materialised days: per closed UTC day, its KPI rows (depots, vans, lockers) and each van's trips
and stops.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

Filled by the hub's KPI job (:mod:`cloud.kpi_job`) and ``lastmile kpis rebuild``; read by
``GET /api/v1/kpis`` for closed days (see :mod:`cloud.services.kpi_store`) and by the trips
routes for a window of one closed day (:mod:`cloud.services.journey_store`). Late data is noticed
by triggers rather than by every writer: an insert into ``positions``, ``vehicle_events`` or
``parcel_events`` dated on a day that already has a ``kpi_days`` row bumps its ``version``, so the
stored figures (built at ``built_version``) are known to be out of date until rebuilt. On
PostgreSQL one trigger per statement over its transition table (a COPY of a batch costs one pass
over the batch's times, and nothing when every row is later than the last materialised day); on
SQLite, which has no statement triggers, one per row.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The tables whose late rows change a day's KPIs, and their time column.
WATCHED = (("positions", "t"), ("vehicle_events", "at"), ("parcel_events", "at"))

PG_FUNCTION = """
CREATE FUNCTION kpi_days_bump_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE kpi_days SET version = version + 1
    WHERE day IN (
        SELECT DISTINCT (n.{column} AT TIME ZONE 'UTC')::date FROM kpi_new_rows AS n
        WHERE n.{column} < (SELECT (max(k.day) + 1)::timestamp AT TIME ZONE 'UTC' FROM kpi_days AS k)
    );
    RETURN NULL;
END
$$
"""
PG_TRIGGER = """
CREATE TRIGGER kpi_days_bump AFTER INSERT ON {table}
REFERENCING NEW TABLE AS kpi_new_rows
FOR EACH STATEMENT EXECUTE FUNCTION kpi_days_bump_{table}()
"""
SQLITE_TRIGGER = """
CREATE TRIGGER kpi_days_bump_{table} AFTER INSERT ON {table}
WHEN EXISTS (SELECT 1 FROM kpi_days WHERE day = date(NEW.{column}))
BEGIN
    UPDATE kpi_days SET version = version + 1 WHERE day = date(NEW.{column});
END
"""


def _counts() -> list[sa.Column[int]]:
    return [
        sa.Column(name, sa.Integer(), nullable=False)
        for name in (
            "handovers",
            "vehicle_handovers",
            "on_time_eligible",
            "on_time",
            "first_attempts",
            "first_attempt_successes",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "kpi_days",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("built_version", sa.BigInteger(), nullable=True),
        sa.Column("computed_at", TS, nullable=True),
        sa.Column("rules_digest", sa.String(length=64), nullable=True),
        sa.Column("fleet_digest", sa.String(length=64), nullable=True),
    )
    op.create_table(
        "kpi_rows",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), sa.ForeignKey("kpi_days.day"), nullable=False),
        sa.Column("depot", sa.String(length=64), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=True),
        *_counts(),
        sa.Column("road_s", sa.Double(), nullable=False),
        sa.Column("distance_m", sa.Double(), nullable=False),
        sa.Column("co2_g", sa.Double(), nullable=False),
        sa.Column("pickups", sa.Integer(), nullable=False),
        sa.Column("dwell_median_s", sa.Double(), nullable=True),
        sa.Column("dwell_p90_s", sa.Double(), nullable=True),
        sa.Column("locker_occupied_s", sa.Double(), nullable=True),
        sa.Column("locker_available_s", sa.Double(), nullable=True),
    )
    op.create_index("ix_kpi_rows_day", "kpi_rows", ["day", "depot", "vehicle_id"])
    op.create_table(
        "kpi_locker_rows",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), sa.ForeignKey("kpi_days.day"), nullable=False),
        sa.Column("locker_id", sa.String(length=64), nullable=False),
        sa.Column("depot", sa.String(length=64), nullable=False),
        sa.Column("compartments", sa.Integer(), nullable=False),
        sa.Column("occupied_s", sa.Double(), nullable=False),
        sa.Column("available_s", sa.Double(), nullable=False),
        sa.Column("pickups", sa.Integer(), nullable=False),
        sa.Column("dwell_median_s", sa.Double(), nullable=True),
        sa.Column("dwell_p90_s", sa.Double(), nullable=True),
    )
    op.create_index("ix_kpi_locker_rows_day", "kpi_locker_rows", ["day", "locker_id"])
    op.create_table(
        "journey_days",
        sa.Column("day", sa.Date(), sa.ForeignKey("kpi_days.day"), primary_key=True),
        sa.Column("vehicle_id", sa.String(length=64), primary_key=True),
        sa.Column("gaps", sa.Integer(), nullable=False),
    )
    op.create_table(
        "stored_trips",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        *[
            sa.Column(name, sa.Double(), nullable=False)
            for name in ("start_lat", "start_lon", "end_lat", "end_lon", "distance_m")
        ],
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("ended_by", sa.String(length=16), nullable=False),
    )
    op.create_index("ix_stored_trips_day", "stored_trips", ["day", "vehicle_id", "start"])
    op.create_table(
        "stored_stops",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("vehicle_id", sa.String(length=64), nullable=False),
        sa.Column("start", TS, nullable=False),
        sa.Column("end", TS, nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("ignition_off", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_stored_stops_day", "stored_stops", ["day", "vehicle_id", "start"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column in WATCHED:
        if postgres:
            op.execute(PG_FUNCTION.format(table=table, column=column))
            op.execute(PG_TRIGGER.format(table=table))
        else:
            op.execute(SQLITE_TRIGGER.format(table=table, column=column))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _column in WATCHED:
        if postgres:
            op.execute(f"DROP TRIGGER kpi_days_bump ON {table}")
            op.execute(f"DROP FUNCTION kpi_days_bump_{table}()")
        else:
            op.execute(f"DROP TRIGGER kpi_days_bump_{table}")
    op.drop_table("stored_stops")
    op.drop_table("stored_trips")
    op.drop_table("journey_days")
    op.drop_table("kpi_locker_rows")
    op.drop_table("kpi_rows")
    op.drop_table("kpi_days")
