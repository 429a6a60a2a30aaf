"""The parcel-flow loop of the hub: applies stored locker events and expires codes.

Ingest stores every locker event verbatim (and may run in other processes); this loop, in the hub
that holds the master secret, turns them into parcel changes (:mod:`cloud.services.locker_flows`).
It works from the table, so nothing is lost across restarts: an event is applied once, marked in
the same transaction. After a batch that queued grants or commands it wakes the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.services.locker_flows import FlowPolicy, apply_events, expire_due, pending_events

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class FlowStats:
    applied: int = 0
    unmatched: int = 0
    codes_issued: int = 0
    expired: int = 0
    errors: int = 0
    last_error: str = ""


class ParcelFlows:
    """Run :meth:`run` in the hub's task group; :meth:`step` does one pass (tests call it)."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        policy: FlowPolicy,
        wake_dispatcher: Callable[[], None] = lambda: None,
        poll_interval_s: float = 0.5,
        batch_max: int = 200,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be positive, got {poll_interval_s}")
        self._session_factory = session_factory
        self._policy = policy
        self._wake = wake_dispatcher
        self._poll_interval_s = poll_interval_s
        self._batch_max = batch_max
        self._clock = clock
        self.stats = FlowStats()

    async def run(self) -> None:
        while True:
            try:
                busy = await asyncio.to_thread(self.step)
            except SQLAlchemyError as err:
                self.stats.errors += 1
                self.stats.last_error = str(err)[:300]
                log.error("parcel flows could not apply locker events (%s); retrying", err)
                busy = False
            if not busy:
                await asyncio.sleep(self._poll_interval_s)

    def step(self) -> bool:
        """Apply one batch of events and expire due codes; True if a full batch was applied."""
        now = self._clock()
        with self._session_factory() as session, session.begin():
            events = pending_events(session, limit=self._batch_max)
            result = apply_events(session, events, policy=self._policy, now=now)
            expired = expire_due(session, policy=self._policy, now=now)
        self.stats.applied += result.applied
        self.stats.unmatched += result.unmatched
        self.stats.codes_issued += result.codes_issued
        self.stats.expired += expired
        if result.applied or expired:
            self._wake()
        return len(events) == self._batch_max
