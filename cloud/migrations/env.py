"""Alembic environment of the hub.

The hub runs migrations in code (:func:`cloud.db.migrate`) and hands us its connection in
``config.attributes["connection"]``. From a shell, ``alembic -c cloud/migrations/alembic.ini -x
url=sqlite:///var/lastmile.db upgrade head`` works too. Logging is left alone: the program owns it.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from cloud.db import make_engine
from cloud.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run against a database")
run_online()
