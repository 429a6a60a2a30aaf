"""The van's route keeper: a signed route for this van is kept before it is acknowledged; anything
else (another van's, forged, expired, unsigned, older than the route in force, garbage) gets one
ack that says why and is counted; the route and the newest mark survive reopening the file, so a
replayed old route stays refused after a restart; a kept route that expired while the van was off
is dropped on start, with its ack."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.commands import NO_COMMAND_ID
from edge.errors import RouteStoreError
from edge.gnss.sim import VanMotion
from edge.routes import DurableRoutes, MemoryRoutes, RouteKeeper, RouteStore
from protocol.codec import encode
from protocol.commands import derive_command_key, sign_command
from protocol.messages import CommandAck, Route, RouteStop
from protocol.routes import RouteMark, derive_route_key, sign_route
from protocol.topics import DeviceKind

MASTER = b"master secret of the test hub!!!"
COMMAND_KEY = derive_command_key(MASTER, "van-1", kind=DeviceKind.VEHICLE)
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime = NOW) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _route(
    device_id: str = "van-1",
    *,
    issued_at: datetime = NOW,
    ttl: timedelta = timedelta(hours=12),
    key: bytes | None = None,
) -> Route:
    if key is None:
        vkey = derive_command_key(MASTER, device_id, kind=DeviceKind.VEHICLE)
        key = derive_route_key(vkey, device_id)
    return sign_route(
        key=key,
        device_id=device_id,
        route_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        stops=(RouteStop(stop_id="s1", lat=52.38, lon=4.9, eta=issued_at + timedelta(hours=3)),),
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )


def _keeper(
    store: RouteStore,
    acks: list[CommandAck],
    *,
    clock: Clock | None = None,
    key: bytes | None = COMMAND_KEY,
    **kw: Any,
) -> RouteKeeper:
    return RouteKeeper(
        device_id="van-1", store=store, reply=acks.append, key=key, clock=clock or Clock(), **kw
    )


def _answers(acks: list[CommandAck]) -> list[tuple[uuid.UUID, bool, str]]:
    return [(a.command_id, a.ok, a.reason) for a in acks]


def test_a_route_is_kept_then_acknowledged_and_survives_reopening(tmp_path: Path) -> None:
    acks: list[CommandAck] = []
    store = DurableRoutes(tmp_path / "route.db")
    keeper = _keeper(store, acks)
    route = _route()
    keeper.handle(encode(route))
    assert keeper.current == route
    assert [(a.command_id, a.ok, a.name) for a in acks] == [(route.route_id, True, "route")]
    assert acks[0].result["stops"] == 1
    assert acks[0].result["expires_at"] == route.expires_at.isoformat()
    newer = _route(issued_at=NOW + timedelta(minutes=1))
    keeper.handle(encode(newer))
    store.close()
    reopened = DurableRoutes(tmp_path / "route.db")
    try:
        assert _keeper(reopened, acks).current == newer
        assert reopened.mark() == RouteMark.of(newer)
    finally:
        reopened.close()


def test_a_replayed_older_route_is_refused_as_stale_even_after_a_restart(tmp_path: Path) -> None:
    acks: list[CommandAck] = []
    old, new = _route(), _route(issued_at=NOW + timedelta(minutes=30))
    clock = Clock(NOW + timedelta(hours=1))
    store = DurableRoutes(tmp_path / "route.db")
    keeper = _keeper(store, acks, clock=clock)
    keeper.handle(encode(old))
    keeper.handle(encode(new))
    keeper.handle(encode(old))  # someone replays the old retained route
    assert keeper.current == new
    assert _answers(acks)[-1] == (old.route_id, False, "stale")
    store.close()
    acks.clear()
    reopened = DurableRoutes(tmp_path / "route.db")
    try:
        again = _keeper(reopened, acks, clock=clock)
        again.handle(encode(old))
        assert again.current == new and again.refused == {"stale": 1}
        assert _answers(acks) == [(old.route_id, False, "stale")]
    finally:
        reopened.close()


def test_the_route_in_force_delivered_again_is_acknowledged_and_driven_once() -> None:
    acks: list[CommandAck] = []
    driven: list[Route] = []
    keeper = _keeper(MemoryRoutes(), acks, on_route=driven.append)
    route = _route()
    for _ in range(3):  # the broker redelivers the retained copy on every reconnect
        keeper.handle(encode(route))
    assert _answers(acks) == [(route.route_id, True, "")] * 3
    assert driven == [route] and keeper.accepted == 3 and not keeper.refused


def test_each_way_a_route_can_be_wrong_gets_its_own_refusal() -> None:
    acks: list[CommandAck] = []
    keeper = _keeper(MemoryRoutes(), acks, clock=Clock(NOW + timedelta(minutes=1)))
    other = _route("van-2")
    forged = _route(key=b"k" * 32)
    expired = _route(issued_at=NOW - timedelta(hours=2), ttl=timedelta(hours=1))
    future = _route(issued_at=NOW + timedelta(hours=1))
    unsigned = json.loads(encode(_route()))
    for name in ("signature", "issued_at", "expires_at"):
        del unsigned[name]
    command = sign_command(key=COMMAND_KEY, device_id="van-1", name="route", issued_at=NOW)
    for payload in (other, forged, expired, future):
        keeper.handle(encode(payload))
    keeper.handle(json.dumps(unsigned).encode())
    keeper.handle(encode(command))  # a command is no route
    keeper.handle(b"{not json")
    keeper.handle(b'{"v": 1, "type": "route", "device_id": "van-1", "signature": "00"}')
    assert _answers(acks) == [
        (other.route_id, False, "wrong_device"),
        (forged.route_id, False, "bad_signature"),
        (expired.route_id, False, "expired"),
        (future.route_id, False, "not_yet_valid"),
        (uuid.UUID(unsigned["route_id"]), False, "unsigned"),
        (NO_COMMAND_ID, False, "malformed"),
        (NO_COMMAND_ID, False, "malformed"),
        (NO_COMMAND_ID, False, "malformed"),
    ]
    assert all(a.name == "route" and a.detail for a in acks)
    assert "upgrade the hub" in acks[4].detail
    assert keeper.current is None
    assert sum(keeper.refused.values()) == len(acks)


def test_a_van_without_a_command_key_refuses_every_route() -> None:
    acks: list[CommandAck] = []
    keeper = _keeper(MemoryRoutes(), acks, key=None)
    route = _route()
    keeper.handle(encode(route))
    assert _answers(acks) == [(route.route_id, False, "no_command_key")]
    keeper.key = COMMAND_KEY  # reload_settings gives it one
    keeper.handle(encode(route))
    assert keeper.current == route


def test_a_route_expired_while_the_van_was_off_is_dropped_on_start_with_an_ack(
    tmp_path: Path,
) -> None:
    acks: list[CommandAck] = []
    route = _route(ttl=timedelta(hours=10))
    store = DurableRoutes(tmp_path / "route.db")
    _keeper(store, acks).handle(encode(route))
    store.close()
    acks.clear()
    reopened = DurableRoutes(tmp_path / "route.db")
    try:
        keeper = _keeper(reopened, acks, clock=Clock(NOW + timedelta(hours=11)))
        assert keeper.current is None and reopened.load() is None
        assert acks == [], "no ack before the reply path is up"
        keeper.start()
        assert _answers(acks) == [(route.route_id, False, "expired")]
        assert keeper.refused == {"expired": 1}
        # the mark outlives the route: the expired route's replay is still not in force
        assert reopened.mark() == RouteMark.of(route)
        keeper.handle(encode(route))
        assert _answers(acks)[-1] == (route.route_id, False, "expired")
    finally:
        reopened.close()


def test_an_unsigned_route_kept_by_an_older_van_is_dropped_on_start(tmp_path: Path) -> None:
    """A van upgraded in place: its route file holds a route from before routes were signed."""
    legacy: dict[str, Any] = {
        "v": 1,
        "type": "route",
        "device_id": "van-1",
        "route_id": str(uuid.uuid4()),
        "plan_id": str(uuid.uuid4()),
        "stops": [],
    }
    path = tmp_path / "route.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE route (one INTEGER PRIMARY KEY CHECK (one = 1), body BLOB)")
    db.execute("INSERT INTO route VALUES (1, ?)", (json.dumps(legacy).encode(),))
    db.commit()
    db.close()
    acks: list[CommandAck] = []
    store = DurableRoutes(path)
    try:
        keeper = _keeper(store, acks)
        keeper.start()
        assert keeper.current is None and store.load() is None and store.mark() is None
        assert _answers(acks) == [(uuid.UUID(legacy["route_id"]), False, "unsigned")]
    finally:
        store.close()


def test_a_route_dropped_on_start_is_kept_again_once_it_verifies(tmp_path: Path) -> None:
    """A van started without its key drops its route; given the key, the broker's retained copy
    (same route, same mark) is put in force and on disk again."""
    acks: list[CommandAck] = []
    route = _route()
    store = DurableRoutes(tmp_path / "route.db")
    try:
        _keeper(store, acks).handle(encode(route))
        keeper = _keeper(store, acks, key=None)
        assert keeper.current is None and store.load() is None
        keeper.key = COMMAND_KEY
        keeper.handle(encode(route))
        assert keeper.current == route and store.load() == encode(route)
    finally:
        store.close()


class BrokenDisk(MemoryRoutes):
    def save(self, payload: bytes, *, mark: RouteMark) -> None:
        raise RouteStoreError("disk full")


def test_a_route_the_disk_refuses_is_acknowledged_as_not_kept() -> None:
    acks: list[CommandAck] = []
    keeper = _keeper(BrokenDisk(), acks)
    route = _route()
    keeper.handle(encode(route))
    assert _answers(acks) == [(route.route_id, False, "store_failed")]
    assert keeper.current is None and acks[0].detail == "disk full"


def test_the_simulated_van_drives_to_each_stop_of_its_route_in_order() -> None:
    motion = VanMotion(seed=3, habits=False)
    targets = [(400.0, 300.0), (-200.0, 500.0), (100.0, -250.0)]
    motion.follow(targets)
    reached: list[int] = []
    for _ in range(20_000):  # 1 s steps: far more than three short legs need
        motion.step(1.0)
        for k, (tx, ty) in enumerate(targets):
            if (
                abs(motion.x - tx) < 1
                and abs(motion.y - ty) < 1
                and (not reached or reached[-1] != k)
            ):
                reached.append(k)
        if len(reached) == len(targets):
            break
    assert reached == [0, 1, 2]
