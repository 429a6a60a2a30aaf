"""Years of positions: a BRIN index on PostgreSQL, and old positions pruned in bounded chunks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import PositionRow, Vehicle
from cloud.retention import PositionPruner, prune_positions

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _track(session_factory: sessionmaker[Session], *, days_back: int, n: int) -> None:
    with session_factory() as session, session.begin():
        if session.get(Vehicle, "van-1") is None:
            session.add(Vehicle(id="van-1", online=True, version=""))
            session.flush()
        start = NOW - timedelta(days=days_back)
        message_id = uuid.uuid4()
        session.add_all(
            PositionRow(
                vehicle_id="van-1",
                t=start + timedelta(seconds=i),
                lat=52.0,
                lon=4.9,
                message_id=message_id,
            )
            for i in range(n)
        )


def _times(session_factory: sessionmaker[Session]) -> list[datetime]:
    with session_factory() as session:
        return list(session.scalars(select(PositionRow.t).order_by(PositionRow.t)))


def test_positions_older_than_the_retention_go_in_chunks_and_the_rest_stay(
    session_factory: sessionmaker[Session],
) -> None:
    _track(session_factory, days_back=400, n=25)
    _track(session_factory, days_back=31, n=7)
    _track(session_factory, days_back=2, n=3)

    deleted = prune_positions(session_factory, older_than=NOW - timedelta(days=30), chunk=10)

    assert deleted == 32
    assert all(t >= NOW - timedelta(days=30) for t in _times(session_factory))
    assert len(_times(session_factory)) == 3


def test_the_pruner_uses_its_clock_and_counts(session_factory: sessionmaker[Session]) -> None:
    _track(session_factory, days_back=10, n=4)
    _track(session_factory, days_back=1, n=2)
    pruner = PositionPruner(
        session_factory=session_factory,
        retention=timedelta(days=7),
        interval_s=3600,
        chunk=3,
        clock=lambda: NOW,
    )
    assert asyncio.run(pruner.prune_once()) == 4
    assert pruner.pruned == 4
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PositionRow)) == 2


def test_positions_have_a_time_index_brin_on_postgresql(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        conn = session.connection()
        names = {i["name"] for i in inspect(conn).get_indexes("positions")}
        assert {"ix_positions_t", "ix_positions_vehicle_t"} <= names
        if conn.dialect.name == "postgresql":
            method = conn.execute(
                text(
                    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
                    " WHERE c.relname = 'ix_positions_t'"
                )
            ).scalar()
            assert method == "brin"
