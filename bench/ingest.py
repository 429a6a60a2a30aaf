"""Sustained ingest throughput: publishers -> real Mosquitto -> ingest worker processes -> PostgreSQL.

A throw-away PostgreSQL (default durability: fsync on) and a Mosquitto come up; ``--workers``
``lastmile hub ingest`` processes share the subscription; ``--publishers`` processes simulate
``--vans`` vans sending 1 Hz positions in batches of 50-60 points, at QoS 1, as fast as the broker
takes them, for ``--seconds``. Each publisher records the message ids it got a PUBACK for.

- ``points_per_s``: points stored / time from the first publish until the database held every
  acknowledged point (the backlog the broker queued counts against ingest, not for it).
- ``lost``: acknowledged points not in the database; ``duplicated``: rows beyond one per point.
- ``copy_rows_per_s``: the same rows COPYed by one connection into a scratch table with the same
  columns and indexes, in transactions of the ingest batch's size, on a settled server: the
  median of two rounds before the run (rows from the publishers' generator) and two after it
  (rows it stored), all in ``copy_rounds_rows_per_s``; ``ratio`` = ingest / COPY.
- ``worker_cpu_us_per_point``, ``publisher_cpu_us_per_point``: CPU time (user + system) the ingest
  workers (from their subscription until the database held every point) and the publishers (from
  their connection) used per stored point. On a machine shared with other work the rates
  above follow the load; these do not, so they are what to compare between two versions.
  ``postgres_cpu_us_per_point`` and ``broker_cpu_us_per_point`` likewise for the PostgreSQL
  server and Mosquitto: with the two above, where the 2 cores' time per point goes.

    python -m bench.ingest [--seconds 60] [--workers 2] [--publishers 2] [--vans 400] [--rate 160000]

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.broker import MosquittoBroker
from cloud.db import migrate
from cloud.ingest import subscriptions
from cloud.lean_publish import use_buffered_reads
from cloud.pgtest import ThrowawayPostgres, libpq_url
from cloud.services.ingest import POSITION_COLUMNS, POSITION_PG_TYPES, PositionTuple
from cloud.telemetry_rows import TelemetryDecoder
from edge.mqtt import connected, make_client
from edge.settings import MqttSettings
from protocol.messages import TelemetryBatch
from protocol.topics import Channel, vehicle_topic

MASTER_SECRET = "bench-Hub-Master-4e1f9a7c2b8d6e30-9a8b7c6d"
LASTMILE_INGEST = ["-m", "edge.cli", "hub", "ingest"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PUBLISH_WINDOW = 200  # QoS 1 publishes in flight per publisher
INGEST_BATCH = 200  # messages per ingest transaction (~11,000 points), by default
READY = "ready"  # what a publisher prints once connected; it starts on a line on its stdin
SUBSCRIBED = "ingest subscribed to"  # what cloud.ingest logs once a worker takes messages


class Payloads:
    """TelemetryBatch JSON built by hand from precomputed parts: pydantic (or even strftime) here
    would cost the publishers more CPU than the ingest they measure, on the same machine. One
    sample is checked against the schema."""

    def __init__(self, rng: random.Random, *, horizon_s: int = 24 * 3600) -> None:
        if horizon_s > 24 * 3600:
            raise ValueError("the timestamps are those of T0's day: horizon_s <= 86400")
        self._rng = rng
        # Plain formatting, not strftime: this runs inside the timed window, on the same cores.
        day = T0.strftime("%Y-%m-%dT")
        self._times = [
            f"{day}{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(horizon_s)
        ]
        self._tails = [
            f'","lat":{52.3 + rng.random() * 0.1:.6f},"lon":{4.8 + rng.random() * 0.1:.6f},'
            f'"speed_mps":{8 + rng.random():.2f},"heading_deg":{rng.random() * 359:.1f},'
            f'"alt_m":{rng.random() * 5:.1f},"hdop":0.9,"sats":11,"fix":"3d"}}'
            for _ in range(997)
        ]
        self._sent_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        TelemetryBatch.model_validate_json(self.build(str(uuid.uuid4()), "van-0", 1, 0, 55))

    def build(self, message_id: str, vehicle_id: str, seq: int, start_s: int, n: int) -> bytes:
        """Points at 1 Hz from second ``start_s`` after T0 (wrapping at the horizon)."""
        times, tails = self._times, self._tails
        k = self._rng.randrange(len(tails))
        horizon = len(times)
        points = ",".join(
            '{"t":"' + times[(start_s + i) % horizon] + tails[(k + i) % 997] for i in range(n)
        )
        return (
            f'{{"v":1,"id":"{message_id}","sent_at":"{self._sent_at}","type":"telemetry",'
            f'"vehicle_id":"{vehicle_id}","seq":{seq},"points":[{points}]}}'
        ).encode()


def _lean_puback(client: paho.Client) -> None:
    """Let ``client`` take a plain success PUBACK (2 bytes: the packet id) without paho building
    a ``Properties`` object and a ``ReasonCode`` for each: their constructors were a large part
    of a publisher's CPU (py-spy). Anything else takes paho's own path."""
    paho_path = client._handle_pubackcomp
    success = ReasonCode(PacketTypes.PUBACK)
    no_properties = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]

    def handle(cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = client._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:
            return paho_path(cmd)
        mid = int.from_bytes(packet, "big")
        with client._out_message_mutex:
            if mid in client._out_messages:
                return client._do_on_publish(mid, success, no_properties)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    client._handle_pubackcomp = handle  # type: ignore[method-assign]


def _publish(args: argparse.Namespace) -> None:
    """One publisher process: its vans, round-robin, until the deadline; ids acked -> out file.

    Plain paho in one thread, with a window of ``PUBLISH_WINDOW`` QoS 1 messages in flight. With
    no network thread paho writes each PUBLISH at once, and PUBACKs are read between publishes:
    handing each publish to paho's own thread cost a wake-up, a socket pair write and GIL hand-
    offs per message (py-spy), and the asyncio client's task and future per publish cost about as
    much as building the payloads. These publishers share the cores with what they measure.
    """
    rng = random.Random(args.index)
    vans = [f"van-{args.index}-{i:04d}" for i in range(args.vans)]
    topics = {van: vehicle_topic(van, Channel.TELEMETRY) for van in vans}
    seq = dict.fromkeys(vans, 0)
    clock = dict.fromkeys(vans, 0)
    payloads = Payloads(rng)
    acked: list[tuple[str, int]] = []
    pending: dict[int, tuple[str, int]] = {}  # mid -> (message id, points), until its PUBACK
    connected_: list[object] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        connected_.append(rc)

    def on_publish(_c: paho.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        acked.append(pending.pop(mid))

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{args.index}",
        protocol=paho.MQTTv5,
    )
    client.max_inflight_messages_set(PUBLISH_WINDOW)
    _lean_puback(client)
    use_buffered_reads(client)  # PUBACKs are 4 bytes: one read for many, not three each
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port)
    give_up = time.monotonic() + 60
    while not connected_:
        if time.monotonic() > give_up:
            raise SystemExit("the publisher could not connect")
        client.loop(timeout=0.5)
    print(READY, flush=True)
    sock = client.socket()
    assert isinstance(sock, socket.socket)

    def cork(on: bool) -> None:
        """TCP_CORK: hold partial segments, so eight publishes cost the loopback (and the
        broker) one delivery instead of eight. The socket sends were a quarter of a
        publisher's CPU (py-spy)."""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, int(on))

    sys.stdin.readline()  # go
    cork(True)
    # Paced, not flat out: an unpaced publisher outruns ingest by millions of points that the
    # broker must hold and the run must then drain (a 60 s run did not finish in 400 s).
    points_per_s = args.rate / max(1, args.publishers)
    started = time.monotonic()
    deadline = started + args.seconds
    sent_points = 0
    while time.monotonic() < deadline:
        for van in vans:
            while (ahead := sent_points / points_per_s - (time.monotonic() - started)) > 0:
                client.loop(timeout=ahead)  # PUBACKs meanwhile
            while len(pending) >= PUBLISH_WINDOW:
                client.loop(timeout=1.0)
            n = rng.randint(50, 60)
            sent_points += n
            seq[van] += 1
            message_id = str(uuid.uuid4())
            payload = payloads.build(message_id, van, seq[van], clock[van], n)
            clock[van] += n
            info = client.publish(topics[van], payload, qos=1)
            pending[info.mid] = (message_id, n)
            if info.mid % 8 == 0:
                cork(False)  # the last eight PUBLISH packets leave together
                client.loop(timeout=0)  # take the PUBACKs that are in, write what is left
                cork(True)
            if time.monotonic() >= deadline:
                break
    cork(False)
    give_up = time.monotonic() + 120
    while pending:  # every PUBACK back
        if time.monotonic() > give_up:
            raise SystemExit(f"{len(pending)} PUBACKs never came")
        client.loop(timeout=1.0)
    client.disconnect()
    Path(args.out).write_text(json.dumps(acked))


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM positions").fetchone()
    return int(row[0]) if row else 0


def _committed_points(conn: psycopg.Connection[Any]) -> int:
    """Points committed so far, from the idempotency rows (committed with their positions): a
    count(*) of positions every few milliseconds would load the server being measured."""
    row = conn.execute("SELECT coalesce(sum(n_items), 0) FROM ingested_messages").fetchone()
    return int(row[0]) if row else 0


def _pids(*, parent: int | None = None, cmdline_has: str | None = None) -> list[int]:
    """Processes that are children of ``parent`` or whose command line contains ``cmdline_has``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if parent is not None:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == parent:
                    found.append(int(entry.name))
            elif cmdline_has is not None and cmdline_has in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def _server_cpu_s(conn: psycopg.Connection[Any], broker_marker: str) -> tuple[float, float]:
    """CPU seconds so far of the PostgreSQL server (postmaster and its children alive now) and of
    the Mosquitto whose command line holds ``broker_marker``."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    stat = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()
    postmaster = int(stat[1])

    def total(pids: list[int]) -> float:
        cpu = 0.0
        for pid in pids:
            try:
                cpu += _cpu_s(pid)
            except OSError:
                continue
        return cpu

    pg = total([postmaster, *_pids(parent=postmaster)])
    mosquitto = total([p for p in _pids(cmdline_has=broker_marker) if p != os.getpid()])
    return pg, mosquitto


def _children_cpu_s() -> float:
    """CPU seconds of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


COPY_ROWS = 1_000_000
COPY_ROUNDS = 2  # before ingest, and as many after


def _sample_rows(n: int) -> list[PositionTuple]:
    """``n`` rows as ingest writes them, from the publishers' own payload generator and the
    ingest decoder: the COPY rounds before the run copy these (the table is empty then)."""
    payloads, decoder = Payloads(random.Random(99)), TelemetryDecoder()
    rows: list[PositionTuple] = []
    seq = 0
    while len(rows) < n:
        seq += 1
        payload = payloads.build(str(uuid.uuid4()), f"van-x-{seq % 400:04d}", seq, seq * 55, 55)
        decoded = decoder.decode(payload)
        assert decoded is not None
        rows += decoded.positions
    return rows[:n]


def _copy_rounds(url: str, rows: list[Any], batch: int, rounds: int) -> list[float]:
    """Rows/s of COPYing ``rows`` in batch-sized transactions, one connection, ``rounds`` times,
    each into a fresh scratch table with the columns and indexes of ``positions``.

    On a settled server: a checkpoint is written first, and after the run the stored rows are
    vacuumed and analysed. Otherwise autovacuum, woken by the millions of rows ingest just
    wrote, and the run's pending checkpoint share the cores with the COPY and flatter the ratio
    (one run here: 114k rows/s unsettled against 150k in a quiet one).
    """
    rates = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) positions")
        conn.execute("CHECKPOINT")
    with psycopg.connect(url) as conn:
        columns = ", ".join(POSITION_COLUMNS)
        per_tx = batch * 55
        fmt = "FROM STDIN (FORMAT BINARY)"  # the same COPY as ingest's, at its best
        for _ in range(rounds):
            conn.execute("DROP TABLE IF EXISTS scratch")
            conn.execute("CREATE TABLE scratch (LIKE positions INCLUDING ALL)")
            conn.commit()
            started = time.perf_counter()
            for i in range(0, len(rows), per_tx):
                with conn.cursor() as cur, cur.copy(f"COPY scratch ({columns}) {fmt}") as copy:
                    copy.set_types(POSITION_PG_TYPES)
                    for row in rows[i : i + per_tx]:
                        copy.write_row(row)
                conn.commit()
            rates.append(len(rows) / (time.perf_counter() - started))
        conn.execute("DROP TABLE scratch")
        conn.commit()
    return rates


def _stored_rows(url: str, limit: int) -> list[Any]:
    with psycopg.connect(url) as conn:
        columns = ", ".join(POSITION_COLUMNS)
        return conn.execute(f"SELECT {columns} FROM positions LIMIT %s", (limit,)).fetchall()


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_subscribed(workers: list[subprocess.Popen[str]], timeout_s: float = 600) -> None:
    """Return once every worker logged its subscription, forwarding their logs to our stderr.

    A worker process takes seconds to import the hub (tens of seconds on a loaded machine); the
    clock starts when they can take messages, so the figure is the sustained rate, not start-up.
    """
    ready = [threading.Event() for _ in workers]

    def forward(stream: IO[str], event: threading.Event) -> None:
        for line in stream:
            sys.stderr.write(line)
            if SUBSCRIBED in line:
                event.set()

    for w, event in zip(workers, ready, strict=True):
        assert w.stderr is not None
        threading.Thread(target=forward, args=(w.stderr, event), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    for w, event in zip(workers, ready, strict=True):
        while not event.wait(0.5):
            if w.poll() is not None:
                raise SystemExit(f"an ingest worker exited ({w.returncode}) before subscribing")
            if time.monotonic() > deadline:
                raise SystemExit("the ingest workers did not subscribe in time")


def _run(args: argparse.Namespace) -> dict[str, float | int]:
    work = Path(tempfile.mkdtemp(prefix="lastmile-bench-ingest-"))
    # Durable defaults; only checkpoints spaced out as any write-heavy server would have them.
    pg = ThrowawayPostgres(options={"max_wal_size": "4GB", "shared_buffers": "256MB"})
    with MosquittoBroker(data_dir=work / "mosquitto") as broker, pg:
        with psycopg.connect(libpq_url(pg.url), autocommit=True) as admin:
            admin.execute("CREATE DATABASE bench")
        url = pg.url.rsplit("/", 1)[0] + "/bench"
        migrate(url)
        # The baseline brackets the run, before and after: this machine's speed wanders over
        # minutes (one run's COPY read 161k rows/s, the next one's 242k, on the same code).
        copy_before = _copy_rounds(libpq_url(url), _sample_rows(COPY_ROWS), args.batch, COPY_ROUNDS)
        config = work / "hub.toml"
        config.write_text(
            f'database_url = "{url}"\ncode_master_secret = "{MASTER_SECRET}"\n'
            'ingest_group = "hub"\n'
            f"ingest_batch_max = {args.batch}\ningest_receive_maximum = {2 * args.batch}\n"
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        )
        mqtt = MqttSettings(host=broker.host, port=broker.port)
        worker_ids = [f"bench-ingest-{i}" for i in range(args.workers)]
        broker_marker = str(work / "mosquitto")  # in the broker's command line (its config path)

        async def sessions() -> None:
            for client_id in worker_ids:
                client = make_client(settings=mqtt, client_id=client_id, manual_ack=True)
                async with connected(client):
                    await client.subscribe([(f, 1) for f in subscriptions("hub")])

        asyncio.run(sessions())
        workers = [
            subprocess.Popen(
                [sys.executable, *LASTMILE_INGEST, "--config", str(config), "--client-id", cid],
                stderr=subprocess.PIPE,
                text=True,
            )
            for cid in worker_ids
        ]
        cpu_before = _children_cpu_s()
        try:
            _wait_subscribed(workers)
            # Counted from here: start-up (imports, schema check) is not ingest.
            workers_cpu_ready = sum(_cpu_s(w.pid) for w in workers)
            with psycopg.connect(libpq_url(url)) as conn:
                servers_cpu_ready = _server_cpu_s(conn, broker_marker)
            outs = [work / f"acked-{i}.json" for i in range(args.publishers)]
            publishers = [
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.ingest",
                        "--publisher",
                        *("--index", str(i), "--port", str(broker.port), "--out", str(out)),
                        *("--seconds", str(args.seconds)),
                        *("--rate", str(args.rate), "--publishers", str(args.publishers)),
                        *("--vans", str(max(1, args.vans // args.publishers))),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for i, out in enumerate(outs)
            ]
            # The clock starts when every publisher is connected (their start-up is not ingest).
            for p in publishers:
                assert p.stdout is not None
                if p.stdout.readline().strip() != READY:
                    raise SystemExit(f"a publisher did not start ({p.wait()})")
            started = time.monotonic()
            publishers_cpu_ready = sum(_cpu_s(p.pid) for p in publishers)  # start-up: not counted
            for p in publishers:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.close()
            for p in publishers:
                if p.wait() != 0:
                    raise SystemExit(f"a publisher failed ({p.returncode})")
            publishers_cpu = _children_cpu_s() - cpu_before - publishers_cpu_ready
            acked: dict[str, int] = {}
            for out in outs:
                acked.update(json.loads(out.read_text()))
            expected = sum(acked.values())
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                last, last_change = -1, time.monotonic()
                while True:
                    n = _committed_points(conn)
                    if n >= expected:
                        break
                    if n != last:
                        last, last_change = n, time.monotonic()
                    elif time.monotonic() - last_change > 15:
                        break  # stalled: what is missing is lost
                    # The sum reads every idempotency row: polled every 50 ms through a long
                    # drain it kept a server process busy and took CPU from ingest. Coarse
                    # while much is left (a 2 % backlog takes seconds), fine near the end.
                    time.sleep(0.05 if expected - n < expected // 50 else 0.5)
                drained = time.monotonic()
                workers_cpu = sum(_cpu_s(w.pid) for w in workers) - workers_cpu_ready
                pg_cpu, broker_cpu = _server_cpu_s(conn, broker_marker)
                pg_cpu -= servers_cpu_ready[0]
                broker_cpu -= servers_cpu_ready[1]
                stored_total = _count(conn)
                time.sleep(1.0)  # late duplicates would land now
                per_message: dict[str, int] = dict(
                    conn.execute(
                        "SELECT message_id::text, count(*) FROM positions GROUP BY message_id"
                    ).fetchall()
                )
                distinct = conn.execute(
                    "SELECT count(*) FROM (SELECT DISTINCT message_id, t FROM positions) d"
                ).fetchone()
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=30)
        lost = sum(max(0, n - per_message.get(mid, 0)) for mid, n in acked.items())
        total_rows = sum(per_message.values())
        duplicated = total_rows - int(distinct[0] if distinct else 0)
        points_per_s = stored_total / (drained - started)
        copy_after = _copy_rounds(
            libpq_url(url), _stored_rows(libpq_url(url), COPY_ROWS), args.batch, COPY_ROUNDS
        )
        copy_rows_per_s = statistics.median(copy_before + copy_after)
    return {
        "points_per_s": round(points_per_s),
        "lost": lost,
        "duplicated": duplicated,
        "copy_rows_per_s": round(copy_rows_per_s),
        "copy_rounds_rows_per_s": [round(r) for r in copy_before + copy_after],
        "ratio": round(points_per_s / copy_rows_per_s, 3),
        "worker_cpu_us_per_point": round(workers_cpu / max(1, stored_total) * 1e6, 2),
        "publisher_cpu_us_per_point": round(publishers_cpu / max(1, stored_total) * 1e6, 2),
        "postgres_cpu_us_per_point": round(pg_cpu / max(1, stored_total) * 1e6, 2),
        "broker_cpu_us_per_point": round(broker_cpu / max(1, stored_total) * 1e6, 2),
        "batch": args.batch,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--vans", type=int, default=400, help="vans over all publishers")
    parser.add_argument(
        "--rate",
        type=float,
        default=160_000,
        help="offered points/s over all publishers (above what ingest takes here: 100-130k)",
    )
    parser.add_argument(
        "--batch", type=int, default=INGEST_BATCH, help="messages per ingest transaction, at most"
    )
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publisher:
        _publish(args)
        return
    result = _run(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
