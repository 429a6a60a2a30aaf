"""The van's route from the hub: checked, kept on disk, acknowledged, shown to whoever drives.

The hub publishes the route retained on ``fleet/{id}/route``, so a van that reconnects gets it again
from the broker; it is also kept here (SQLite, WAL, ``synchronous=FULL``) so a van that restarts
offline still has its stops. A route is signed and expires (:mod:`protocol.routes`): it is kept
only if its signature holds under this van's route key (derived from its command key), it is in
its validity window and it is newer than the newest route this van ever accepted (a
:class:`~protocol.routes.RouteMark`, kept durably even after the route itself is dropped, so a
replayed old route cannot roll the plan back, across restarts too).

Every payload gets exactly one :class:`~protocol.messages.CommandAck` (``name`` ``"route"``,
``command_id`` the route id, or the nil UUID when none can be read) on the van's usual ack path,
and every refusal is counted in :attr:`RouteKeeper.refused` by its reason word:

- ``malformed``: not a route; ``unsigned``: a route without a signature (a hub from before routes
  were signed: upgrade the hub);
- ``no_command_key``: this van has no key, so it cannot tell the hub from anyone else;
- ``wrong_device`` / ``bad_signature`` / ``not_yet_valid`` / ``expired``: see
  :func:`protocol.commands.check_signed`; ``stale``: not newer than the route in force;
- ``store_failed``: the disk refused it (the van did not keep it).

A kept route that expired while the van was off (or no longer verifies) is dropped on start, with
a log line and an ack saying why, sent once the reply path is up (:meth:`RouteKeeper.start`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from edge.commands import NO_COMMAND_ID
from edge.durable import open_durable_db
from edge.errors import RouteStoreError
from protocol.codec import decode, encode
from protocol.commands import CommandError
from protocol.errors import DecodeError
from protocol.messages import CommandAck, Route
from protocol.routes import RouteMark, derive_route_key, is_unsigned, route_id_of, verify_route

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS route (one INTEGER PRIMARY KEY CHECK (one = 1), body BLOB);
CREATE TABLE IF NOT EXISTS route_mark (
    one INTEGER PRIMARY KEY CHECK (one = 1), route_id TEXT NOT NULL, issued_us INTEGER NOT NULL
);
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@runtime_checkable
class FollowsRoutes(Protocol):
    """A GNSS source that can drive a route (the simulator does; a real receiver cannot)."""

    def follow_route(self, stops: list[tuple[float, float]]) -> None: ...


class RouteStore(Protocol):
    """The route in force (as encoded bytes, judged again on start) and the newest route's mark.
    Methods raise :class:`~edge.errors.RouteStoreError`."""

    def load(self) -> bytes | None: ...

    def mark(self) -> RouteMark | None: ...

    def save(self, payload: bytes, *, mark: RouteMark) -> None:
        """Put ``payload`` in force and raise the mark to ``mark``, together."""
        ...

    def drop(self) -> None:
        """No route in force any more; the mark stays."""
        ...


class MemoryRoutes:
    """For tests and a van without a state directory: the route lasts as long as the process."""

    def __init__(self) -> None:
        self._route: bytes | None = None
        self._mark: RouteMark | None = None

    def load(self) -> bytes | None:
        return self._route

    def mark(self) -> RouteMark | None:
        return self._mark

    def save(self, payload: bytes, *, mark: RouteMark) -> None:
        self._route, self._mark = payload, mark

    def drop(self) -> None:
        self._route = None


class DurableRoutes:
    """The route in force and the newest mark in SQLite: written before the ack, so an acked route
    survives, and a mark survives the route (a file from before signed routes has no mark yet:
    its unsigned route is dropped on start)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise RouteStoreError(f"cannot open the route store {self.path}: {err}") from err

    def load(self) -> bytes | None:
        row = self._read("SELECT body FROM route WHERE one = 1")
        return None if row is None else bytes(row[0])

    def mark(self) -> RouteMark | None:
        row = self._read("SELECT route_id, issued_us FROM route_mark WHERE one = 1")
        if row is None:
            return None
        return RouteMark(
            route_id=UUID(row[0]), issued_at=_EPOCH + timedelta(microseconds=int(row[1]))
        )

    def save(self, payload: bytes, *, mark: RouteMark) -> None:
        issued_us = (mark.issued_at - _EPOCH) // timedelta(microseconds=1)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO route (one, body) VALUES (1, ?) "
                    "ON CONFLICT (one) DO UPDATE SET body = excluded.body",
                    (payload,),
                )
                self._db.execute(
                    "INSERT INTO route_mark (one, route_id, issued_us) VALUES (1, ?, ?) "
                    "ON CONFLICT (one) DO UPDATE SET route_id = excluded.route_id, "
                    "issued_us = excluded.issued_us",
                    (str(mark.route_id), issued_us),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            raise RouteStoreError(f"cannot write the route store {self.path}: {err}") from err

    def drop(self) -> None:
        try:
            self._db.execute("DELETE FROM route")
        except sqlite3.Error as err:
            raise RouteStoreError(f"cannot write the route store {self.path}: {err}") from err

    def _read(self, sql: str) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._db.execute(sql).fetchone()
        except sqlite3.Error as err:
            raise RouteStoreError(f"cannot read the route store {self.path}: {err}") from err
        return row

    def close(self) -> None:
        self._db.close()


class _Refused(Exception):
    def __init__(self, route_id: UUID, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.route_id = route_id
        self.reason = reason
        self.detail = detail


class RouteKeeper:
    """Checks route payloads for ``device_id``, keeps them in ``store`` and answers ``reply``."""

    def __init__(
        self,
        *,
        device_id: str,
        store: RouteStore,
        reply: Callable[[CommandAck], None],
        key: bytes | None,
        on_route: Callable[[Route], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``key`` is the van's *command* key (None: every route is refused as
        ``no_command_key``); the route key is derived from it. ``on_route`` hears each route put
        in force, once per route in this process (the simulated receiver drives it). The kept
        route is judged here; call :meth:`start` once ``reply`` works to send what that found."""
        self.device_id = device_id
        self._store = store
        self._reply = reply
        self._on_route = on_route
        self._clock = clock
        self._route_key: bytes | None = None
        self.key = key
        self.refused: Counter[str] = Counter()
        self.accepted = 0
        self._driven: UUID | None = None
        self._pending: list[CommandAck] = []
        self.current: Route | None = self._judge_kept()

    @property
    def key(self) -> bytes | None:
        """The van's command key. Settable: ``reload_settings`` applies a new one live."""
        return self._command_key

    @key.setter
    def key(self, command_key: bytes | None) -> None:
        self._command_key = command_key
        self._route_key = (
            None if command_key is None else derive_route_key(command_key, self.device_id)
        )

    def start(self) -> None:
        """Send the acks for what was dropped on start (the agent calls it as it starts)."""
        pending, self._pending = self._pending, []
        for ack in pending:
            self._reply(ack)

    def handle(self, payload: bytes) -> CommandAck:
        """Answer one payload from ``fleet/{id}/route``; return the ack. Never raises."""
        try:
            route = self._check(payload)
            if self.current is None or RouteMark.of(self.current) != RouteMark.of(route):
                self._store.save(encode(route), mark=RouteMark.of(route))  # not in force yet
        except _Refused as r:
            return self._refuse(r)
        except RouteStoreError as err:
            rid = route_id_of(payload) or NO_COMMAND_ID
            return self._refuse(_Refused(rid, "store_failed", str(err)))
        self.current = route
        self.accepted += 1
        if self._on_route is not None and self._driven != route.route_id:
            self._driven = route.route_id
            try:
                self._on_route(route)
            except Exception:  # the route is kept: a bug in a listener must not lose its ack
                log.exception("route %s: the route listener failed", route.route_id)
        log.info("route %s in force: %d stops", route.route_id, len(route.stops))
        ack = CommandAck(
            device_id=self.device_id,
            command_id=route.route_id,
            ok=True,
            name="route",
            result={
                "stops": len(route.stops),
                "plan_id": str(route.plan_id),
                "expires_at": route.expires_at.isoformat(),
            },
        )
        self._reply(ack)
        return ack

    def _check(self, payload: bytes) -> Route:
        """The route in ``payload`` if it may be put in force now; raises _Refused."""
        try:
            route = decode(payload, Route)
        except DecodeError as err:
            rid = route_id_of(payload) or NO_COMMAND_ID
            if is_unsigned(payload):
                raise _Refused(
                    rid, "unsigned", "routes must be signed (protocol.routes); upgrade the hub"
                ) from None
            raise _Refused(rid, "malformed", f"{err.reason}: {err.detail}") from None
        if self._route_key is None:
            raise _Refused(route.route_id, "no_command_key", "this van has no command key")
        try:
            return verify_route(
                route,
                key=self._route_key,
                device_id=self.device_id,
                now=self._clock(),
                newest=self._store.mark(),
            )
        except CommandError as err:
            raise _Refused(route.route_id, err.reason, err.detail) from None

    def _judge_kept(self) -> Route | None:
        """The kept route if it still holds; else drop it, log and queue the ack saying why."""
        try:
            payload = self._store.load()
            if payload is None:
                return None
            return self._check(payload)
        except RouteStoreError as err:
            log.error("the kept route cannot be read: %s", err)
            self.refused["store_failed"] += 1
            return None
        except _Refused as r:
            self.refused[r.reason] += 1
            log.warning("kept route %s dropped on start: %s (%s)", r.route_id, r.reason, r.detail)
            try:
                self._store.drop()
            except RouteStoreError as err:
                log.error("the kept route could not be dropped: %s", err)
            self._pending.append(self._ack(r))
            return None

    def _refuse(self, r: _Refused) -> CommandAck:
        self.refused[r.reason] += 1
        log.warning("route %s refused: %s (%s)", r.route_id, r.reason, r.detail)
        ack = self._ack(r)
        self._reply(ack)
        return ack

    def _ack(self, r: _Refused) -> CommandAck:
        return CommandAck(
            device_id=self.device_id,
            command_id=r.route_id,
            ok=False,
            reason=r.reason,
            name="route",
            detail=r.detail[:500],
        )
