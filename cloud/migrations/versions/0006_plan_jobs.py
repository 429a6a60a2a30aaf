"""Planning jobs and the routes dispatched from them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``plan_jobs`` holds each planning job (queued, running, done, failed), its problem in our JSON
format and the plan once done; ``plan_dispatches`` one row per van and dispatched plan. The van's
acknowledgement is a ``vehicle_command_acks`` row keyed by the route id, so no table of its own.
``plan_dispatches.vehicle_id`` has no foreign key: a plan may name a van the hub has not heard from
yet (it is refused at dispatch, not at planning).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "plan_jobs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("broken", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(1000), nullable=False),
        sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("plan_jobs.id"), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("dispatched_at", TS, nullable=True),
    )
    op.create_index("ix_plan_jobs_created", "plan_jobs", ["created_at"])
    op.create_table(
        "plan_dispatches",
        sa.Column("route_id", sa.Uuid(), primary_key=True),
        sa.Column("plan_id", sa.Uuid(), sa.ForeignKey("plan_jobs.id"), nullable=False),
        sa.Column("vehicle_id", sa.String(64), nullable=False),
        sa.Column("stops", sa.JSON(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
    )
    op.create_index("ix_plan_dispatches_vehicle", "plan_dispatches", ["vehicle_id", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_plan_dispatches_vehicle", table_name="plan_dispatches")
    op.drop_table("plan_dispatches")
    op.drop_index("ix_plan_jobs_created", table_name="plan_jobs")
    op.drop_table("plan_jobs")
