"""A small planning problem in our JSON format and a poller for the ``/plans`` jobs."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import httpx

#: Two vans in Amsterdam, four stops in wide windows, and one that no van can reach in time
#: (its window closes before any shift starts), so the plan drops it with a reason.
PROBLEM: dict[str, Any] = {
    "name": "amsterdam-test",
    "depots": [{"id": "hub", "location": [52.3700, 4.9000], "opens": "06:00", "closes": "22:00"}],
    "vans": [
        {
            "id": vid,
            "depot": "hub",
            "capacity": {"parcels": 3},
            "shift_start": "08:00",
            "shift_end": "20:00",
        }
        for vid in ("van-1", "van-2")
    ],
    "stops": [
        {
            "id": "s1",
            "location": [52.3800, 4.9000],
            "service_time": 120,
            "windows": [{"start": "08:00", "end": "12:00"}],
        },
        {"id": "s2", "location": [52.3850, 4.9100], "service_time": 120},
        {"id": "s3", "location": [52.3600, 4.8800], "service_time": 120},
        {"id": "s4", "location": [52.3550, 4.8700], "service_time": 120},
        {
            "id": "early",
            "location": [52.3700, 4.9300],
            "windows": [{"start": "05:00", "end": "05:30"}],
        },
    ],
}


def problem() -> dict[str, Any]:
    return copy.deepcopy(PROBLEM)


def request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"problem": problem(), "time_limit_s": 0.5, "seed": 1}
    body.update(overrides)
    return body


async def finished(api: httpx.AsyncClient, plan_id: str, **kwargs: Any) -> dict[str, Any]:
    """Poll ``GET /plans/{id}`` until the job is done or failed (30 s at most: a loaded box)."""
    async with asyncio.timeout(30):
        while True:
            r = await api.get(f"/api/v1/plans/{plan_id}", **kwargs)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] in ("done", "failed"):
                return body
            await asyncio.sleep(0.05)
