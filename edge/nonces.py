"""A device's :class:`protocol.commands.NonceStore` on disk: a replayed command stays refused after
a restart, for as long as the command itself would have been valid.

One small SQLite file (WAL, ``synchronous=FULL``, see :mod:`edge.durable`): the nonce is on disk
before the command is carried out, so a crash in between makes the redelivered copy a replay, never
a second execution. Expired nonces are pruned on each insert; the store stays as small as the
number of commands valid at once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from edge.durable import open_durable_db
from edge.errors import NonceStoreError

_SCHEMA = "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_us INTEGER NOT NULL);"


def _us(t: datetime) -> int:
    return round(t.timestamp() * 1_000_000)


class DurableNonces:
    """Remembers command nonces until their command expires. One event loop owns it."""

    def __init__(self, path: Path | str, *, clock: Callable[[], datetime]) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise NonceStoreError(f"cannot open the nonce store {self.path}: {err}") from err

    def remember(self, nonce: str, *, expires_at: datetime) -> bool:
        """Record ``nonce``; False if it is already known (a replay)."""
        try:
            self._db.execute("DELETE FROM nonces WHERE expires_us < ?", (_us(self._clock()),))
            cur = self._db.execute(
                "INSERT OR IGNORE INTO nonces (nonce, expires_us) VALUES (?, ?)",
                (nonce, _us(expires_at.astimezone(UTC))),
            )
        except sqlite3.Error as err:
            raise NonceStoreError(f"cannot write the nonce store {self.path}: {err}") from err
        return cur.rowcount == 1

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM nonces").fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()
