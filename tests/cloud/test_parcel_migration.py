"""Migration 0004 keeps the parcels of a running hub: a parcel awaiting pickup becomes deposited
and keeps its code (its keyed hash moves to ``parcel_grants``); the way back restores them."""

from __future__ import annotations

import uuid

from alembic import command
from sqlalchemy import text

from cloud.db import alembic_config, make_engine

WAITING, COLLECTED = uuid.uuid4(), uuid.uuid4()
GRANT_W, GRANT_C = uuid.uuid4(), uuid.uuid4()


def _upgrade(url: str, target: str, *, down: bool = False) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, target)
    finally:
        engine.dispose()


def test_awaiting_pickup_becomes_deposited_with_its_grant_and_back(database_url: str) -> None:
    _upgrade(database_url, "0002")
    engine = make_engine(database_url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO lockers (id, compartments, online, version)"
                    " VALUES ('locker-1', 4, true, '')"
                )
            )
            for pid, grant, status, n, picked in (
                (WAITING, GRANT_W, "awaiting_pickup", 1, None),
                (COLLECTED, GRANT_C, "picked_up", 2, "2026-11-30 10:00:00+00:00"),
            ):
                c.execute(
                    text(
                        "INSERT INTO parcels (id, locker_id, compartment, status, code_hash,"
                        " grant_id, created_at, valid_until, picked_up_at) VALUES (:id,"
                        " 'locker-1', :n, :status, :hash, :grant, '2026-11-30 09:00:00+00:00',"
                        " '2026-12-03 09:00:00+00:00', :picked)"
                    ),
                    {
                        "id": pid if c.dialect.name == "postgresql" else pid.hex,
                        "n": n,
                        "status": status,
                        "hash": "ab" * 32,
                        "grant": grant if c.dialect.name == "postgresql" else grant.hex,
                        "picked": picked,
                    },
                )
        _upgrade(database_url, "head")
        with engine.connect() as c:
            parcels = c.execute(
                text(
                    "SELECT status, compartment, attempts, updated_at FROM parcels ORDER BY compartment"
                )
            ).all()
            grants = c.execute(
                text(
                    "SELECT kind, compartment, state, code_hash FROM parcel_grants ORDER BY compartment"
                )
            ).all()
        assert [(p[0], p[1], p[2]) for p in parcels] == [("deposited", 1, 0), ("picked_up", 2, 0)]
        assert all(p[3] is not None for p in parcels)
        assert [tuple(g) for g in grants] == [
            ("pickup", 1, "active", "ab" * 32),
            ("pickup", 2, "used", "ab" * 32),
        ]
        _upgrade(database_url, "0002", down=True)
        with engine.connect() as c:
            back = c.execute(
                text("SELECT status, compartment, code_hash FROM parcels ORDER BY compartment")
            ).all()
        assert [tuple(b) for b in back] == [
            ("awaiting_pickup", 1, "ab" * 32),
            ("picked_up", 2, "ab" * 32),
        ]
    finally:
        engine.dispose()
