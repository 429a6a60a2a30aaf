"""Sites: depots with coordinates and opening hours, their vans, and where each locker stands.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

What ``POST /plans/from-hub`` builds a day's problem from (``cloud.planning.from_hub``): the
``[fleet]`` setting names depots, but a planner needs coordinates, hours and capacities. Lockers
are not foreign keys to ``lockers``: a locker's site is set before the locker first reports.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "depot_sites",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("opens_s", sa.Integer(), nullable=False),
        sa.Column("closes_s", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "depot_vans",
        sa.Column("vehicle_id", sa.String(length=64), primary_key=True),
        sa.Column(
            "depot_id", sa.String(length=64), sa.ForeignKey("depot_sites.id"), nullable=False
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("capacity_parcels", sa.Integer(), nullable=False),
        sa.Column("capacity_volume_l", sa.Integer(), nullable=False),
        sa.Column("capacity_weight_kg", sa.Integer(), nullable=False),
        sa.Column("shift_start_s", sa.Integer(), nullable=False),
        sa.Column("shift_end_s", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_depot_vans_depot", "depot_vans", ["depot_id"])
    op.create_table(
        "locker_sites",
        sa.Column("locker_id", sa.String(length=64), primary_key=True),
        sa.Column(
            "depot_id", sa.String(length=64), sa.ForeignKey("depot_sites.id"), nullable=False
        ),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_locker_sites_depot", "locker_sites", ["depot_id"])


def downgrade() -> None:
    op.drop_index("ix_locker_sites_depot", table_name="locker_sites")
    op.drop_table("locker_sites")
    op.drop_index("ix_depot_vans_depot", table_name="depot_vans")
    op.drop_table("depot_vans")
    op.drop_table("depot_sites")
