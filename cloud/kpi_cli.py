"""``lastmile kpis rebuild --config hub.toml --day D [--to D2]``: rebuild stored KPIs by hand.

For days the hub's job does not look at again (older than ``kpi_lookback_days`` and not marked
stale), e.g. after changing the fleet's depots or emission factors, a parcel reassigned to another
van, or a compartment count corrected: changes the triggers of migration 0008 do not see.
Exit 0 when every day was stored, 1 when one was refused (not ended, or changing under the
rebuild), 2 on a bad argument; one line per day on stdout.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime

from cloud.db import make_engine, make_session_factory, migrate
from cloud.errors import HubError
from cloud.services.kpi_rebuild import rebuild_day
from cloud.services.kpis import days
from cloud.settings import HubSettings
from edge.settings import load_settings

MAX_DAYS = 366


def rebuild(args: argparse.Namespace) -> int:
    try:
        first = date.fromisoformat(args.day)
        last = date.fromisoformat(args.to) if args.to else first
    except ValueError as err:
        print(f"lastmile: {err} (days are YYYY-MM-DD)", file=sys.stderr)
        return 2
    if last < first or (last - first).days >= MAX_DAYS:
        print(f"lastmile: --to must be on or after --day, {MAX_DAYS} days at most", file=sys.stderr)
        return 2
    settings = load_settings(HubSettings, args.config)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    failed = 0
    try:
        session_factory = make_session_factory(engine)
        now = datetime.now(UTC)
        for day in days(first, last):
            try:
                rows = rebuild_day(
                    session_factory, day=day, fleet=settings.fleet, rules=settings.trips, now=now
                )
            except HubError as err:
                failed += 1
                print(f"{day}: not stored: {err}")
                continue
            print(f"{day}: {rows} rows stored")
    finally:
        engine.dispose()
    return 1 if failed else 0
