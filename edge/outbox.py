"""Durable outbox: every message an agent sends is written here first and deleted only once the
broker has acknowledged it (QoS 1 PUBACK).

SQLite in WAL mode with ``synchronous=FULL``: a committed ``put`` survives kill -9 and a power cut.
Rows drain in ``(priority desc, seq)`` order. ``seq`` comes from ``AUTOINCREMENT``, so it never repeats
on a device even after rows are deleted; messages embed it so the hub can spot gaps and repeats.

Bounds (:class:`OutboxLimits`, optional): a van offline for weeks must not fill its SD card, and data
older than the hub's retention is worth nothing. The drop policy, applied in the transaction of the
``put`` that crossed a bound (so the file never stays over it):

- over ``max_rows`` or ``max_bytes``: the *lowest priority* rows go first, oldest first within a
  priority. Positions (priority 0) are dropped before any event (priority 1), and an event only
  when no position is left. The row just put is a candidate like any other, so a position put into
  a box full of events is the one dropped. Dropping goes ``slack`` below the bound (hysteresis), so
  a full box does not pay for a victim search on every put.
- older than ``max_age_s`` (by the time it was queued): dropped whatever its priority, checked at
  most every ``age_check_s`` and on :meth:`Outbox.expire`.

Every drop is counted by reason (``rows``, ``bytes``, ``age``) and priority in the same file, so
the counters survive restarts and travel in the device's status. Depth (rows and bytes) is kept by
triggers in a one-row table, so reading it costs nothing even with other processes writing.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.durable import open_durable_db
from edge.errors import MessageTooLargeError, OutboxError

log = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS outbox_size (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO outbox_size (id, rows, bytes)
    SELECT 1, count(*), coalesce(sum(length(payload)), 0) FROM outbox;
CREATE TRIGGER IF NOT EXISTS outbox_size_insert AFTER INSERT ON outbox BEGIN
    UPDATE outbox_size SET rows = rows + 1, bytes = bytes + length(NEW.payload) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS outbox_size_delete AFTER DELETE ON outbox BEGIN
    UPDATE outbox_size SET rows = rows - 1, bytes = bytes - length(OLD.payload) WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS outbox_size_update AFTER UPDATE OF payload ON outbox BEGIN
    UPDATE outbox_size SET bytes = bytes - length(OLD.payload) + length(NEW.payload) WHERE id = 1;
END;
CREATE TABLE IF NOT EXISTS dropped (
    reason TEXT NOT NULL,
    priority INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    PRIMARY KEY (reason, priority)
);
CREATE TABLE IF NOT EXISTS refused (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    reason TEXT NOT NULL,
    refused_at REAL NOT NULL
);
"""


DropReason = Literal["rows", "bytes", "age"]


class OutboxLimits(BaseModel):
    """How big and how old the outbox may grow; ``None`` switches a bound off. The defaults keep
    a week of a busy van's driving (a 60-point batch is ~7 KiB) and match the broker's week-long
    session expiry: what is older than that the fleet has stopped waiting for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_rows: int | None = Field(default=100_000, ge=1)
    max_bytes: int | None = Field(default=128 * 1024 * 1024, ge=1024)
    max_age_s: float | None = Field(default=7 * 24 * 3600.0, gt=0)
    slack: float = Field(
        default=0.01,
        ge=0,
        lt=0.5,
        description="Fraction of a bound dropped below it when it is crossed (hysteresis).",
    )
    age_check_s: float = Field(default=60.0, gt=0, description="How often put() looks for age.")


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
        limits: OutboxLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``limits`` None: unbounded (a locker's few events). ``clock`` stamps rows and judges
        their age (wall-clock seconds; injected so tests can age rows)."""
        self.path = Path(path)
        self.max_payload_bytes = max_payload_bytes
        self.limits = limits
        self._clock = clock
        self._next_age_check = 0.0
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
        (nothing is written) for a payload the broker would refuse. With ``limits``, the same
        transaction applies the drop policy, which may drop this very row (counted in :meth:`drops`).
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
                        self._clock(),
                    ),
                )
                seq = cur.lastrowid
                assert seq is not None
                data = payload if isinstance(payload, bytes) else payload(seq)
                if len(data) > self.max_payload_bytes:
                    raise MessageTooLargeError(topic, len(data), self.max_payload_bytes)
                if not isinstance(payload, bytes):
                    self._db.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (data, seq))
                if self.limits is not None:
                    self._enforce(self.limits)
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
        return self.depth()[0]

    def depth(self) -> tuple[int, int]:
        """(rows, payload bytes) waiting to be sent. O(1): kept by triggers, not counted."""
        rows, size = self._db.execute("SELECT rows, bytes FROM outbox_size WHERE id = 1").fetchone()
        return int(rows), int(size)

    def drops(self) -> dict[str, int]:
        """Rows dropped by the bounds since the file was created, by reason (``rows``, ``bytes``,
        ``age``); a reason appears once something was dropped for it."""
        rows = self._db.execute("SELECT reason, sum(rows) FROM dropped GROUP BY reason").fetchall()
        return {str(r): int(n) for r, n in rows}

    def drops_by_priority(self) -> dict[tuple[str, int], int]:
        """Rows dropped, by (reason, priority): says whether any event was among them."""
        rows = self._db.execute("SELECT reason, priority, rows FROM dropped").fetchall()
        return {(str(r), int(p)): int(n) for r, p, n in rows}

    def expire(self) -> int:
        """Drop every row older than ``limits.max_age_s`` now; return how many went."""
        if self.limits is None or self.limits.max_age_s is None:
            return 0
        try:
            with self._transaction():
                return self._expire(self.limits.max_age_s)
        except sqlite3.Error as err:
            raise OutboxError(f"cannot update outbox {self.path}: {err}") from err

    def _enforce(self, limits: OutboxLimits) -> None:
        """Apply the bounds inside the open transaction (see the module's drop policy)."""
        now = self._clock()
        if limits.max_age_s is not None and now >= self._next_age_check:
            self._next_age_check = now + limits.age_check_s
            self._expire(limits.max_age_s)
        rows, size = self.depth()
        over_rows = limits.max_rows is not None and rows > limits.max_rows
        over_bytes = limits.max_bytes is not None and size > limits.max_bytes
        if not (over_rows or over_bytes):
            return
        reason: DropReason = "rows" if over_rows else "bytes"
        target_rows = (
            int(limits.max_rows * (1 - limits.slack)) if limits.max_rows is not None else rows
        )
        target_bytes = (
            int(limits.max_bytes * (1 - limits.slack)) if limits.max_bytes is not None else size
        )
        self._drop_until(reason, rows - min(rows, target_rows), size - min(size, target_bytes))

    def _drop_until(self, reason: DropReason, rows_to_free: int, bytes_to_free: int) -> None:
        """Delete the lowest-priority, oldest rows until both amounts are freed."""
        priorities = [p for (p,) in self._db.execute("SELECT DISTINCT priority FROM outbox")]
        for priority in sorted(priorities):
            if rows_to_free <= 0 and bytes_to_free <= 0:
                return
            victims: list[int] = []
            cursor = self._db.execute(
                "SELECT seq, length(payload) FROM outbox WHERE priority = ? ORDER BY seq",
                (priority,),
            )
            for seq, size in cursor:
                if rows_to_free <= 0 and bytes_to_free <= 0:
                    break
                victims.append(seq)
                rows_to_free -= 1
                bytes_to_free -= size
            cursor.close()
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s in victims))
            self._count_drop(reason, priority, len(victims))
            if victims:
                log.warning(
                    "outbox over its %s bound: dropped %d rows of priority %d (seq %d..%d)",
                    reason,
                    len(victims),
                    priority,
                    victims[0],
                    victims[-1],
                )

    def _expire(self, max_age_s: float) -> int:
        cutoff = self._clock() - max_age_s
        counts = self._db.execute(
            "SELECT priority, count(*) FROM outbox WHERE created_at < ? GROUP BY priority",
            (cutoff,),
        ).fetchall()
        if not counts:
            return 0
        self._db.execute("DELETE FROM outbox WHERE created_at < ?", (cutoff,))
        for priority, n in counts:
            self._count_drop("age", int(priority), int(n))
            log.warning(
                "outbox: dropped %d rows of priority %d older than %.0f s", n, priority, max_age_s
            )
        return sum(int(n) for _, n in counts)

    def _count_drop(self, reason: DropReason, priority: int, n: int) -> None:
        if n <= 0:
            return
        self._db.execute(
            "INSERT INTO dropped (reason, priority, rows) VALUES (?, ?, ?)"
            " ON CONFLICT (reason, priority) DO UPDATE SET rows = rows + excluded.rows",
            (reason, priority, n),
        )

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
