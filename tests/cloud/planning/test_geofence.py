"""Arrival by geofence: a van driving past does not arrive; one that stops does, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cloud.planning.geofence import GeofenceDetector, GeofenceEvent, arrivals
from cloud.planning.replan import VanPosition

SHOP = (52.5200, 13.4050)
M_LAT = 1 / 111_195  # degrees of latitude per metre


def north(metres: float) -> tuple[float, float]:
    return (SHOP[0] + metres * M_LAT, SHOP[1])


def fixes(*metres: float) -> list[VanPosition]:
    return [VanPosition("van-1", north(m), t) for t, m in enumerate(metres)]


def test_one_fix_inside_is_jitter_two_are_an_arrival_and_leaving_takes_two_outside() -> None:
    fence = GeofenceDetector(stops={"shop": SHOP}, radius_m=40, hysteresis_m=20, confirm=2)
    events = [
        e for f in fixes(200, 30, 200, 35, 10, 5, 50, 45, 70, 90, 300) for e in fence.update(f)
    ]
    assert events == [
        GeofenceEvent("arrived", "van-1", "shop", 4),
        GeofenceEvent("left", "van-1", "shop", 9),
    ]


def test_a_van_parked_at_the_edge_does_not_flap() -> None:
    fence = GeofenceDetector(stops={"shop": SHOP}, radius_m=40, hysteresis_m=20, confirm=1)
    events = [e.kind for f in fixes(10, 45, 38, 55, 41, 39) for e in fence.update(f)]
    assert events == ["arrived"]


def test_arrivals_follow_an_async_position_stream() -> None:
    fence = GeofenceDetector(stops={"shop": SHOP, "far": north(2000)}, radius_m=40)

    async def stream() -> AsyncIterator[VanPosition]:
        for f in fixes(500, 20, 10, 1000, 1990, 2005):
            yield f

    async def collect() -> list[tuple[str, str]]:
        return [(e.kind, e.stop_id) async for e in arrivals(fence, stream())]

    assert asyncio.run(collect()) == [("arrived", "shop"), ("left", "shop"), ("arrived", "far")]


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        GeofenceDetector(stops={}, radius_m=0)
