"""The locker's durable state besides grants and lockout: occupancy, open flows, spent courier
steps, command nonces, and the clean-shutdown marker.

SQLite in WAL mode with ``synchronous=FULL``, like the outbox: each change is on disk before the
agent acts on it, so a kill -9 or a power cut in the middle of a deposit resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args
from uuid import UUID

from edge.durable import open_durable_db
from locker.errors import StateStoreError

Flow = Literal["deposit", "pickup", "return", "remote"]
Stage = Literal["unlocked", "opened"]
_FLOWS: tuple[Flow, ...] = get_args(Flow)
_STAGES: tuple[Stage, ...] = get_args(Stage)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS occupancy (
    compartment INTEGER PRIMARY KEY,
    occupied INTEGER NOT NULL,
    since_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    compartment INTEGER PRIMARY KEY,
    flow TEXT NOT NULL,
    stage TEXT NOT NULL,
    grant_id TEXT,
    command_id TEXT,
    started_us INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS courier_steps (step INTEGER PRIMARY KEY, used_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires_us INTEGER NOT NULL);
"""


def _us(t: datetime) -> int:
    return round(t.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class Session:
    """A compartment unlocked for a purpose, until its door has opened and closed again."""

    compartment: int
    flow: Flow
    stage: Stage
    grant_id: UUID | None
    command_id: UUID | None
    started: datetime


class LockerState:
    """One SQLite file, ``{state_dir}/{id}-state.db``, plus the marker ``{id}.running``."""

    def __init__(self, path: Path | str, *, marker: Path | str) -> None:
        self.path = Path(path)
        self.marker = Path(marker)
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise StateStoreError(f"cannot open the locker state: {err}", path=self.path) from err

    def _exec(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as err:
            raise StateStoreError(f"locker state: {err}", path=self.path) from err

    # -- the clean-shutdown marker ----------------------------------------------------------------

    def begin_run(self) -> bool:
        """Mark this run as started; True if the previous run never ended cleanly (power cut,
        kill -9, crash)."""
        unclean = self.marker.exists()
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_WRONLY, 0o644)
            os.fsync(fd)
            os.close(fd)
        except OSError as err:
            raise StateStoreError(f"cannot write the run marker: {err}", path=self.marker) from err
        return unclean

    def end_run(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.marker.unlink()

    # -- occupancy --------------------------------------------------------------------------------

    def occupied(self) -> set[int]:
        rows = self._exec("SELECT compartment FROM occupancy WHERE occupied = 1").fetchall()
        return {n for (n,) in rows}

    def set_occupied(self, compartment: int, occupied: bool, *, at: datetime) -> None:
        self._exec(
            "INSERT INTO occupancy (compartment, occupied, since_us) VALUES (?, ?, ?)"
            " ON CONFLICT (compartment) DO UPDATE SET occupied = excluded.occupied,"
            " since_us = excluded.since_us",
            (compartment, int(occupied), _us(at)),
        )

    # -- sessions ---------------------------------------------------------------------------------

    def sessions(self) -> dict[int, Session]:
        rows = self._exec(
            "SELECT compartment, flow, stage, grant_id, command_id, started_us FROM sessions"
        ).fetchall()
        out: dict[int, Session] = {}
        for number, flow, stage, grant_id, command_id, started in rows:
            if flow not in _FLOWS or stage not in _STAGES:
                raise StateStoreError(f"unknown session {flow!r}/{stage!r}", path=self.path)
            out[number] = Session(
                compartment=number,
                flow=flow,
                stage=stage,
                grant_id=UUID(grant_id) if grant_id else None,
                command_id=UUID(command_id) if command_id else None,
                started=_dt(started),
            )
        return out

    def put_session(self, session: Session) -> None:
        self._exec(
            "INSERT OR REPLACE INTO sessions"
            " (compartment, flow, stage, grant_id, command_id, started_us)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                session.compartment,
                session.flow,
                session.stage,
                str(session.grant_id) if session.grant_id else None,
                str(session.command_id) if session.command_id else None,
                _us(session.started),
            ),
        )

    def drop_session(self, compartment: int) -> None:
        self._exec("DELETE FROM sessions WHERE compartment = ?", (compartment,))

    # -- courier steps and command nonces ---------------------------------------------------------

    def spend_courier_step(self, step: int, *, at: datetime, keep_after: int) -> bool:
        """Record an accepted courier time step; False if it was accepted before (a replay).
        Steps below ``keep_after`` can no longer match and are forgotten."""
        self._exec("DELETE FROM courier_steps WHERE step < ?", (keep_after,))
        cur = self._exec(
            "INSERT OR IGNORE INTO courier_steps (step, used_us) VALUES (?, ?)", (step, _us(at))
        )
        return cur.rowcount == 1

    def courier_step_spent(self, step: int) -> bool:
        row = self._exec("SELECT 1 FROM courier_steps WHERE step = ?", (step,)).fetchone()
        return row is not None

    def remember_nonce(self, nonce: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record a command nonce until its expiry; False if known (a replay)."""
        self._exec("DELETE FROM nonces WHERE expires_us < ?", (_us(now),))
        cur = self._exec(
            "INSERT OR IGNORE INTO nonces (nonce, expires_us) VALUES (?, ?)",
            (nonce, _us(expires_at)),
        )
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LockerState:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
