"""Writing one batch of received messages: idempotent on message id, one transaction (the caller's).

The idempotency rows come first: ``INSERT ... ON CONFLICT (message_id) DO NOTHING RETURNING`` says
which messages are new, in one statement that also waits out a concurrent worker holding the same
id (a redelivery to the other member of a shared subscription) instead of failing on it. Only the
new messages' rows follow. Positions, the bulk of the data, go in with ``COPY ... FROM STDIN`` on
PostgreSQL (through the session's own DBAPI connection, so inside the same transaction) and with a
plain ``executemany`` on SQLite. Device rows are created on first contact, because positions and
events reference them and a device may speak before its first status arrives.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

import psycopg
from sqlalchemy import Connection, Table, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from cloud.models import (
    Base,
    DeadLetter,
    IngestedMessage,
    Locker,
    LockerEventRow,
    PositionRow,
    Vehicle,
    VehicleCommandAck,
    VehicleEventRow,
)
from cloud.registry import revoked_among
from protocol.messages import (
    CommandAck,
    DeviceStatus,
    LockerEvent,
    Message,
    TelemetryBatch,
    VehicleEvent,
)
from protocol.topics import parse_topic

D = TypeVar("D", Vehicle, Locker)


@dataclass(frozen=True, slots=True)
class TelemetryRows:
    """A telemetry batch validated by the fast path (:mod:`cloud.telemetry_rows`): what storing
    it needs, its points already as ``positions`` rows. Stands in for a :class:`TelemetryBatch`."""

    id: uuid.UUID
    vehicle_id: str
    seq: int
    positions: list[PositionTuple]
    type: Literal["telemetry"] = "telemetry"


Ingested = Message | TelemetryRows
"""What an accepted message carries: a decoded message, or a fast-path telemetry batch."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message that decoded and belongs to the device named in its topic."""

    topic: str
    message: Ingested
    payload: bytes  # as received, for a dead letter should storing it fail


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message to dead-letter: ``topic_kind`` and ``reason`` are what gets counted."""

    topic: str
    topic_kind: str
    reason: str
    detail: str
    payload: bytes


DeviceKey = tuple[str, str]
"""``("vehicle" | "locker", device id)``: a device row that a batch needs."""


@dataclass(frozen=True, slots=True)
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    refused: tuple[Rejected, ...] = ()  # accepted by classify, refused here: a revoked device
    # The device rows the batch made sure of: once it committed, they exist (and are never
    # deleted), so the next batches may skip their INSERT (see ``known_devices``).
    devices: frozenset[DeviceKey] = frozenset()


POSITION_COLUMNS = (
    "t",
    "lat",
    "lon",
    "speed_mps",
    "heading_deg",
    "alt_m",
    "hdop",
    "sats",
    "fix",
    "vehicle_id",
    "message_id",
)
"""The columns ingest writes, in its rows' order: a point's own fields first, then the two its
message adds, so that a row is one tuple concatenation (:mod:`cloud.telemetry_rows`)."""
POSITION_PG_TYPES = (
    "timestamptz",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "int4",
    "varchar",
    "varchar",
    "uuid",
)
"""PostgreSQL types of :data:`POSITION_COLUMNS`, as migration 0001 creates them."""
_COPY_POSITIONS = f"COPY positions ({', '.join(POSITION_COLUMNS)}) FROM STDIN (FORMAT BINARY)"

PositionTuple = tuple[
    datetime,
    float,
    float,
    float | None,
    float | None,
    float | None,
    float | None,
    int | None,
    str | None,
    str,
    uuid.UUID,
]


def _table(model: type[Base]) -> Table:
    """The Core table of ``model``, typed as such."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _claim(
    session: Session, accepted: Sequence[Accepted], received_at: datetime
) -> tuple[list[Ingested], int]:
    """Write the idempotency rows of ``accepted``; return the messages that were new, and how many
    were duplicates (stored before, or repeated earlier in the batch)."""
    unique: dict[uuid.UUID, Ingested] = {}
    for a in accepted:
        unique.setdefault(a.message.id, a.message)
    if not unique:
        return [], len(accepted)
    connection = session.connection()
    # Sorted: two workers claiming overlapping redeliveries lock the ids in one order, no deadlock.
    rows = [_ingested_row(unique[i], received_at) for i in sorted(unique)]
    if connection.dialect.name == "postgresql":
        new_ids = _claim_pg(connection, rows, received_at)
    else:
        table = _table(IngestedMessage)
        stmt = _insert_or_skip(connection, table, "message_id").returning(table.c.message_id)
        new_ids = set(connection.execute(stmt, rows).scalars())
    fresh = [m for message_id, m in unique.items() if message_id in new_ids]
    return fresh, len(accepted) - len(fresh)


_CLAIM_PG = """
INSERT INTO ingested_messages (message_id, device_id, kind, seq, received_at, n_items)
SELECT m, d, k, s, %(received_at)s, n
FROM unnest(%(m)s::uuid[], %(d)s::varchar[], %(k)s::varchar[], %(s)s::int8[], %(n)s::int4[])
    AS u(m, d, k, s, n)
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id
"""


def _claim_pg(
    connection: Connection, rows: Sequence[dict[str, Any]], received_at: datetime
) -> set[uuid.UUID]:
    """The claim as one statement over five arrays: a multi-row VALUES of a few hundred messages
    costs the worker more CPU to build and PostgreSQL more to parse than the arrays do."""
    params = {
        "received_at": received_at,
        "m": [r["message_id"] for r in rows],
        "d": [r["device_id"] for r in rows],
        "k": [r["kind"] for r in rows],
        "s": [r["seq"] for r in rows],
        "n": [r["n_items"] for r in rows],
    }
    with _raw_cursor(connection, _CLAIM_PG) as cursor:
        cursor.execute(_CLAIM_PG, params)
        return {row[0] for row in cursor.fetchall()}


@contextlib.contextmanager
def _raw_cursor(connection: Connection, statement: str) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor on the psycopg connection under ``connection`` (so in its transaction), with
    psycopg's errors translated as SQLAlchemy would (DataError, OperationalError, ...): callers
    tell data from connection errors the same way for raw statements as for any other."""
    raw = connection.connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    try:
        with raw.cursor() as cursor:
            yield cursor
    except psycopg.Error as err:
        raise DBAPIError.instance(
            statement, None, err, psycopg.Error, dialect=connection.dialect
        ) from err


def _insert_or_skip(connection: Connection, table: Table, key: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING`` for the two backends the hub supports.

    Concurrent workers inserting the same key serialise on it (the second waits for the first to
    commit, then skips) instead of one of them failing its whole batch."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - the hub supports these two
        raise NotImplementedError(f"ingest does not support {dialect}")
    return stmt.on_conflict_do_nothing(index_elements=[key])


def _position_tuples(batches: Iterable[TelemetryBatch | TelemetryRows]) -> list[PositionTuple]:
    """Rows of ``positions`` in :data:`POSITION_COLUMNS` order, without a dict per point."""
    rows: list[PositionTuple] = []
    models: list[TelemetryBatch] = []
    for b in batches:
        if isinstance(b, TelemetryRows):
            rows += b.positions
        else:
            models.append(b)
    return rows + [
        (
            p.t,
            p.lat,
            p.lon,
            p.speed_mps,
            p.heading_deg,
            p.alt_m,
            p.hdop,
            p.sats,
            p.fix,
            m.vehicle_id,
            m.id,
        )
        for m in models
        for p in m.points
    ]


def insert_positions(connection: Connection, rows: Sequence[PositionTuple]) -> None:
    """Append ``rows`` to ``positions`` in the open transaction of ``connection``.

    PostgreSQL: one binary ``COPY`` on the raw psycopg connection (several times faster than any
    INSERT, and about 1.5 times faster than a text COPY: no number formatting and parsing);
    elsewhere an ``executemany``.
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        with (
            _raw_cursor(connection, _COPY_POSITIONS) as cursor,
            cursor.copy(_COPY_POSITIONS) as copy,
        ):
            copy.set_types(POSITION_PG_TYPES)
            for row in rows:
                copy.write_row(row)
        return
    connection.execute(
        insert(PositionRow), [dict(zip(POSITION_COLUMNS, row, strict=True)) for row in rows]
    )


def _ensure_devices(connection: Connection, model: type[Vehicle | Locker], ids: Set[str]) -> None:
    """Create the missing device rows among ``ids``.

    New devices are created with ``ON CONFLICT DO NOTHING`` in id order: two workers meeting the
    same new van at once would otherwise both INSERT it and one would lose its whole batch (seen
    in the ingest benchmark as dead-lettered points). ``ids`` should hold only devices not known
    to exist: that INSERT waits for any transaction holding one of those rows.

    """
    table = _table(model)
    extra = {"compartments": 0} if model is Locker else {}
    new = [{"id": i, "online": False, "version": "", **extra} for i in sorted(ids)]
    if new:
        connection.execute(_insert_or_skip(connection, table, "id"), new)


def _mark_seen(
    connection: Connection, model: type[Vehicle | Locker], ids: Set[str], *, seen_at: datetime
) -> None:
    """Move ``last_seen`` of ``ids`` forward to ``seen_at``.

    ``last_seen`` is a heartbeat, not data: on PostgreSQL a row another worker is updating right
    now (to the same moment, give or take a batch) is skipped (``SKIP LOCKED``) rather than waited
    for. Waiting there (the ORM update this replaced) made two workers sharing a fleet take turns,
    each holding a few hundred vehicle rows until its batch committed.
    """
    if not ids:
        return
    table = _table(model)
    stale = select(table.c.id).where(
        table.c.id.in_(sorted(ids)), or_(table.c.last_seen.is_(None), table.c.last_seen < seen_at)
    )
    if connection.dialect.name == "postgresql":
        stale = stale.with_for_update(key_share=True, skip_locked=True)  # FOR NO KEY UPDATE
    connection.execute(update(table).where(table.c.id.in_(stale)).values(last_seen=seen_at))


def _loaded(session: Session, model: type[D], ids: Iterable[str]) -> dict[str, D]:
    """ORM rows of the devices whose status a batch applies (few: statuses are rare)."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {d.id: d for d in session.scalars(select(model).where(model.id.in_(wanted)))}


def _item_count(message: Ingested) -> int:
    if isinstance(message, TelemetryRows):
        return len(message.positions)
    return len(message.points) if isinstance(message, TelemetryBatch) else 1


def _ingested_row(message: Ingested, received_at: datetime) -> dict[str, Any]:
    seq: int | None
    if isinstance(message, TelemetryBatch | TelemetryRows | VehicleEvent):
        device_id, seq = message.vehicle_id, message.seq
    elif isinstance(message, LockerEvent):
        device_id, seq = message.locker_id, message.seq
    elif isinstance(message, CommandAck):
        device_id, seq = message.device_id, message.seq
    elif isinstance(message, DeviceStatus):
        device_id, seq = message.device_id, None
    else:
        raise TypeError(f"the hub does not ingest {type(message).__name__}")
    return {
        "message_id": message.id,
        "device_id": device_id,
        "kind": message.type,
        "seq": seq,
        "received_at": received_at,
        "n_items": _item_count(message),
    }


def store_batch(
    session: Session,
    items: Sequence[Accepted | Rejected],
    *,
    received_at: datetime,
    known_devices: Set[DeviceKey] = frozenset(),
) -> StoreResult:
    """Write ``items`` into the open transaction of ``session``; the caller commits.

    ``known_devices`` are device rows known to exist (from earlier committed batches' results):
    their INSERT is skipped. Status messages are applied in arrival order (not by ``sent_at``): a
    last will carries the time its device connected, so ordering by ``sent_at`` would let an old
    "online" win over the will.
    """
    accepted = [i for i in items if isinstance(i, Accepted)]
    accepted, refused = refuse_revoked(session, accepted)
    rejected = [*(i for i in items if isinstance(i, Rejected)), *refused]
    fresh, duplicates = _claim(session, accepted, received_at)

    vehicle_ids = {
        m.vehicle_id for m in fresh if isinstance(m, TelemetryBatch | TelemetryRows | VehicleEvent)
    }
    vehicle_ids |= {
        m.device_id for m in fresh if isinstance(m, DeviceStatus) and m.kind == "vehicle"
    }
    vehicle_ids |= {m.device_id for m in fresh if isinstance(m, CommandAck)}  # vehicles' only
    locker_ids = {m.locker_id for m in fresh if isinstance(m, LockerEvent)}
    locker_ids |= {m.device_id for m in fresh if isinstance(m, DeviceStatus) and m.kind == "locker"}
    connection = session.connection()
    for model, kind, ids in ((Vehicle, "vehicle", vehicle_ids), (Locker, "locker", locker_ids)):
        unknown = {i for i in ids if (kind, i) not in known_devices}
        _ensure_devices(connection, model, unknown)
        _mark_seen(connection, model, ids, seen_at=received_at)
    statuses = [m for m in fresh if isinstance(m, DeviceStatus)]
    vehicles = _loaded(session, Vehicle, (m.device_id for m in statuses if m.kind == "vehicle"))
    lockers = _loaded(session, Locker, (m.device_id for m in statuses if m.kind == "locker"))

    vehicle_events: list[dict[str, Any]] = []
    locker_events: list[dict[str, Any]] = []
    for m in fresh:
        if isinstance(m, TelemetryBatch | TelemetryRows):
            continue
        if isinstance(m, VehicleEvent):
            vehicle_events.append(
                {
                    "vehicle_id": m.vehicle_id,
                    "seq": m.seq,
                    "kind": m.kind,
                    "at": m.at,
                    "lat": m.position.lat if m.position else None,
                    "lon": m.position.lon if m.position else None,
                    "evidence": m.evidence,
                    "message_id": m.id,
                }
            )
        elif isinstance(m, LockerEvent):
            locker_events.append(
                {
                    "locker_id": m.locker_id,
                    "seq": m.seq,
                    "kind": m.kind,
                    "at": m.at,
                    "compartment": m.compartment,
                    "grant_id": m.grant_id,
                    "reason": m.reason[:200],
                    "message_id": m.id,
                    "command_id": m.command_id,
                }
            )
        elif isinstance(m, DeviceStatus):
            device: Vehicle | Locker = (
                vehicles[m.device_id] if m.kind == "vehicle" else lockers[m.device_id]
            )
            device.online = m.online
            device.version = m.version[:64]
            if isinstance(device, Vehicle):
                device.last_status = _status_record(m)
            if isinstance(device, Locker) and m.compartments is not None:
                device.compartments = m.compartments
            if isinstance(device, Locker) and m.sizes is not None:
                device.sizes = list(m.sizes)
    session.flush()  # device rows first: positions and events reference them

    insert_positions(
        session.connection(),
        _position_tuples(m for m in fresh if isinstance(m, TelemetryBatch | TelemetryRows)),
    )
    if vehicle_events:
        session.execute(insert(VehicleEventRow), vehicle_events)
    command_acks = [m for m in fresh if isinstance(m, CommandAck)]
    if command_acks:
        session.execute(insert(VehicleCommandAck), [_ack_row(m, received_at) for m in command_acks])
    if locker_events:
        session.execute(insert(LockerEventRow), locker_events)
    if rejected:
        session.execute(
            insert(DeadLetter),
            [
                {
                    "received_at": received_at,
                    "topic": r.topic[:256],
                    "reason": r.reason[:200],
                    "payload": r.payload,
                }
                for r in rejected
            ],
        )
    devices = frozenset([("vehicle", i) for i in vehicle_ids] + [("locker", i) for i in locker_ids])
    return StoreResult(
        stored=len(fresh),
        duplicates=duplicates,
        dead_letters=len(rejected),
        refused=tuple(refused),
        devices=devices,
    )


def refuse_revoked(
    session: Session, accepted: Sequence[Accepted]
) -> tuple[list[Accepted], list[Rejected]]:
    """Split off the messages of devices the registry (:mod:`cloud.registry`) marks revoked: the
    broker refuses them once reloaded, but what they published before still arrives."""
    # Each topic parsed once (a batch holds many messages per device); valid: classify accepted.
    senders = {t: parse_topic(t) for t in {a.topic for a in accepted}}
    revoked = revoked_among(session, {s.device_id for s in senders.values()})
    if not revoked:
        return list(accepted), []
    kept: list[Accepted] = []
    refused: list[Rejected] = []
    for item in accepted:
        sender = senders[item.topic]
        if sender.device_id not in revoked:
            kept.append(item)
            continue
        refused.append(
            Rejected(
                topic=item.topic,
                topic_kind=f"{sender.kind}/{sender.channel}",
                reason="device_revoked",
                detail=f"{sender.kind} {sender.device_id} is revoked in the device registry",
                payload=item.payload,
            )
        )
    return kept, refused


def _ack_row(ack: CommandAck, received_at: datetime) -> dict[str, Any]:
    """A van's :class:`CommandAck` as a ``vehicle_command_acks`` row (ingest takes acks only on
    ``fleet/+/cmd/ack``)."""
    return {
        "vehicle_id": ack.device_id,
        "command_id": ack.command_id,
        "ok": ack.ok,
        "reason": ack.reason[:40],
        "detail": ack.detail[:500],
        "result": ack.result,
        "sent_at": ack.sent_at,
        "received_at": received_at,
        "message_id": ack.id,
    }


def _status_record(status: DeviceStatus) -> dict[str, Any]:
    """What ``vehicles.last_status`` keeps of a van's status (JSON-ready)."""
    return status.model_dump(
        mode="json",
        include={
            "online",
            "sent_at",
            "uptime_s",
            "outbox_depth",
            "outbox_bytes",
            "outbox_dropped",
            "health",
        },
    )
