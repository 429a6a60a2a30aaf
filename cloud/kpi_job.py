"""The hub's KPI job: materialises closed days' KPIs, and rebuilds those late data changed.

Every ``interval_s``: each closed day of the last ``lookback_days`` that has no current stored
figures, then every older day whose figures went stale (a late batch of positions, an ignition or
parcel event dated on it, noticed by the triggers of migration 0008). Today is never stored: it is
computed on read until it ends. One day at a time, in a thread; a storage error is logged and the
day tried again next time. The same rebuild runs by hand as ``lastmile kpis rebuild``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.errors import ConflictError
from cloud.fleet import FleetSettings
from cloud.services import kpi_store
from cloud.services.kpi_rebuild import rebuild_day
from cloud.services.kpis import day_of, days
from cloud.services.trips import TripRules

log = logging.getLogger(__name__)


class KpiMaterialiser:
    """Run :meth:`run` in the hub's task group; :meth:`run_once` is one pass (tests call it)."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        fleet: FleetSettings,
        rules: TripRules,
        interval_s: float,
        lookback_days: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be at least 1, got {lookback_days}")
        self._session_factory = session_factory
        self._fleet = fleet
        self._rules = rules
        self._interval_s = interval_s
        self._lookback_days = lookback_days
        self._clock = clock
        self.rebuilt: list[date] = []
        self.last_error = ""

    def pending(self, *, now: datetime) -> list[date]:
        """The days to (re)build now, oldest first."""
        yesterday = day_of(now) - timedelta(days=1)
        recent = days(yesterday - timedelta(days=self._lookback_days - 1), yesterday)
        with self._session_factory() as session:
            current = kpi_store.current_days(
                session,
                first=recent[0],
                last=yesterday,
                now=now,
                fleet=self._fleet,
                rules=self._rules,
            )
            stale = kpi_store.stale_days(session)
        return sorted({d for d in recent if d not in current} | set(stale))

    async def run_once(self) -> list[date]:
        """One pass; returns the days stored. Raises SQLAlchemyError."""
        now = self._clock()
        done: list[date] = []
        for day in await asyncio.to_thread(self.pending, now=now):
            try:
                rows = await asyncio.to_thread(
                    rebuild_day,
                    self._session_factory,
                    day=day,
                    fleet=self._fleet,
                    rules=self._rules,
                    now=now,
                )
            except ConflictError as err:  # late data kept coming: next pass
                log.warning("KPIs of %s not stored: %s", day, err)
                continue
            done.append(day)
            log.info("KPIs of %s materialised (%d rows)", day, rows)
        self.rebuilt += done
        return done

    async def run(self) -> None:
        """A pass now and then every interval, until cancelled."""
        while True:
            try:
                await self.run_once()
            except SQLAlchemyError as err:
                self.last_error = str(err)
                log.error("materialising KPIs failed (%s); trying again later", err)
            await asyncio.sleep(self._interval_s)
