"""The van's route from the hub: kept on disk, acknowledged, shown to whoever drives.

The hub publishes the route retained on ``fleet/{id}/route``, so a van that reconnects gets it again
from the broker; it is also kept here (one SQLite row, WAL, ``synchronous=FULL``) so a van that
restarts offline still has its stops. Each route is acknowledged with a
:class:`~protocol.messages.CommandAck` whose ``command_id`` is the route id, on the van's usual ack
path; a route for another van, or one that does not parse, is refused and counted, never stored.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from edge.durable import open_durable_db
from edge.errors import RouteStoreError
from protocol.codec import decode, encode
from protocol.errors import DecodeError
from protocol.messages import CommandAck, Route

log = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS route (one INTEGER PRIMARY KEY CHECK (one = 1), body BLOB);"


@runtime_checkable
class FollowsRoutes(Protocol):
    """A GNSS source that can drive a route (the simulator does; a real receiver cannot)."""

    def follow_route(self, stops: list[tuple[float, float]]) -> None: ...


class RouteStore(Protocol):
    def load(self) -> Route | None: ...

    def save(self, route: Route) -> None: ...


class MemoryRoutes:
    """For tests and a van without a state directory: the route lasts as long as the process."""

    def __init__(self) -> None:
        self._route: Route | None = None

    def load(self) -> Route | None:
        return self._route

    def save(self, route: Route) -> None:
        self._route = route


class DurableRoutes:
    """The current route in one SQLite row: written before the ack, so an acked route survives."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._db = open_durable_db(self.path, _SCHEMA)
        except (sqlite3.Error, OSError) as err:
            raise RouteStoreError(f"cannot open the route store {self.path}: {err}") from err

    def load(self) -> Route | None:
        row = self._db.execute("SELECT body FROM route WHERE one = 1").fetchone()
        return None if row is None else decode(bytes(row[0]), Route)

    def save(self, route: Route) -> None:
        try:
            self._db.execute(
                "INSERT INTO route (one, body) VALUES (1, ?) "
                "ON CONFLICT (one) DO UPDATE SET body = excluded.body",
                (encode(route),),
            )
        except sqlite3.Error as err:
            raise RouteStoreError(f"cannot write the route store {self.path}: {err}") from err

    def close(self) -> None:
        self._db.close()


class RouteKeeper:
    """Takes route payloads for ``device_id``, stores them in ``store`` and answers ``reply``."""

    def __init__(
        self,
        *,
        device_id: str,
        store: RouteStore,
        reply: Callable[[CommandAck], None],
        on_route: Callable[[Route], None] | None = None,
    ) -> None:
        """``on_route`` hears each route kept (the simulated receiver drives it)."""
        self.device_id = device_id
        self._store = store
        self._reply = reply
        self._on_route = on_route
        self.refused: Counter[str] = Counter()
        self.current: Route | None = store.load()

    def handle(self, payload: bytes) -> None:
        try:
            route = decode(payload, Route)
        except DecodeError as err:
            # Nothing to answer: without a route id the hub could not match an ack.
            self.refused["malformed"] += 1
            log.warning("route refused: %s", err)
            return
        if route.device_id != self.device_id:
            self.refused["wrong_device"] += 1
            self._reply(
                CommandAck(
                    device_id=self.device_id,
                    command_id=route.route_id,
                    ok=False,
                    reason="wrong_device",
                    name="route",
                    detail=f"route is for {route.device_id}",
                )
            )
            return
        try:
            self._store.save(route)
        except RouteStoreError as err:
            self.refused["store_failed"] += 1
            log.error("route %s not kept: %s", route.route_id, err)
            self._reply(
                CommandAck(
                    device_id=self.device_id,
                    command_id=route.route_id,
                    ok=False,
                    reason="store_failed",
                    name="route",
                    detail=str(err)[:500],
                )
            )
            return
        self.current = route
        if self._on_route is not None:
            self._on_route(route)
        self._reply(
            CommandAck(
                device_id=self.device_id,
                command_id=route.route_id,
                ok=True,
                name="route",
                result={"stops": len(route.stops), "plan_id": str(route.plan_id)},
            )
        )
