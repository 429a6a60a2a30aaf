"""Durable store of the grants the hub sent: which code hash opens which compartment, and when.

SQLite in WAL mode with ``synchronous=FULL``: a grant the uplink acknowledged to the broker is on
disk, so a power cut cannot lose a parcel's code. Only keyed hashes are stored; a typed code is
hashed once and compared against every live grant in constant time, and never stored or logged.
"""

from __future__ import annotations

import hmac
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import get_args
from uuid import UUID

from edge.durable import open_durable_db
from locker.errors import GrantStoreError
from protocol.codes import hash_code
from protocol.messages import Grant, GrantKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    compartment INTEGER NOT NULL,
    code_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    valid_from_us INTEGER NOT NULL,
    valid_until_us INTEGER NOT NULL,
    single_use INTEGER NOT NULL,
    used_at_us INTEGER,
    received_at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_validity ON grants (valid_until_us, valid_from_us);
"""

_SELECT = (
    "SELECT grant_id, compartment, code_hash, kind, valid_from_us, valid_until_us, single_use,"
    " used_at_us FROM grants"
)
_KINDS: tuple[GrantKind, ...] = get_args(GrantKind)


def _us(t: datetime) -> int:
    """Microseconds since the epoch: exact, and comparable in SQL."""
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


@dataclass(frozen=True, slots=True)
class StoredGrant:
    grant_id: UUID
    compartment: int
    code_hash: str
    kind: GrantKind
    valid_from: datetime
    valid_until: datetime
    single_use: bool
    used_at: datetime | None

    @property
    def spent(self) -> bool:
        """A single-use grant that has opened its door once."""
        return self.single_use and self.used_at is not None

    @classmethod
    def _from_row(cls, row: tuple[str, int, str, str, int, int, int, int | None]) -> StoredGrant:
        grant_id, compartment, code_hash, kind, vf, vu, single, used = row
        if kind not in _KINDS:
            raise ValueError(f"unknown grant kind {kind!r} in the grant store")
        return cls(
            grant_id=UUID(grant_id),
            compartment=compartment,
            code_hash=code_hash,
            kind=kind,
            valid_from=_dt(vf),
            valid_until=_dt(vu),
            single_use=bool(single),
            used_at=None if used is None else _dt(used),
        )


class GrantStore:
    """Grants on disk. Not thread-safe: one event loop owns it."""

    def __init__(self, path: Path | str, *, locker_key: bytes) -> None:
        if len(locker_key) < 16:
            raise ValueError("the locker key must be at least 16 bytes")
        self.path = Path(path)
        self._key = locker_key
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise GrantStoreError(f"cannot open the grant store: {err}", path=self.path) from err

    def add(self, grant: Grant, *, now: datetime | None = None) -> bool:
        """Store ``grant``; True if it is new.

        A repeat of a known ``grant_id`` changes nothing, so a redelivered grant cannot make a used
        code valid again.
        """
        received = now or datetime.now(UTC)
        try:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO grants (grant_id, compartment, code_hash, kind,"
                " valid_from_us, valid_until_us, single_use, used_at_us, received_at_us)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                (
                    str(grant.grant_id),
                    grant.compartment,
                    grant.code_hash,
                    grant.kind,
                    _us(grant.valid_from),
                    _us(grant.valid_until),
                    int(grant.single_use),
                    _us(received),
                ),
            )
        except sqlite3.Error as err:
            raise GrantStoreError(
                f"cannot store grant {grant.grant_id}: {err}", path=self.path
            ) from err
        return cur.rowcount == 1

    def get(self, grant_id: UUID) -> StoredGrant | None:
        row = self._db.execute(_SELECT + " WHERE grant_id = ?", (str(grant_id),)).fetchone()
        return None if row is None else StoredGrant._from_row(row)

    def match(self, code: str, *, now: datetime) -> StoredGrant | None:
        """The live grant (``valid_from <= now < valid_until``) whose hash matches ``code``.

        The code is hashed once and compared with every live grant's hash, without stopping at a
        match, so the time taken does not tell which grant (or whether any) matched. An unspent
        match wins over a spent one; a spent one is still returned so the caller can say "used".
        """
        typed = hash_code(self._key, code)
        t = _us(now)
        # Only what the comparison needs is read for every live grant; the one that matched is
        # then read in full (a match is no secret: the door opens).
        rows = self._db.execute(
            "SELECT rowid, code_hash, single_use, used_at_us FROM grants"
            " WHERE valid_from_us <= ? AND valid_until_us > ?",
            (t, t),
        ).fetchall()
        unspent: int | None = None
        spent: int | None = None
        for rowid, code_hash, single_use, used_at in rows:
            same = hmac.compare_digest(typed, code_hash)
            if same and not (single_use and used_at is not None):
                unspent = unspent or rowid
            elif same:
                spent = spent or rowid
        found = unspent or spent
        if found is None:
            return None
        return StoredGrant._from_row(
            self._db.execute(_SELECT + " WHERE rowid = ?", (found,)).fetchone()
        )

    def mark_used(self, grant_id: UUID, *, at: datetime | None = None) -> None:
        """Record the first use of a grant; later uses keep the first time."""
        used = _us(at or datetime.now(UTC))
        try:
            self._db.execute(
                "UPDATE grants SET used_at_us = ? WHERE grant_id = ? AND used_at_us IS NULL",
                (used, str(grant_id)),
            )
        except sqlite3.Error as err:
            raise GrantStoreError(
                f"cannot mark grant {grant_id} used: {err}", path=self.path
            ) from err

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT count(*) FROM grants").fetchone()
        return int(n)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GrantStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
