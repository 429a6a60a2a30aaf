"""Retention: positions older than ``retention_days`` are deleted, in bounded chunks.

Each chunk is its own short transaction, so pruning a backlog of months never holds locks for long,
never bloats one transaction's undo, and lets ingest interleave its writes. On PostgreSQL the BRIN
index on ``positions.t`` finds the old block ranges; on SQLite a btree on ``t`` does.
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

from cloud.models import PositionRow

log = logging.getLogger(__name__)


def prune_positions(
    session_factory: sessionmaker[Session], *, older_than: datetime, chunk: int
) -> int:
    """Delete every position with ``t < older_than``, ``chunk`` rows per transaction.

    Returns how many rows went. Blocking (run it in a thread); raises SQLAlchemyError.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    total = 0
    while True:
        oldest = (
            select(PositionRow.id).where(PositionRow.t < older_than).limit(chunk).scalar_subquery()
        )
        with session_factory() as session, session.begin():
            result = session.execute(
                delete(PositionRow).where(PositionRow.id.in_(oldest)),
                execution_options={"synchronize_session": False},
            )
            deleted = int(cast(CursorResult[Any], result).rowcount)
        total += deleted
        if deleted < chunk:
            return total


class PositionPruner:
    """Prunes positions every ``interval_s`` until cancelled. Run :meth:`run` in a task group."""

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
            prune_positions, self._session_factory, older_than=cutoff, chunk=self._chunk
        )
        self.pruned += n
        if n:
            log.info("pruned %d positions older than %s", n, cutoff.isoformat())
        return n

    async def run(self) -> None:
        """Prune now and then every interval; a storage error is logged and retried next time."""
        while True:
            try:
                await self.prune_once()
            except SQLAlchemyError as err:
                self.last_error = str(err)
                log.error("pruning positions failed (%s); trying again later", err)
            await asyncio.sleep(self._interval_s)
