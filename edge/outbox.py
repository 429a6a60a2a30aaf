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

from edge.durable import open_durable_db
from edge.errors import MessageTooLargeError, OutboxError

Payload = bytes | Callable[[int], bytes]

# Mosquitto drops the connection on a message over its message_size_limit (256 KiB in our configs)
# without a PUBACK, so an oversized row would be re-sent forever and block the queue behind it.
MAX_PAYLOAD_BYTES = 256 * 1024

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
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL
);
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
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        try:
            self._db = open_durable_db(
                self.path, _SCHEMA, synchronous=synchronous, check_same_thread=False
            )
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
        the row is written in one transaction either way. Raises :class:`MessageTooLargeError`
        (nothing is written) for a payload the broker would refuse.
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
                data = payload if isinstance(payload, bytes) else payload(seq)
                if len(data) > self.max_payload_bytes:
                    raise MessageTooLargeError(topic, len(data), self.max_payload_bytes)
                if not isinstance(payload, bytes):
                    self._db.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (data, seq))
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

    def refuse(self, seq: int, reason: str) -> None:
        """Set a message aside that the broker accepted but will not deliver (e.g. not authorised).

        It leaves the queue, so it cannot block what follows, but it is kept with the broker's
        reason for a technician or a later re-send: refused data is reported, not lost.
        """
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO refused (seq, topic, payload, reason, refused_at)"
                    " SELECT seq, topic, payload, ?, ? FROM outbox WHERE seq = ?",
                    (reason, time.time(), seq),
                )
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        except sqlite3.Error as err:
            raise OutboxError(f"cannot update outbox {self.path}: {err}") from err

    def refused(self) -> list[tuple[int, str, str]]:
        """(seq, topic, reason) of every message the broker refused, oldest first."""
        rows = self._db.execute("SELECT seq, topic, reason FROM refused ORDER BY seq").fetchall()
        return [(int(s), str(t), str(r)) for s, t, r in rows]

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
