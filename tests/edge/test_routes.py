"""The van's route keeper: a route for this van is stored before it is acknowledged, one for
another van is refused with an ack that says so, garbage is counted and dropped, and the stored
route survives reopening the file."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from edge.gnss.sim import VanMotion
from edge.routes import DurableRoutes, MemoryRoutes, RouteKeeper
from protocol.codec import encode
from protocol.messages import CommandAck, Route, RouteStop


def _route(device_id: str = "van-1") -> Route:
    eta = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    return Route(
        device_id=device_id,
        route_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        stops=(RouteStop(stop_id="s1", lat=52.38, lon=4.9, eta=eta),),
    )


def test_a_route_is_kept_then_acknowledged_and_survives_reopening(tmp_path: Path) -> None:
    acks: list[CommandAck] = []
    store = DurableRoutes(tmp_path / "route.db")
    keeper = RouteKeeper(device_id="van-1", store=store, reply=acks.append)
    route = _route()
    keeper.handle(encode(route))
    assert keeper.current == route
    assert [(a.command_id, a.ok, a.name) for a in acks] == [(route.route_id, True, "route")]
    assert acks[0].result["stops"] == 1
    newer = _route()
    keeper.handle(encode(newer))
    store.close()
    reopened = DurableRoutes(tmp_path / "route.db")
    try:
        assert RouteKeeper(device_id="van-1", store=reopened, reply=acks.append).current == newer
    finally:
        reopened.close()


def test_another_vans_route_is_refused_and_garbage_is_counted() -> None:
    acks: list[CommandAck] = []
    keeper = RouteKeeper(device_id="van-1", store=MemoryRoutes(), reply=acks.append)
    other = _route("van-2")
    keeper.handle(encode(other))
    assert keeper.current is None
    assert [(a.command_id, a.ok, a.reason) for a in acks] == [
        (other.route_id, False, "wrong_device")
    ]
    keeper.handle(b"{not json")
    keeper.handle(b'{"v": 1, "type": "route", "device_id": "van-1"}')
    assert keeper.refused == {"wrong_device": 1, "malformed": 2}
    assert len(acks) == 1 and keeper.current is None


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
