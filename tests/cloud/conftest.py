"""Fixtures of the hub's tests: a migrated database (SQLite and PostgreSQL) and its sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.db import make_engine, make_session_factory, migrate


@pytest.fixture
def session_factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a freshly migrated database; runs each test on SQLite and on PostgreSQL."""
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
