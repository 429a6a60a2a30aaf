"""Years of positions: a BRIN index on PostgreSQL, and old positions pruned in bounded chunks; the
idempotency table forgets message ids past its horizon, and still catches redeliveries inside it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import IngestedMessage, PositionRow, RevokedCredential, Vehicle
from cloud.retention import (
    REVOCATION_GRACE,
    IngestedMessagePruner,
    PositionPruner,
    RevocationPruner,
    prune_ingested_messages,
    prune_positions,
)
from cloud.services.ingest import Accepted, store_batch
from edge.settings import MqttSettings
from protocol.messages import Position, TelemetryBatch
from tests.cloud.helpers import hub_settings

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _track(session_factory: sessionmaker[Session], *, days_back: int, n: int) -> None:
    with session_factory() as session, session.begin():
        if session.get(Vehicle, "van-1") is None:
            session.add(Vehicle(id="van-1", online=True, version=""))
            session.flush()
        start = NOW - timedelta(days=days_back)
        message_id = uuid.uuid4()
        session.add_all(
            PositionRow(
                vehicle_id="van-1",
                t=start + timedelta(seconds=i),
                lat=52.0,
                lon=4.9,
                message_id=message_id,
            )
            for i in range(n)
        )


def _times(session_factory: sessionmaker[Session]) -> list[datetime]:
    with session_factory() as session:
        return list(session.scalars(select(PositionRow.t).order_by(PositionRow.t)))


def test_positions_older_than_the_retention_go_in_chunks_and_the_rest_stay(
    session_factory: sessionmaker[Session],
) -> None:
    _track(session_factory, days_back=400, n=25)
    _track(session_factory, days_back=31, n=7)
    _track(session_factory, days_back=2, n=3)

    deleted = prune_positions(session_factory, older_than=NOW - timedelta(days=30), chunk=10)

    assert deleted == 32
    assert all(t >= NOW - timedelta(days=30) for t in _times(session_factory))
    assert len(_times(session_factory)) == 3


def test_the_pruner_uses_its_clock_and_counts(session_factory: sessionmaker[Session]) -> None:
    _track(session_factory, days_back=10, n=4)
    _track(session_factory, days_back=1, n=2)
    pruner = PositionPruner(
        session_factory=session_factory,
        retention=timedelta(days=7),
        interval_s=3600,
        chunk=3,
        clock=lambda: NOW,
    )
    assert asyncio.run(pruner.prune_once()) == 4
    assert pruner.pruned == 4
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PositionRow)) == 2


def test_positions_have_a_time_index_brin_on_postgresql(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        conn = session.connection()
        names = {i["name"] for i in inspect(conn).get_indexes("positions")}
        assert {"ix_positions_t", "ix_positions_vehicle_t"} <= names
        if conn.dialect.name == "postgresql":
            method = conn.execute(
                text(
                    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
                    " WHERE c.relname = 'ix_positions_t'"
                )
            ).scalar()
            assert method == "brin"


def _ingested(
    session_factory: sessionmaker[Session], *, days_back: float, n: int
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    with session_factory() as session, session.begin():
        session.add_all(
            IngestedMessage(
                message_id=i,
                device_id="van-1",
                kind="telemetry",
                seq=k,
                received_at=NOW - timedelta(days=days_back),
                n_items=50,
            )
            for k, i in enumerate(ids)
        )
    return ids


def test_message_ids_past_the_idempotency_horizon_are_forgotten_and_the_rest_kept(
    session_factory: sessionmaker[Session],
) -> None:
    old = _ingested(session_factory, days_back=45, n=23)
    recent = _ingested(session_factory, days_back=29.9, n=4)  # inside the 30-day horizon
    forget = IngestedMessagePruner(
        session_factory=session_factory,
        retention=timedelta(days=30),
        interval_s=3600,
        chunk=5,
        clock=lambda: NOW,
    )

    assert asyncio.run(forget.prune_once()) == 23
    assert asyncio.run(forget.prune_once()) == 0
    assert forget.pruned == 23
    with session_factory() as session:
        kept = set(session.scalars(select(IngestedMessage.message_id)))
    assert kept == set(recent) and not kept & set(old)
    assert prune_ingested_messages(session_factory, older_than=NOW, chunk=2) == 4


def test_a_redelivery_inside_the_horizon_is_still_recognised_after_pruning(
    session_factory: sessionmaker[Session],
) -> None:
    """The pruned table still does its job: a batch stored again is no duplicate."""
    batch = TelemetryBatch(
        vehicle_id="van-1",
        seq=1,
        points=[Position(t=NOW - timedelta(days=1), lat=52.0, lon=4.9)],
    )
    item = Accepted(topic="fleet/van-1/telemetry", message=batch, payload=b"{}")
    _ingested(session_factory, days_back=60, n=3)
    with session_factory() as session, session.begin():
        store_batch(session, [item], received_at=NOW - timedelta(days=1))
    prune_ingested_messages(session_factory, older_than=NOW - timedelta(days=30), chunk=100)
    with session_factory() as session, session.begin():
        store_batch(session, [item], received_at=NOW)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PositionRow)) == 1
        assert session.scalar(select(func.count()).select_from(IngestedMessage)) == 1


def test_the_horizon_must_outlast_the_hubs_broker_session() -> None:
    with pytest.raises(ValidationError, match="must be longer than the hub's broker session"):
        hub_settings(
            database_url="sqlite://",
            mqtt=MqttSettings(session_expiry_s=14 * 86_400),
            ingested_retention_days=14,
        )
    assert hub_settings(database_url="sqlite://").ingested_retention_days == 30


def test_ingested_messages_have_a_time_index_brin_on_postgresql(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        conn = session.connection()
        names = {i["name"] for i in inspect(conn).get_indexes("ingested_messages")}
        assert "ix_ingested_messages_received_at" in names
        if conn.dialect.name == "postgresql":
            method = conn.execute(
                text(
                    "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
                    " WHERE c.relname = 'ix_ingested_messages_received_at'"
                )
            ).scalar()
            assert method == "brin"


def test_revocations_of_expired_tokens_are_forgotten_and_keys_and_live_tokens_stay(
    session_factory: sessionmaker[Session],
) -> None:
    def revocation(kind: str, ident: str, expires_at: datetime | None) -> RevokedCredential:
        return RevokedCredential(
            kind=kind,
            ident=ident,
            revoked_at=NOW - timedelta(days=3),
            expires_at=expires_at,
            revoked_by="ops",
        )

    shared = "a" * 64  # a key's digest and a token's name may coincide: only the token goes
    with session_factory() as session, session.begin():
        session.add_all(
            [
                revocation("token", shared, NOW - timedelta(days=2)),
                revocation("key", shared, None),
                *(revocation("token", f"old-{i}", NOW - timedelta(hours=2)) for i in range(5)),
                revocation("token", "in-grace", NOW - timedelta(minutes=30)),
                revocation("token", "live", NOW + timedelta(hours=1)),
            ]
        )

    pruned = asyncio.run(
        RevocationPruner(
            session_factory=session_factory,
            retention=REVOCATION_GRACE,
            interval_s=60,
            chunk=2,
            clock=lambda: NOW,
        ).prune_once()
    )

    assert pruned == 6
    with session_factory() as session:
        left = session.execute(
            select(RevokedCredential.kind, RevokedCredential.ident).order_by(
                RevokedCredential.ident, RevokedCredential.kind
            )
        ).all()
    assert [tuple(r) for r in left] == [("key", shared), ("token", "in-grace"), ("token", "live")]
