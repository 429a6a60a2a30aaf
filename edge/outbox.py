"""Durable outbox: every message an agent sends is written here first and deleted only once the
broker has acknowledged it (QoS 1 PUBACK).

SQLite in WAL mode with ``synchronous=FULL``: a committed ``put`` survives kill -9 and a power cut.
Rows drain in ``(priority desc, seq)`` order. ``seq`` comes from ``AUTOINCREMENT``, so it never repeats
on a device even after rows are deleted; messages embed it so the hub can spot gaps and repeats.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.errors import OutboxError

Payload = bytes | Callable[[int], bytes]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drain_order ON outbox (priority DESC, seq);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    priority: int


class Outbox:
    """A FIFO of MQTT messages on disk. Not thread-safe: one event loop owns it."""

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise OutboxError(f"cannot open outbox {self.path}: {err}") from err

    def put(
        self,
        topic: str,
        payload: Payload,
        *,
        qos: int = 1,
        retain: bool = False,
        priority: int = 0,
    ) -> int:
        """Store one message durably and return its sequence number.

        ``payload`` may be a function of the sequence number, so a message can carry its own ``seq``;
        the row is written in one transaction either way.
        """
        try:
            with self._transaction():
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, retain, priority, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        topic,
                        payload if isinstance(payload, bytes) else b"",
                        qos,
                        int(retain),
                        priority,
                        time.time(),
                    ),
                )
                seq = cur.lastrowid
                assert seq is not None
                if not isinstance(payload, bytes):
                    self._db.execute(
                        "UPDATE outbox SET payload = ? WHERE seq = ?", (payload(seq), seq)
                    )
        except sqlite3.Error as err:
            raise OutboxError(f"cannot write to outbox {self.path}: {err}") from err
        return seq

    def peek(self, limit: int) -> list[OutboxEntry]:
        """The next ``limit`` messages to send, oldest first within a priority, without removing them."""
        rows = self._db.execute(
            "SELECT seq, topic, payload, qos, retain, priority FROM outbox"
            " ORDER BY priority DESC, seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxEntry(s, t, p, q, bool(r), pr) for s, t, p, q, r, pr in rows]

    def ack(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker has acknowledged."""
        try:
            with self._transaction():
                self._db.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s in seqs))
        except sqlite3.Error as err:
            raise OutboxError(f"cannot update outbox {self.path}: {err}") from err

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Tx:
        return _Tx(self._db)


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
