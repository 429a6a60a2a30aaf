"""Materialised KPIs (migration 0008) against the same KPIs computed on read, on SQLite and
PostgreSQL: a stored day answers with the very figures a read computes, late data found by the
triggers makes the day live again until the job rebuilds it, and today is never stored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.kpi_job import KpiMaterialiser
from cloud.models import (
    KpiDay,
    KpiLockerRecord,
    KpiRowRecord,
    Parcel,
    ParcelEvent,
    PositionRow,
    VehicleEventRow,
)
from cloud.services import kpi_store
from cloud.services.errors import KpiDayOpenError
from cloud.services.ingest import insert_positions
from cloud.services.kpi_rebuild import rebuild_day
from cloud.services.trips import TripRules
from edge.cli import main as lastmile
from tests.cloud.helpers import MASTER_SECRET
from tests.cloud.test_kpis_api import DAY, FLEET, _get, _seed
from tests.cloud.track_rigs import T0

THE_DAY = date.fromisoformat(DAY)
NEXT_MORNING = datetime.combine(THE_DAY + timedelta(days=1), datetime.min.time(), UTC) + timedelta(
    hours=1
)
RANGE = {"from": (THE_DAY - timedelta(days=1)).isoformat(), "to": DAY}
QUERIES = (
    RANGE,
    {**RANGE, "depot": "north"},
    {**RANGE, "depot": "main"},
    {**RANGE, "vehicle_id": "van-1"},
)


def _rebuild(session_factory: sessionmaker[Session], day: date, now: datetime) -> int:
    return rebuild_day(session_factory, day=day, fleet=FLEET, rules=TripRules(), now=now)


def _bodies(session_factory: sessionmaker[Session], database_url: str) -> list[object]:
    responses = _get(session_factory, database_url, *QUERIES)
    for r in responses:
        assert r.status_code == 200, r.text
    return [r.json() for r in responses]


def _late_delivery(session: Session, at: datetime) -> None:
    """A van's scan of a parcel at ``at`` that reaches the hub only now."""
    pid = uuid.uuid4()
    session.add(
        Parcel(
            id=pid,
            status="delivered",
            vehicle_id="van-1",
            address="Dam 2",
            created_at=at - timedelta(hours=3),
            updated_at=at,
        )
    )
    session.flush()
    for when, frm, to in (
        (at - timedelta(hours=2), "created", "at_depot"),
        (at - timedelta(hours=1), "at_depot", "out_for_delivery"),
        (at, "out_for_delivery", "delivered"),
    ):
        session.add(
            ParcelEvent(parcel_id=pid, at=when, kind=to, from_status=frm, to_status=to, detail={})
        )


def test_materialised_days_answer_with_the_figures_computed_on_read(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    on_read = _bodies(session_factory, database_url)
    assert on_read[0]["count"] > 0  # type: ignore[index]

    stored = [_rebuild(session_factory, d, NEXT_MORNING) for d in (THE_DAY - timedelta(1), THE_DAY)]
    assert all(n > 0 for n in stored)
    with session_factory() as session:
        days = set(
            kpi_store.current_days(
                session,
                first=THE_DAY - timedelta(1),
                last=THE_DAY,
                now=NEXT_MORNING,
                fleet=FLEET,
                rules=TripRules(),
            )
        )
        assert days == {THE_DAY - timedelta(1), THE_DAY}
        assert session.scalar(select(func.count()).select_from(KpiRowRecord)) == 8
        assert session.scalar(select(func.count()).select_from(KpiLockerRecord)) == 2

    assert _bodies(session_factory, database_url) == on_read

    # and the answer really comes from the table: a figure changed there shows through the API
    with session_factory() as session, session.begin():
        session.execute(
            update(KpiRowRecord)
            .where(KpiRowRecord.day == THE_DAY, KpiRowRecord.vehicle_id == "van-1")
            .values(handovers=99)
        )
    (one,) = _get(session_factory, database_url, {"from": DAY, "vehicle_id": "van-1"})
    assert one.json()["data"][0]["handovers"] == 99


def test_late_data_makes_a_stored_day_live_until_the_job_rebuilds_it(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    _rebuild(session_factory, THE_DAY, NEXT_MORNING)
    before = _bodies(session_factory, database_url)

    with session_factory() as session, session.begin():
        _late_delivery(session, T0 + timedelta(hours=5))
    with session_factory() as session:
        day = session.get(KpiDay, THE_DAY)
        assert day is not None and day.version >= 1 and day.built_version == 0
        assert kpi_store.stale_days(session) == [THE_DAY]
    live = _bodies(session_factory, database_url)
    van = {r["vehicle_id"]: r for r in live[3]["data"]}["van-1"]  # type: ignore[index]
    assert van["handovers"] == 3  # the late scan counts at once, computed on read
    assert live != before

    job = KpiMaterialiser(
        session_factory=session_factory,
        fleet=FLEET,
        rules=TripRules(),
        interval_s=60,
        lookback_days=1,
        clock=lambda: NEXT_MORNING + timedelta(days=5),  # THE_DAY is out of the lookback
    )
    # the lookback's one day (never stored) and THE_DAY, stale
    assert asyncio.run(job.run_once()) == [THE_DAY, THE_DAY + timedelta(days=5)]
    with session_factory() as session:
        assert kpi_store.stale_days(session) == []
        assert THE_DAY in kpi_store.current_days(
            session, first=THE_DAY, last=THE_DAY, now=NEXT_MORNING, fleet=FLEET, rules=TripRules()
        )
    assert THE_DAY in job.rebuilt
    assert _bodies(session_factory, database_url) == live


def test_positions_and_ignition_of_a_stored_day_mark_it_stale_and_others_do_not(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    _rebuild(session_factory, THE_DAY, NEXT_MORNING)
    with session_factory() as session, session.begin():
        late_fix = {"vehicle_id": "van-1", "lat": 52.0, "lon": 4.0, "message_id": uuid.uuid4()}
        session.execute(
            insert(PositionRow),
            [{**late_fix, "t": T0 + timedelta(hours=9, seconds=k)} for k in range(3)]
            + [{**late_fix, "t": T0 + timedelta(days=3)}],  # a day nobody stored: nothing
        )
    with session_factory() as session:
        day = session.get(KpiDay, THE_DAY)
        assert day is not None and day.built_version == 0
        assert day.version >= 1  # once per statement on PostgreSQL, per row on SQLite
        assert session.get(KpiDay, THE_DAY + timedelta(days=3)) is None
        assert (
            kpi_store.current_days(
                session,
                first=THE_DAY,
                last=THE_DAY,
                now=NEXT_MORNING,
                fleet=FLEET,
                rules=TripRules(),
            )
            == set()
        )
    _rebuild(session_factory, THE_DAY, NEXT_MORNING)
    with session_factory() as session, session.begin():
        session.add(
            VehicleEventRow(
                vehicle_id="van-1",
                seq=1,
                kind="ignition_off",
                at=T0 + timedelta(hours=10),
                evidence={},
                message_id=uuid.uuid4(),
            )
        )
    with session_factory() as session:
        assert kpi_store.stale_days(session) == [THE_DAY]


def test_today_is_never_stored_and_the_job_fills_the_lookback(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    _seed(session_factory)
    now = NEXT_MORNING
    with pytest.raises(KpiDayOpenError, match="has not ended"):
        _rebuild(session_factory, THE_DAY + timedelta(days=1), now)
    job = KpiMaterialiser(
        session_factory=session_factory,
        fleet=FLEET,
        rules=TripRules(),
        interval_s=60,
        lookback_days=2,
        clock=lambda: now,
    )
    assert asyncio.run(job.run_once()) == [THE_DAY - timedelta(days=1), THE_DAY]
    assert asyncio.run(job.run_once()) == []  # nothing changed: nothing to do
    with session_factory() as session:
        assert session.get(KpiDay, THE_DAY + timedelta(days=1)) is None


def test_lastmile_kpis_rebuild_stores_the_days_it_is_given(
    session_factory: sessionmaker[Session],
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(session_factory)
    config = tmp_path / "hub.toml"
    config.write_text(
        f'database_url = "{database_url}"\n'
        f'code_master_secret = "{MASTER_SECRET}"\n'
        '[fleet.vehicles.van-1]\ntype = "e_van"\ndepot = "north"\n'
        '[fleet.lockers]\nlocker-1 = "north"\n'
    )
    before = _bodies(session_factory, database_url)
    first = (THE_DAY - timedelta(days=1)).isoformat()
    assert lastmile(["kpis", "rebuild", "--config", str(config), "--day", first, "--to", DAY]) == 0
    out = capsys.readouterr().out
    assert f"{first}: 5 rows stored" in out and f"{DAY}: 5 rows stored" in out
    assert _bodies(session_factory, database_url) == before
    today = datetime.now(UTC).date().isoformat()
    assert lastmile(["kpis", "rebuild", "--config", str(config), "--day", today]) == 1
    assert "has not ended" in capsys.readouterr().out
    assert lastmile(["kpis", "rebuild", "--config", str(config), "--day", "23/11"]) == 2


def test_a_late_batch_written_by_ingest_marks_its_stored_day_stale(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    """Through ingest's own writer: COPY on PostgreSQL (a statement trigger over its transition
    table), executemany on SQLite (a row trigger)."""
    _seed(session_factory)
    _rebuild(session_factory, THE_DAY, NEXT_MORNING)
    fix_at = T0 + timedelta(hours=11)
    today = datetime.now(UTC)
    rows = [
        (at, 52.0, 4.0, 0.0, None, None, None, None, "3d", "van-1", uuid.uuid4())
        for at in (fix_at, fix_at + timedelta(seconds=1), today)
    ]
    with session_factory() as session, session.begin():
        insert_positions(session.connection(), rows)
    with session_factory() as session:
        assert kpi_store.stale_days(session) == [THE_DAY]
        assert session.get(KpiDay, today.date()) is None
