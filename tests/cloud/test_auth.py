"""Who may call what: every route against no key, a wrong key, and each role."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dashboard.live import LiveHub
from cloud.models import Locker, Vehicle
from cloud.settings import Role
from tests.cloud.helpers import KEYS, auth, hub_settings

PARCEL = "{parcel_id}"  # replaced by a real parcel id at run time

# route -> roles allowed; anyone else with a valid key gets 403, without one 401.
MATRIX: dict[tuple[str, str], set[Role]] = {
    ("GET", "/api/v1/vehicles"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/vehicles/van-1/positions"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers/locker-1"): {Role.VIEWER, Role.OPS},
    ("POST", "/api/v1/parcels"): {Role.INTEGRATION, Role.OPS},
    ("GET", f"/api/v1/parcels/{PARCEL}"): {Role.VIEWER, Role.INTEGRATION, Role.OPS},
    ("GET", "/api/v1/parcels"): {Role.VIEWER, Role.INTEGRATION, Role.OPS},
    ("GET", "/api/v1/me"): {Role.VIEWER, Role.INTEGRATION, Role.OPS},
    ("GET", "/api/v1/events"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers/locker-1/compartments"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/stream"): {Role.VIEWER, Role.OPS},
}


@pytest.fixture
def api(session_factory: sessionmaker[Session], database_url: str) -> httpx.AsyncClient:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
        session.add(Locker(id="locker-1", compartments=10, online=True, version=""))
    live = LiveHub()
    live.close()  # a stream opened here ends at once, so the matrix can read its whole answer
    app = create_app(
        settings=hub_settings(database_url=database_url),
        session_factory=session_factory,
        live=live,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def test_every_route_answers_each_role_as_the_matrix_says(api: httpx.AsyncClient) -> None:
    callers: dict[str, dict[str, str]] = {
        "no key": {},
        "wrong key": {"Authorization": "Bearer not-a-key"},
        **{role.value: auth(role) for role in Role},
    }

    async def story() -> dict[tuple[str, str, str], httpx.Response]:
        async with api:
            made = await api.post(
                "/api/v1/parcels", json={"locker_id": "locker-1"}, headers=auth(Role.OPS)
            )
            parcel_id = made.json()["id"]
            results = {}
            for (method, path), _allowed in MATRIX.items():
                url = path.replace(PARCEL, parcel_id)
                for who, headers in callers.items():
                    body = {"locker_id": "locker-1"} if method == "POST" else None
                    results[(method, path, who)] = await api.request(
                        method, url, json=body, headers=headers
                    )
            return results

    results = asyncio.run(story())
    for (method, path, who), r in results.items():
        allowed = MATRIX[(method, path)]
        if who in ("no key", "wrong key"):
            expected: tuple[int, ...] = (401,)
            assert r.headers.get("www-authenticate") == "Bearer", (
                method,
                path,
                who,
                r.status_code,
                r.text,
            )
        elif Role(who) in allowed:
            expected = (201,) if method == "POST" else (200,)
        else:
            expected = (403,)
        assert r.status_code in expected, (method, path, who, r.status_code, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert set(problem) >= {"type", "title", "status", "detail"}
            assert problem["status"] == r.status_code


def test_the_key_may_come_in_x_api_key_and_health_needs_none(api: httpx.AsyncClient) -> None:
    async def story() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with api:
            return (
                await api.get("/api/v1/lockers", headers={"X-API-Key": KEYS[Role.VIEWER]}),
                await api.get("/api/v1/healthz"),
                await api.get(f"/api/v1/parcels/{uuid.uuid4()}", headers=auth(Role.VIEWER)),
            )

    lockers, health, missing = asyncio.run(story())
    assert lockers.status_code == 200
    assert lockers.json()["data"][0] == {
        "id": "locker-1",
        "online": True,
        "last_seen": None,
        "version": "",
        "compartments": 10,
        "occupied": 0,
    }
    assert health.json() == {"status": "ok"}
    assert missing.status_code == 404


def test_the_openapi_document_lists_every_route_with_its_security(api: httpx.AsyncClient) -> None:
    async def story() -> dict[str, object]:
        async with api:
            docs = await api.get("/docs")
            assert docs.status_code == 200
            return (await api.get("/openapi.json")).json()  # type: ignore[no-any-return]

    spec = asyncio.run(story())
    paths = spec["paths"]
    assert isinstance(paths, dict)
    assert set(paths) == {
        "/api/v1/healthz",
        "/api/v1/vehicles",
        "/api/v1/vehicles/{vehicle_id}/positions",
        "/api/v1/lockers",
        "/api/v1/lockers/{locker_id}",
        "/api/v1/parcels",
        "/api/v1/parcels/{parcel_id}",
        "/api/v1/me",
        "/api/v1/events",
        "/api/v1/lockers/{locker_id}/compartments",
        "/api/v1/stream",
    }
    assert "security" not in paths["/api/v1/healthz"]["get"]
    assert paths["/api/v1/parcels"]["post"]["security"]
    assert (
        "application/problem+json"
        in paths["/api/v1/parcels"]["post"]["responses"]["409"]["content"]
    )


def test_reading_what_does_not_exist_or_asking_badly_gives_problems(
    api: httpx.AsyncClient,
) -> None:
    viewer = auth(Role.VIEWER)
    positions = "/api/v1/vehicles/van-1/positions"

    async def story() -> list[httpx.Response]:
        async with api:
            return [
                await api.get("/api/v1/vehicles/van-404/positions", headers=viewer),
                await api.get("/api/v1/lockers/locker-404", headers=viewer),
                await api.get(positions, params={"limit": 10_001}, headers=viewer),
                await api.get(positions, params={"since": "2026-01-01T00:00:00"}, headers=viewer),
                await api.get(
                    positions,
                    params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
                    headers=viewer,
                ),
            ]

    no_vehicle, no_locker, too_many, naive, backwards = asyncio.run(story())
    assert (no_vehicle.status_code, no_vehicle.json()["detail"]) == (
        404,
        "vehicle van-404 not found",
    )
    assert (no_locker.status_code, no_locker.json()["detail"]) == (
        404,
        "locker locker-404 not found",
    )
    for r in (too_many, naive, backwards):
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["loc"][0] == "query"
    assert too_many.json()["errors"][0]["loc"] == ["query", "limit"]
    assert backwards.json()["errors"][0]["loc"] == ["query", "since"]
