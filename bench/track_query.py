"""One van's day through the API over a big positions table: its trips, and its raw track.

A throw-away PostgreSQL gets the hub's schema (Alembic), then ``--rows`` generated positions,
written server-side by ``INSERT ... SELECT generate_series`` in chunks, with the table's indexes
and constraints dropped during the load and rebuilt after it (as a bulk import would), then
``VACUUM ANALYZE`` (which also sets the visibility map that index-only scans need). Vans report
1 Hz, interleaved in time order as ingest writes them, 10 h a day (36,000 fixes), driving 20 min
(12 km on a circle round their depot) and standing 10 min, with ~1 m of noise; one van has
``ignition_on`` at 07:00 and ``ignition_off`` at 17:00. ``--vans`` defaults to 1,000, fewer when
``--rows`` cannot fill a whole day for each (the measured van always has its 36,000 fixes).

The hub's API (``create_app`` under uvicorn, in this process, on a loopback port) is then asked,
over HTTP with an API key, ``--repeat`` times for the day's trips
(``GET /api/v1/vehicles/{van}/trips?from=<day>&to=<day+1>``) and its track as columns
(``GET /api/v1/vehicles/{van}/track``, 36,000 fixes): first with the trips derived on read from
the fixes (``derived_*``; also the old paged ``/positions`` read of the track, ``paged_track_p95_ms``),
then after the hub's KPI job has stored the closed day (every van's journey, ``materialise_s``),
which is how the hub serves a past day. ``p95_ms`` (the issue's figure) is over the pairs trips +
track: what a client drawing the day waits for; ``trips_p95_ms`` and ``track_p95_ms`` apart.
The throw-away server and its data directory are removed at the end, also on Ctrl-C.

    python -m bench.track_query [--rows 50000000] [--repeat 40]

The last stdout line is one JSON object: ``p95_ms``, ``rows``, and the conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import uvicorn

from cloud.api.app import create_app
from cloud.broker import free_port, wait_for_port
from cloud.db import make_engine, make_session_factory, migrate
from cloud.fleet import FleetSettings
from cloud.kpi_job import KpiMaterialiser
from cloud.pgtest import ThrowawayPostgres, libpq_url
from cloud.services.trips import TripRules
from cloud.settings import HubSettings, Role

MASTER_SECRET = "bench-Track-Query-7c1e5a9d3b2f4e60-8d7c6b5a"
API_KEY = "bench-track-query-key-3f9a1c7e5b"
DAY = datetime(2026, 11, 2, tzinfo=UTC)
DAY_S = 36_000  # 10 h at 1 Hz
FIRST_FIX = DAY + timedelta(hours=7)
CHUNK = 2_000_000
LOADERS = 2  # the machine's cores
# Loading only: a throw-away server whose data nobody keeps. Reads are unaffected by fsync.
PG_OPTIONS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "1GB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "1h",
    "autovacuum": "off",
}

GENERATE = """
INSERT INTO positions
    (vehicle_id, t, lat, lon, speed_mps, heading_deg, alt_m, hdop, sats, fix, message_id)
SELECT 'van-' || lpad(v::text, 4, '0'),
       %(first)s::timestamptz + make_interval(days => (k / 36000)::int, secs => s),
       52.30 + (v %% 40) * 0.005 + 3000 * cos(a) / 111195.0 + (random() - 0.5) * 2e-5,
       4.80 + (v / 40) * 0.008 + 3000 * sin(a) / (111195.0 * 0.6115) + (random() - 0.5) * 3e-5,
       CASE WHEN ph < 1200 THEN 10.0 ELSE 0.0 END,
       degrees(a)::numeric %% 360,
       2.0, 0.9, 11, '3d',
       md5((g / 50)::text)::uuid
FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS g,
     LATERAL (SELECT (g %% %(vans)s)::int AS v, g / %(vans)s AS k) AS x,
     LATERAL (SELECT (k %% 36000)::int AS s) AS y,
     LATERAL (SELECT s %% 1800 AS ph, s / 1800 AS cyc) AS z,
     LATERAL (SELECT (cyc * 1200 + least(ph, 1200)) * 10 / 3000.0 AS a) AS w
"""


def log(message: str) -> None:
    print(f"[track_query {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _load(url: str, *, rows: int, vans: int, target: str) -> None:
    """Schema by the migrations, then the rows with the table's indexes rebuilt after the load."""
    migrate(url)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        indexes = [
            r[0]
            for r in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'positions'"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint"
                " WHERE conrelid = 'positions'::regclass)"
            )
        ]
        constraints = list(
            conn.execute(
                "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint"
                " WHERE conrelid = 'positions'::regclass ORDER BY contype = 'p' DESC"
            )
        )
        for name in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'positions'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint"
            " WHERE conrelid = 'positions'::regclass)"
        ).fetchall():
            conn.execute(f'DROP INDEX "{name[0]}"')
        for name, _definition, _kind in constraints:
            conn.execute(f'ALTER TABLE positions DROP CONSTRAINT "{name}"')
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO vehicles (id, online, version) VALUES (%s, true, 'bench')",
                [(f"van-{v:04d}",) for v in range(vans)],
            )
        conn.execute(
            "INSERT INTO vehicle_events (vehicle_id, seq, kind, at, evidence, message_id) VALUES"
            " (%(v)s, 1, 'ignition_on', %(on)s, '{}', gen_random_uuid()),"
            " (%(v)s, 2, 'ignition_off', %(off)s, '{}', gen_random_uuid())",
            {"v": target, "on": FIRST_FIX, "off": FIRST_FIX + timedelta(seconds=DAY_S)},
        )
        # The KPI triggers (0008) would copy every generated row into a transition table.
        conn.execute("ALTER TABLE positions DISABLE TRIGGER USER")
        started = time.monotonic()
        _generate(url, rows=rows, vans=vans, started=started)
        for name, definition, _kind in constraints:
            log(f"adding {name}")
            conn.execute(f'ALTER TABLE positions ADD CONSTRAINT "{name}" {definition}')
        for definition in indexes:
            log(definition)
            conn.execute(definition)
        conn.execute("ALTER TABLE positions ENABLE TRIGGER USER")
        log("VACUUM ANALYZE positions")
        conn.execute("VACUUM (ANALYZE) positions")
        log(f"loaded in {time.monotonic() - started:,.0f} s")


def _generate(url: str, *, rows: int, vans: int, started: float) -> None:
    """The rows, in chunks, by :data:`LOADERS` server processes at once (each chunk is generated
    and written inside PostgreSQL; nothing crosses the socket but the chunk's bounds)."""
    chunks = [(lo, min(rows, lo + CHUNK)) for lo in range(0, rows, CHUNK)]
    done = 0
    lock = threading.Lock()

    def load(worker: int) -> None:
        nonlocal done
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            for lo, hi in chunks[worker::LOADERS]:
                conn.execute(GENERATE, {"first": FIRST_FIX, "lo": lo, "hi": hi, "vans": vans})
                with lock:
                    done += hi - lo
                    rate = done / (time.monotonic() - started)
                    log(f"{done:,} / {rows:,} rows ({rate:,.0f} rows/s)")

    with ThreadPoolExecutor(max_workers=LOADERS, thread_name_prefix="bench-load") as pool:
        for future in [pool.submit(load, w) for w in range(LOADERS)]:
            future.result()


def _plan(url: str, *, vehicle: str) -> tuple[str, int]:
    """The plan of the day's track read: its top node and how many heap pages it fetched."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT t, lat, lon FROM positions"
            " WHERE vehicle_id = %s AND t >= %s AND t < %s ORDER BY t",
            (vehicle, DAY, DAY + timedelta(days=1)),
        ).fetchone()
    assert rows is not None
    plan = rows[0][0]["Plan"]
    log(json.dumps(plan))
    return str(plan["Node Type"]), int(plan.get("Heap Fetches", -1))


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29; signals stay ours
        yield


@contextmanager
def _api(url: str) -> Iterator[str]:
    settings = HubSettings(
        database_url=url,
        code_master_secret=MASTER_SECRET,
        api_keys={hashlib.sha256(API_KEY.encode()).hexdigest(): Role.VIEWER},
    )
    engine = make_engine(url, pool_size=4)
    app = create_app(settings=settings, session_factory=make_session_factory(engine))
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-api", daemon=True)
    thread.start()
    try:
        wait_for_port("127.0.0.1", port, timeout=30, what="API")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _timed(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    r = client.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    r.raise_for_status()
    return elapsed, r.json()


def _measure(base: str, *, vehicle: str, repeat: int, paged: bool) -> dict[str, Any]:
    """``repeat`` reads of the day's trips and of its track as columns (after three to warm up);
    ``p95_ms`` is over the pairs, what a client drawing the day waits for."""
    headers = {"X-API-Key": API_KEY}
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    trips_ms: list[float] = []
    track_ms: list[float] = []
    body: dict[str, Any] = {}
    columns: dict[str, Any] = {}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for i in range(repeat + 3):
            a, body = _timed(client, f"/api/v1/vehicles/{vehicle}/trips", {**window, "limit": 1000})
            b, columns = _timed(client, f"/api/v1/vehicles/{vehicle}/track", window)
            if i >= 3:
                trips_ms.append(a)
                track_ms.append(b)
        paged_ms: list[float] = []
        for _ in range(3 if paged else 0):
            started = time.perf_counter()
            fixes, since = 0, DAY
            while True:
                r = client.get(
                    f"/api/v1/vehicles/{vehicle}/positions",
                    params={"since": since.isoformat(), "until": window["to"], "limit": 10_000},
                )
                r.raise_for_status()
                page = r.json()["data"]
                fixes += len(page)
                if len(page) < 10_000:
                    break
                since = datetime.fromisoformat(page[-1]["t"]) + timedelta(microseconds=1)
            if fixes != DAY_S:
                raise SystemExit(f"the paged track has {fixes} fixes, not {DAY_S}")
            paged_ms.append((time.perf_counter() - started) * 1000)
    both = [a + b for a, b in zip(trips_ms, track_ms, strict=True)]
    out = {
        "p95_ms": round(_p95(both), 1),
        "median_ms": round(statistics.median(both), 1),
        "trips_p95_ms": round(_p95(trips_ms), 1),
        "track_p95_ms": round(_p95(track_ms), 1),
        "fixes": columns["count"],
        "trips": body["count"],
        "distance_km": round(body["distance_m"] / 1000, 3),
    }
    if paged_ms:
        out["paged_track_p95_ms"] = round(_p95(paged_ms), 1)
    return out


def _materialise(url: str) -> float:
    """What the hub's KPI job does once the day has ended: every van's journey of it stored with
    the day's KPIs. Returns the seconds it took."""
    engine = make_engine(url, pool_size=2)
    try:
        job = KpiMaterialiser(
            session_factory=make_session_factory(engine),
            fleet=FleetSettings(),
            rules=TripRules(),
            interval_s=3600,
            lookback_days=1,
            clock=lambda: DAY + timedelta(days=1, hours=1),
        )
        started = time.monotonic()
        done = asyncio.run(job.run_once())
        if done != [DAY.date()]:
            raise SystemExit(f"the KPI job stored {done}, not {DAY.date()}")
        return time.monotonic() - started
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.track_query", description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--vans", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args(argv)
    vans = max(1, min(args.vans, args.rows // DAY_S))
    if args.rows < DAY_S:
        parser.error(f"--rows must be at least {DAY_S} (one van's day)")
    target = f"van-{vans // 2:04d}"
    with ThrowawayPostgres(options=PG_OPTIONS, start_timeout_s=120) as pg:
        log(f"PostgreSQL on port {pg.port}; {args.rows:,} rows for {vans} vans")
        _load(pg.url, rows=args.rows, vans=vans, target=target)
        node, heap_fetches = _plan(pg.url, vehicle=target)
        with _api(pg.url) as base:
            log("the day's trips derived on read (before the KPI job stored the day)")
            derived = _measure(base, vehicle=target, repeat=args.repeat, paged=True)
            log(json.dumps(derived))
            log("the KPI job stores the day (every van's journey)")
            materialise_s = _materialise(pg.url)
            log(f"stored in {materialise_s:,.0f} s")
            result = _measure(base, vehicle=target, repeat=args.repeat, paged=False)
    if result["fixes"] != DAY_S or derived["fixes"] != DAY_S:
        raise SystemExit(f"the van's day has {result['fixes']} fixes, not {DAY_S}")
    if (result["trips"], result["distance_km"]) != (derived["trips"], derived["distance_km"]):
        raise SystemExit(f"stored trips {result} differ from derived ones {derived}")
    print(
        json.dumps(
            {
                **result,
                "derived_p95_ms": derived["p95_ms"],
                "derived_trips_p95_ms": derived["trips_p95_ms"],
                "paged_track_p95_ms": derived["paged_track_p95_ms"],
                "materialise_s": round(materialise_s, 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "rows": args.rows,
                "vans": vans,
                "plan": node,
                "heap_fetches": heap_fetches,
                "repeat": args.repeat,
            }
        )
    )


if __name__ == "__main__":
    main()
