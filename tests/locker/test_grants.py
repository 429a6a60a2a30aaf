"""The grant store: hashes only, idempotent, durable, and honest about used and expired codes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from locker.grants import GrantStore
from tests.locker.story import KEY, grant

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def _store(tmp_path) -> GrantStore:  # type: ignore[no-untyped-def]
    return GrantStore(tmp_path / "L1-grants.db", locker_key=KEY)


def test_a_matching_code_finds_its_grant_and_only_then(tmp_path) -> None:
    g = grant("48151623", compartment=2, valid_from=NOW, valid_until=NOW + timedelta(hours=1))
    with _store(tmp_path) as store:
        assert store.add(g)
        found = store.match("48151623", now=NOW + timedelta(minutes=5))
        assert found is not None
        assert (found.grant_id, found.compartment, found.spent) == (g.grant_id, 2, False)
        assert found.valid_from == g.valid_from and found.valid_until == g.valid_until
        assert store.match("48151624", now=NOW) is None
        assert store.match("48151623", now=NOW - timedelta(microseconds=1)) is None  # not yet
        assert store.match("48151623", now=NOW + timedelta(hours=1)) is None  # expired


def test_adding_a_grant_twice_is_harmless_and_cannot_revive_a_used_code(tmp_path) -> None:
    g = grant("1234", valid_from=NOW, valid_until=NOW + timedelta(days=1))
    with _store(tmp_path) as store:
        assert store.add(g)
        store.mark_used(g.grant_id, at=NOW + timedelta(minutes=1))
        assert not store.add(g)  # the hub's redelivery
        assert len(store) == 1
        found = store.match("1234", now=NOW + timedelta(minutes=2))
        assert found is not None and found.spent
        assert found.used_at == NOW + timedelta(minutes=1)


def test_an_unused_grant_wins_over_a_used_one_with_the_same_code(tmp_path) -> None:
    old = grant("1234", compartment=1, valid_from=NOW, valid_until=NOW + timedelta(days=1))
    new = grant("1234", compartment=2, valid_from=NOW, valid_until=NOW + timedelta(days=1))
    with _store(tmp_path) as store:
        store.add(old)
        store.add(new)
        store.mark_used(old.grant_id, at=NOW)
        found = store.match("1234", now=NOW + timedelta(seconds=1))
        assert found is not None and found.grant_id == new.grant_id


def test_a_multi_use_grant_stays_usable(tmp_path) -> None:
    g = grant("1234", valid_from=NOW, valid_until=NOW + timedelta(days=1), single_use=False)
    with _store(tmp_path) as store:
        store.add(g)
        store.mark_used(g.grant_id, at=NOW)
        found = store.match("1234", now=NOW + timedelta(seconds=1))
        assert found is not None and not found.spent


def test_grants_are_on_disk_after_close(tmp_path) -> None:
    g = grant("1234", valid_from=NOW, valid_until=NOW + timedelta(days=1))
    with _store(tmp_path) as store:
        store.add(g)
    with _store(tmp_path) as store:
        assert store.get(g.grant_id) is not None
        assert store.match("1234", now=NOW) is not None
    db = sqlite3.connect(tmp_path / "L1-grants.db")
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_store_never_holds_the_plaintext_code(tmp_path) -> None:
    code = "90210417"
    g = grant(code, valid_from=NOW, valid_until=NOW + timedelta(days=1))
    store = _store(tmp_path)
    store.add(g)
    store.match(code, now=NOW)
    store.mark_used(g.grant_id, at=NOW)
    files = sorted(tmp_path.glob("L1-grants.db*"))
    assert files, "no database files"
    for f in files:  # database, WAL and shared memory, before the checkpoint of close()
        assert code.encode() not in f.read_bytes(), f"plaintext code found in {f.name}"
    store.close()
    rows = sqlite3.connect(tmp_path / "L1-grants.db").execute("SELECT * FROM grants").fetchall()
    assert code not in repr(rows)


def test_a_short_key_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        GrantStore(tmp_path / "x.db", locker_key=b"short")
