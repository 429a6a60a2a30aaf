"""Engine, sessions and schema migrations for any SQLAlchemy URL (SQLite by default, PostgreSQL).

Nothing here is built at import time: the composition root or a test calls :func:`make_engine`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, DateTime, Dialect, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from cloud.services.webhook_secrets import SecretBox

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATE_LOCK = 0x6C6D_6967  # PostgreSQL advisory lock key held while migrating ("lmig")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back tz-aware in UTC, on every backend.

    SQLite has no time zones and PostgreSQL returns the session's zone; both come back as UTC here
    so that API responses and comparisons never depend on the backend. Naive datetimes are refused on
    write (``ValueError``): a naive time is a bug waiting for a daylight-saving change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store tz-aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the API read while ingest writes; SQLite ignores foreign keys unless told."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite, makes the file's directory and sets its pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions keep attributes after commit, so a route can answer from what it just wrote."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> Config:
    """Alembic configured in code: migrations work from an installed wheel, no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _refuse_unsealed_upgrade(connection: Connection, box: SecretBox | None) -> None:
    """Refuse, before any migration runs, to pass 0009 without the key that seals webhook secrets.

    Migration 0009 checks this itself, but by then the ones before it have run, and SQLite
    (pysqlite) commits DDL as it goes: a refusal there would leave their tables behind without
    their version stamp, and the next start would fail on them."""
    if box is not None:
        return
    tables = inspect(connection)
    if "webhook_subscriptions" not in tables.get_table_names():
        return
    if "secret" not in {c["name"] for c in tables.get_columns("webhook_subscriptions")}:
        return  # already sealed (0009 or later)
    rows = connection.execute(text("SELECT count(*) FROM webhook_subscriptions")).scalar_one()
    if rows:
        raise RuntimeError(
            f"{rows} webhook subscriptions hold plaintext secrets: migrate through the hub "
            "(lastmile hub serve, or cloud.db.migrate(url, webhook_secret_box=...)) so they "
            "are sealed with its key"
        )


def migrate(url: str, *, webhook_secret_box: SecretBox | None = None) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade head``).

    Blocking; the hub and each ingest worker call it once at start, before anything else touches
    the database. On PostgreSQL an advisory lock serialises processes that start together (the
    second finds nothing left to do); SQLite serialises writers by itself.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK}
                )
            _refuse_unsealed_upgrade(connection, webhook_secret_box)
            config = alembic_config()
            config.attributes["connection"] = connection
            # Migration 0009 seals plaintext webhook secrets with it (the key is never stored).
            config.attributes["webhook_secret_box"] = webhook_secret_box
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    log.info("database %s is at the newest schema", make_url(url).render_as_string())
