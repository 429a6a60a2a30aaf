"""Retention: positions older than ``retention_days`` are deleted, in bounded chunks; so are the
idempotency rows of ``ingested_messages`` older than ``ingested_retention_days``, and the
revocations of bearer tokens that have expired anyway.

Each chunk is its own short transaction, so pruning a backlog of months never holds locks for long,
never bloats one transaction's undo, and lets ingest interleave its writes. On PostgreSQL the BRIN
index on ``positions.t`` finds the old block ranges; on SQLite a btree on ``t`` does.

``ingested_messages`` holds one row per message id ever stored, so that a redelivery is recognised
and dropped. It only has to remember an id as long as that message can come again: the broker
redelivers unacknowledged messages for as long as the hub's session lives (``mqtt.session_expiry_s``,
7 days by default; the settings refuse a horizon that is not longer), and a van re-sends a batch
whose PUBACK it missed when it next connects (days, for a van parked out of coverage). The default
horizon of 30 days covers both with room; after it, an id is forgotten and a (by then absurdly late)
redelivery would be stored a second time. Its rows are found by ``received_at`` (BRIN on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import IngestedMessage, PositionRow, RevokedCredential

log = logging.getLogger(__name__)

REVOCATION_GRACE = timedelta(hours=1)
"""How long after its expiry a revoked token stays listed: hosts' clocks may disagree a little."""


def prune_positions(
    session_factory: sessionmaker[Session], *, older_than: datetime, chunk: int
) -> int:
    """Delete every position with ``t < older_than``, ``chunk`` rows per transaction.

    Returns how many rows went. Blocking (run it in a thread); raises SQLAlchemyError.
    """
    return _prune(
        session_factory,
        key=PositionRow.id,
        old=PositionRow.t < older_than,
        table=PositionRow,
        chunk=chunk,
    )


def prune_ingested_messages(
    session_factory: sessionmaker[Session], *, older_than: datetime, chunk: int
) -> int:
    """Forget every message id received before ``older_than``, ``chunk`` rows per transaction.

    Returns how many rows went. Blocking (run it in a thread); raises SQLAlchemyError.
    """
    return _prune(
        session_factory,
        key=IngestedMessage.message_id,
        old=IngestedMessage.received_at < older_than,
        table=IngestedMessage,
        chunk=chunk,
    )


def prune_expired_revocations(
    session_factory: sessionmaker[Session], *, older_than: datetime, chunk: int
) -> int:
    """Forget the revocations of bearer tokens that expired before ``older_than``: an expired
    token is refused by its own ``exp``, so listing it any longer only grows the table. Revoked
    API keys stay listed (a key does not expire).

    Returns how many rows went. Blocking (run it in a thread); raises SQLAlchemyError.
    """
    return _prune(
        session_factory,
        key=RevokedCredential.ident,
        old=(RevokedCredential.kind == "token") & (RevokedCredential.expires_at < older_than),
        table=RevokedCredential,
        chunk=chunk,
    )


def _prune(
    session_factory: sessionmaker[Session],
    *,
    key: Any,
    old: Any,
    table: type[PositionRow] | type[IngestedMessage] | type[RevokedCredential],
    chunk: int,
) -> int:
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    total = 0
    while True:
        oldest = select(key).where(old).limit(chunk).scalar_subquery()
        with session_factory() as session, session.begin():
            result = session.execute(
                # ``old`` again: ``key`` need not be unique on its own (a revocation's is not).
                delete(table).where(key.in_(oldest), old),
                execution_options={"synchronize_session": False},
            )
            deleted = int(cast(CursorResult[Any], result).rowcount)
        total += deleted
        if deleted < chunk:
            return total


class AgePruner:
    """Prunes rows older than ``retention`` every ``interval_s`` until cancelled. Run :meth:`run`
    in a task group. Subclasses say what (:attr:`what`) and how (:attr:`prune`)."""

    what = "positions"
    prune = staticmethod(prune_positions)

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        retention: timedelta,
        interval_s: float,
        chunk: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, got {retention}")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._session_factory = session_factory
        self._retention = retention
        self._interval_s = interval_s
        self._chunk = chunk
        self._clock = clock
        self.pruned = 0
        self.last_error = ""

    async def prune_once(self) -> int:
        """One pass; returns the rows deleted. Raises SQLAlchemyError."""
        cutoff = self._clock() - self._retention
        n = await asyncio.to_thread(
            self.prune, self._session_factory, older_than=cutoff, chunk=self._chunk
        )
        self.pruned += n
        if n:
            log.info("pruned %d %s older than %s", n, self.what, cutoff.isoformat())
        return n

    async def run(self) -> None:
        """Prune now and then every interval; a storage error is logged and retried next time."""
        while True:
            try:
                await self.prune_once()
            except SQLAlchemyError as err:
                self.last_error = str(err)
                log.error("pruning %s failed (%s); trying again later", self.what, err)
            await asyncio.sleep(self._interval_s)


class PositionPruner(AgePruner):
    """Deletes positions past ``retention_days``."""


class IngestedMessagePruner(AgePruner):
    """Forgets message ids past the idempotency horizon (see the module docstring)."""

    what = "ingested message ids"
    prune = staticmethod(prune_ingested_messages)


class RevocationPruner(AgePruner):
    """Forgets revoked bearer tokens :data:`REVOCATION_GRACE` after they expired (see
    :func:`prune_expired_revocations`)."""

    what = "revocations of expired tokens"
    prune = staticmethod(prune_expired_revocations)
