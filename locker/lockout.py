"""Brute-force lockout of a keypad: failed codes buy exponentially longer silences.

Schedule (:class:`LockoutPolicy` defaults): the first 5 failed codes are free; the 6th locks the
keypad for 30 s, each further failure doubles that, up to 1 h (6th: 30 s, 7th: 60 s, ... 12th and
later: 3600 s). While locked out the keypad's entries are ignored: not checked, not counted, and they
do not extend the lockout (a passer-by mashing keys should not lock it for longer).

Resetting the counter:

- A failure-free day (``forgive_after_s`` = 24 h since the last failure) forgives every failure.
- A success resets the counter only when it spends a *single-use hub grant* (pickup, courier or
  return). Each such reset costs the attacker one real parcel addressed to them. Multi-use grants
  and offline courier codes (one new code a minute) do not reset: a courier typing 4 guesses, then
  the current courier code, then 4 more guesses... would otherwise get 5,760 guesses a day.

The counter lives in SQLite in the state directory (``synchronous=FULL``): power-cycling the locker
restores it, lockout deadline included, so an attacker gains nothing by pulling the plug. A clock set
back after a power cut only lengthens the lockout and delays forgiveness (the safe direction).

Attacker's success probability per locker-day. A random 8-digit guess (``CODE_DIGITS``, 10^8
codes) hits one of ``L`` live codes with probability ``L / 10^8``, so ``P ≈ A · L / 10^8`` for ``A``
guesses a day. With a continuous attack, no parcels of one's own and entries typed instantly:
guesses 1-6 at t = 0 (the 6th starts the first 30 s lockout), guesses 7-13 at t = 30, 90, 210, 450,
930, 1890 and 3810 s, then one an hour (t = 3810 + k·3600 s, k = 1..22, all before 86,400 s):
``A = 13 + 22 = 35``. Live codes: 12 compartments x 3 live grants = 36, plus the 2·skew+1 = 5
courier codes accepted at any moment (skew 2 steps): ``L = 41``. ``P ≈ 35 · 41 / 10^8 ≈ 1.4e-5``
per locker-day, below the 1e-4 bound; ``tests/locker/test_lockout.py`` computes ``A`` from this
module with a simulated clock and asserts the bound. Each parcel an attacker receives (a reset)
restarts the schedule: at most 13 extra guesses, another ~5e-6. A keypad lockout is also a denial of service anyone can cause: the hub's
signed ``open_compartment`` command is the way round it for a customer on the phone.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from edge.durable import open_durable_db
from locker.errors import StateStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lockout (
    keypad TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_us INTEGER NOT NULL,
    locked_until_us INTEGER NOT NULL
);
"""


def _us(t: datetime) -> int:
    return round(t.timestamp() * 1_000_000)


def _dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """How many failures are free, how long the first lockout lasts, its cap, and forgiveness."""

    free_failures: int = 5
    base_s: float = 30.0
    cap_s: float = 3600.0
    forgive_after_s: float = 86_400.0

    def __post_init__(self) -> None:
        if self.free_failures < 0 or self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError(f"inconsistent lockout policy: {self}")

    def lockout_s(self, failures: int) -> float:
        """The lockout that starts with the ``failures``-th failure (0 while free)."""
        over = failures - self.free_failures
        if over <= 0:
            return 0.0
        return min(self.base_s * 2.0 ** min(over - 1, 62), self.cap_s)


@dataclass(frozen=True, slots=True)
class LockoutState:
    failures: int
    locked_until: datetime | None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


class Lockout:
    """The lockout counters of a locker's keypads, on disk. Not thread-safe: one loop owns it."""

    def __init__(self, path: Path | str, *, policy: LockoutPolicy | None = None) -> None:
        self.path = Path(path)
        self.policy = policy or LockoutPolicy()
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise StateStoreError(f"cannot open the lockout store: {err}", path=self.path) from err

    def state(self, keypad: str = "main") -> LockoutState:
        row = self._db.execute(
            "SELECT failures, locked_until_us FROM lockout WHERE keypad = ?", (keypad,)
        ).fetchone()
        if row is None:
            return LockoutState(failures=0, locked_until=None)
        failures, until = row
        return LockoutState(failures=failures, locked_until=_dt(until) if until else None)

    def is_locked(self, *, now: datetime, keypad: str = "main") -> bool:
        return self.state(keypad).locked(now)

    def record_failure(self, *, now: datetime, keypad: str = "main") -> LockoutState:
        """Count one failed code; return the new state (``locked_until`` set if it locks)."""
        row = self._db.execute(
            "SELECT failures, last_failure_us FROM lockout WHERE keypad = ?", (keypad,)
        ).fetchone()
        failures = 0
        if row is not None:
            failures, last = row
            if _us(now) - last >= self.policy.forgive_after_s * 1_000_000:
                failures = 0
        failures += 1
        seconds = self.policy.lockout_s(failures)
        until = now + timedelta(seconds=seconds) if seconds else None
        self._write(keypad, failures, last_failure=now, until=until)
        return LockoutState(failures=failures, locked_until=until)

    def record_success(self, *, now: datetime, resets: bool, keypad: str = "main") -> None:
        """A code opened a door. Only a success that ``resets`` (a spent single-use hub grant)
        clears the counter; see the module docstring for why the others do not."""
        if resets:
            self._write(keypad, 0, last_failure=now, until=None)

    def _write(
        self, keypad: str, failures: int, *, last_failure: datetime, until: datetime | None
    ) -> None:
        try:
            self._db.execute(
                "INSERT INTO lockout (keypad, failures, last_failure_us, locked_until_us)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (keypad) DO UPDATE SET failures = excluded.failures,"
                " last_failure_us = excluded.last_failure_us,"
                " locked_until_us = excluded.locked_until_us",
                (keypad, failures, _us(last_failure), _us(until) if until else 0),
            )
        except sqlite3.Error as err:
            raise StateStoreError(
                f"cannot update the lockout store: {err}", path=self.path
            ) from err

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Lockout:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
