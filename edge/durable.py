"""One way to open the small SQLite files agents keep their state in (outbox, grants, lockout, ...).

WAL with ``synchronous=FULL``: a committed change survives kill -9 and a power cut, which is the
point of every one of these files. Autocommit mode (``isolation_level=None``), so each store opens
its transactions explicitly and nothing is left half-open by the driver.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal


def open_durable_db(
    path: Path,
    schema: str,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    check_same_thread: bool = True,
) -> sqlite3.Connection:
    """Create the parent directory, open ``path`` and apply ``schema`` (idempotent DDL).

    Raises ``sqlite3.Error`` or ``OSError``; each store translates them into its own error type.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db
