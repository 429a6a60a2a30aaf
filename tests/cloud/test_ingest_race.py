"""Two ingest workers meeting the same new van at the same moment must both store their batch."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import func, select

from cloud.db import make_engine, make_session_factory, migrate
from cloud.ingest import classify
from cloud.models import PositionRow, Vehicle
from cloud.services.ingest import Accepted, store_batch
from protocol.codec import encode
from protocol.messages import Position, TelemetryBatch
from protocol.topics import Channel, vehicle_topic


def _batch(seq: int) -> Accepted:
    point = Position(t=datetime(2026, 11, 23, 12, 0, seq, tzinfo=UTC), lat=52.37, lon=4.89)
    message = TelemetryBatch(vehicle_id="van-new", seq=seq, points=(point,))
    item = classify(vehicle_topic("van-new", Channel.TELEMETRY), encode(message))
    assert isinstance(item, Accepted)
    return item


def test_two_workers_creating_the_same_vehicle_both_store_their_batch(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    errors: list[BaseException] = []
    try:
        first = sessions()
        store_batch(first, [_batch(1)], received_at=datetime.now(UTC))  # open, not committed

        def second_worker() -> None:
            try:
                with sessions() as second:
                    store_batch(second, [_batch(2)], received_at=datetime.now(UTC))
                    second.commit()
            except BaseException as err:  # reported below, in the test's thread
                errors.append(err)

        other = threading.Thread(target=second_worker)
        other.start()
        other.join(0.5)  # it must wait for the first transaction, not fail
        first.commit()
        first.close()
        other.join(30)
        assert not other.is_alive()
        assert errors == []
        with sessions() as check:
            assert check.scalar(select(func.count()).select_from(Vehicle)) == 1
            assert check.scalar(select(func.count()).select_from(PositionRow)) == 2
    finally:
        engine.dispose()


def test_a_worker_does_not_wait_for_another_holding_the_same_known_van(
    postgres_database: str,
) -> None:
    """Two workers sharing a fleet get batches of the same vans all the time. Once a van's row
    exists, neither may wait for the other's open transaction to store its own batch (they used
    to take turns: each held the vans' rows, updating last_seen, until it committed)."""
    migrate(postgres_database)
    engine = make_engine(postgres_database)
    sessions = make_session_factory(engine)
    try:
        with sessions() as setup:
            created = store_batch(setup, [_batch(1)], received_at=datetime.now(UTC))
            setup.commit()
        assert created.devices == {("vehicle", "van-new")}
        first = sessions()
        store_batch(
            first, [_batch(2)], received_at=datetime.now(UTC), known_devices=created.devices
        )
        done = threading.Event()
        errors: list[BaseException] = []

        def second_worker() -> None:
            try:
                with sessions() as second:
                    store_batch(
                        second,
                        [_batch(3)],
                        received_at=datetime.now(UTC),
                        known_devices=created.devices,
                    )
                    second.commit()
                done.set()
            except BaseException as err:  # reported below, in the test's thread
                errors.append(err)

        other = threading.Thread(target=second_worker)
        other.start()
        finished_while_first_open = done.wait(60)
        first.commit()
        first.close()
        other.join(30)
        assert errors == []
        assert finished_while_first_open, "the second worker waited for the first to commit"
        with sessions() as check:
            assert check.scalar(select(func.count()).select_from(PositionRow)) == 3
            seen = check.scalar(select(Vehicle.last_seen))
            assert seen is not None
    finally:
        engine.dispose()
