"""The schema comes from Alembic, on SQLite and PostgreSQL alike, and matches the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from cloud.db import make_engine, migrate
from cloud.models import Base, Vehicle


def test_migrations_create_every_table_and_match_the_models(database_url: str) -> None:
    migrate(database_url)
    migrate(database_url)  # a second start finds nothing to do

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) | {"alembic_version"} <= tables
    assert diff == []


def test_timestamps_come_back_aware_and_in_utc(
    session_factory: sessionmaker[Session],
) -> None:
    amsterdam_summer = timezone(timedelta(hours=2))
    seen = datetime(2026, 7, 1, 14, 30, 5, 123456, tzinfo=amsterdam_summer)
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", last_seen=seen, online=True, version="1"))

    with session_factory() as session:
        vehicle = session.get(Vehicle, "van-1")
        assert vehicle is not None
        assert vehicle.last_seen == seen
        assert vehicle.last_seen.tzinfo is UTC
        assert vehicle.last_seen.hour == 12


def test_a_naive_timestamp_is_refused(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        session.add(Vehicle(id="van-1", last_seen=datetime(2026, 7, 1), online=True, version=""))
        with pytest.raises(Exception, match="naive datetime"):
            session.commit()
