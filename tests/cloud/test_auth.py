"""Who may call what: every route against no key, a wrong key, and each role."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dashboard.live import LiveHub
from cloud.models import Locker, Parcel, ParcelGrant, Vehicle
from cloud.settings import Role
from tests.cloud import plan_rigs
from tests.cloud.helpers import KEYS, auth, hub_settings
from tests.cloud.token_rigs import JWT_SECRET, PASSWORDS, expired_token, forged_token, users

PARCEL = "{parcel_id}"  # replaced by a real parcel id at run time
OUT = "{out_id}"  # a locker parcel out for delivery
HOME = "{home_id}"  # a home parcel out for delivery
GONE = "{failing_id}"  # a home parcel out for delivery, for the failed attempt
DEPOSITED = "{deposited_id}"  # a parcel in a locker with an active pickup code
COMMAND = "{command_id}"  # a locker command
VAN_COMMAND = "{van_command_id}"  # a van command
WINDOW = "from=2026-11-23T00:00:00Z&to=2026-11-24T00:00:00Z"
HOOK = "{webhook_id}"
TOKEN = "{token}"
PLAN = "{plan_id}"  # a done plan
EVERYONE: frozenset[str] = frozenset({"no key", "wrong key", *(r.value for r in Role)})
"""Role-free routes: the customer's tracking link, whose unguessable token is the credential."""
# Routes outside the matrix that anyone may call: where credentials come from, and liveness.
PUBLIC = {("GET", "/api/v1/healthz"), ("POST", "/api/v1/auth/token")}

ALL = {Role.VIEWER, Role.INTEGRATION, Role.OPS}
# route -> roles allowed (or EVERYONE); anyone else with a valid key gets 403, without one 401.
MATRIX: dict[tuple[str, str], set[Role] | frozenset[str]] = {
    ("GET", "/api/v1/vehicles"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/vehicles/van-1/positions"): {Role.VIEWER, Role.OPS},
    ("POST", "/api/v1/vehicles/van-1/commands"): {Role.OPS},
    ("GET", "/api/v1/vehicles/van-1/commands"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/vehicles/van-1/commands/{VAN_COMMAND}"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/vehicles/van-1/trips?{WINDOW}"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/vehicles/van-1/stops?{WINDOW}"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/vehicles/van-1/distance?from=2026-11-23"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/vehicles/van-1/track?{WINDOW}"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers/locker-1"): {Role.VIEWER, Role.OPS},
    ("POST", "/api/v1/lockers/locker-1/compartments/2/open"): {Role.OPS},
    ("GET", "/api/v1/lockers/locker-1/commands"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/lockers/locker-1/commands/{COMMAND}"): {Role.VIEWER, Role.OPS},
    ("POST", "/api/v1/parcels"): {Role.INTEGRATION, Role.OPS},
    ("GET", "/api/v1/parcels"): ALL,
    ("GET", f"/api/v1/parcels/{PARCEL}"): ALL,
    ("GET", f"/api/v1/parcels/{PARCEL}/events"): ALL,
    ("GET", f"/api/v1/parcels/{PARCEL}/proofs"): ALL,
    ("GET", f"/api/v1/parcels/{PARCEL}/codes"): ALL,
    ("POST", f"/api/v1/parcels/{PARCEL}/tracking-links"): {Role.INTEGRATION, Role.OPS},
    ("POST", f"/api/v1/parcels/{PARCEL}/transitions"): {Role.OPS},
    ("POST", f"/api/v1/parcels/{GONE}/attempts"): {Role.OPS},
    ("POST", f"/api/v1/parcels/{HOME}/delivery"): {Role.OPS},
    ("POST", f"/api/v1/parcels/{OUT}/codes"): {Role.OPS},
    ("POST", f"/api/v1/parcels/{OUT}/codes/revoke"): {Role.OPS},
    ("POST", f"/api/v1/parcels/{DEPOSITED}/codes/expire"): {Role.OPS},
    ("POST", "/api/v1/webhooks"): {Role.OPS},
    ("GET", "/api/v1/webhooks"): {Role.OPS},
    ("GET", f"/api/v1/webhooks/{HOOK}"): {Role.OPS},
    ("GET", f"/api/v1/webhooks/{HOOK}/deliveries"): {Role.OPS},
    ("DELETE", f"/api/v1/webhooks/{HOOK}"): {Role.OPS},
    ("POST", f"/api/v1/webhooks/{HOOK}/secret"): {Role.OPS},
    ("POST", "/api/v1/auth/revoke"): ALL,
    ("GET", f"/track/{TOKEN}"): EVERYONE,
    ("GET", f"/track/{TOKEN}/json"): EVERYONE,
    ("GET", "/api/v1/me"): ALL,
    ("GET", "/api/v1/events"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/lockers/locker-1/compartments"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/stream"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/kpis?from=2026-11-23"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/devices"): {Role.OPS},
    ("POST", "/api/v1/plans"): {Role.OPS},
    ("GET", "/api/v1/plans"): {Role.VIEWER, Role.OPS},
    ("GET", f"/api/v1/plans/{PLAN}"): {Role.VIEWER, Role.OPS},
    ("POST", f"/api/v1/plans/{PLAN}/dispatch"): {Role.OPS},
    ("POST", f"/api/v1/plans/{PLAN}/replan"): {Role.OPS},
    ("PUT", "/api/v1/depots/north"): {Role.OPS},
    ("GET", "/api/v1/depots"): {Role.VIEWER, Role.OPS},
    ("GET", "/api/v1/depots/north"): {Role.VIEWER, Role.OPS},
    ("PUT", "/api/v1/depots/north/vans/van-1"): {Role.OPS},
    ("PUT", "/api/v1/depots/north/lockers/locker-1"): {Role.OPS},
    ("POST", "/api/v1/plans/from-hub"): {Role.OPS},
    ("DELETE", "/api/v1/depots/north/vans/van-1"): {Role.OPS},
}
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/api/v1/parcels"): {"locker_id": "locker-1"},
    ("POST", "/api/v1/vehicles/van-1/commands"): {"name": "send_position"},
    ("POST", f"/api/v1/parcels/{PARCEL}/transitions"): {"to": "at_depot"},
    ("POST", f"/api/v1/parcels/{GONE}/attempts"): {"reason": "closed"},
    ("POST", f"/api/v1/parcels/{HOME}/delivery"): {"lat": 52.0, "lon": 4.0},
    ("POST", f"/api/v1/parcels/{OUT}/codes"): {"kind": "courier"},
    ("POST", "/api/v1/webhooks"): {"url": "http://127.0.0.1:9/hook"},
    # Not a credential: 200 with revoked=false (RFC 7009), so the walk keeps its keys.
    ("POST", "/api/v1/auth/revoke"): {"token": "not-a-credential-of-this-hub"},
    ("POST", "/api/v1/plans"): plan_rigs.request(time_limit_s=0.2),
    ("POST", f"/api/v1/plans/{PLAN}/replan"): {"time_limit_s": 0.2},
    ("PUT", "/api/v1/depots/north"): {"lat": 52.37, "lon": 4.89, "closes_s": 172_800},
    ("PUT", "/api/v1/depots/north/vans/van-1"): {
        "capacity_parcels": 20,
        "shift_start_s": 0,
        "shift_end_s": 172_800,
    },
    ("PUT", "/api/v1/depots/north/lockers/locker-1"): {"lat": 52.372, "lon": 4.9},
    ("POST", "/api/v1/plans/from-hub"): {"depot": "north", "time_limit_s": 0.2},
}
SUCCESS: dict[str, int] = {"GET": 200, "POST": 201, "DELETE": 200, "PUT": 200}
ACCEPTED = {
    ("POST", "/api/v1/vehicles/van-1/commands"): 202,
    ("POST", "/api/v1/lockers/locker-1/compartments/2/open"): 202,
    ("POST", f"/api/v1/parcels/{PARCEL}/transitions"): 200,
    ("POST", f"/api/v1/parcels/{GONE}/attempts"): 200,
    ("POST", f"/api/v1/parcels/{OUT}/codes/revoke"): 200,
    ("POST", f"/api/v1/parcels/{DEPOSITED}/codes/expire"): 200,
    ("POST", "/api/v1/plans"): 202,
    ("POST", f"/api/v1/plans/{PLAN}/dispatch"): 202,
    ("POST", f"/api/v1/plans/{PLAN}/replan"): 202,
    ("POST", "/api/v1/plans/from-hub"): 202,
    ("DELETE", "/api/v1/depots/north/vans/van-1"): 204,
    ("POST", f"/api/v1/webhooks/{HOOK}/secret"): 200,
    ("POST", "/api/v1/auth/revoke"): 200,
}


@pytest.fixture
def api(session_factory: sessionmaker[Session], database_url: str) -> httpx.AsyncClient:
    with session_factory() as session, session.begin():
        session.add(Vehicle(id="van-1", online=True, version=""))
        session.add(Locker(id="locker-1", compartments=10, online=True, version=""))
    live = LiveHub()
    live.close()  # a stream opened here ends at once, so the matrix can read its whole answer
    app = create_app(
        settings=hub_settings(database_url=database_url, users=users(), jwt_secret=JWT_SECRET),
        session_factory=session_factory,
        live=live,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


async def _ids(api: httpx.AsyncClient, session_factory: sessionmaker[Session]) -> dict[str, str]:
    """Real resources for every placeholder, made as ops."""
    ops = auth(Role.OPS)
    home = {"address": "Dam 1", "lat": 52.37, "lon": 4.89}

    async def post(path: str, body: dict[str, object], status: int = 201) -> dict[str, str]:
        r = await api.post(path, json=body, headers=ops)
        assert r.status_code == status, (path, r.text)
        return dict(r.json())

    async def out_for_delivery(body: dict[str, object]) -> str:
        pid = (await post("/api/v1/parcels", body))["id"]
        for to in ("at_depot", "out_for_delivery"):
            await post(f"/api/v1/parcels/{pid}/transitions", {"to": to}, 200)
        return pid

    made = await post("/api/v1/parcels", {"locker_id": "locker-1"})
    deposited = await out_for_delivery({"locker_id": "locker-1"})
    await post(f"/api/v1/parcels/{deposited}/codes", {"kind": "courier"})
    with session_factory() as session, session.begin():  # as the locker's deposit would leave it
        parcel = session.get(Parcel, uuid.UUID(deposited))
        assert parcel is not None
        parcel.status = "deposited"
        grant = session.scalars(
            select(ParcelGrant).where(ParcelGrant.parcel_id == uuid.UUID(deposited))
        ).one()
        grant.kind = "pickup"
    command = await post("/api/v1/lockers/locker-1/compartments/1/open", {}, 202)
    hook = await post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"})
    van_command = await post("/api/v1/vehicles/van-1/commands", {"name": "read_dtcs"}, 202)
    planned = await post("/api/v1/plans", plan_rigs.request(time_limit_s=0.2), 202)
    assert (await plan_rigs.finished(api, planned["id"], headers=ops))["status"] == "done"
    return {
        PARCEL: made["id"],
        OUT: await out_for_delivery({"locker_id": "locker-1"}),
        HOME: await out_for_delivery(home),
        GONE: await out_for_delivery(home),
        DEPOSITED: deposited,
        COMMAND: command["command_id"],
        VAN_COMMAND: van_command["command_id"],
        HOOK: hook["id"],
        TOKEN: made["tracking_token"],
        PLAN: planned["id"],
    }


def test_every_route_answers_each_role_as_the_matrix_says(
    api: httpx.AsyncClient, session_factory: sessionmaker[Session]
) -> None:
    callers: dict[str, dict[str, str]] = {
        "no key": {},
        "wrong key": {"Authorization": "Bearer not-a-key"},
        "bad token": {"Authorization": f"Bearer {forged_token(Role.OPS)}"},
        "expired token": {"Authorization": f"Bearer {expired_token(Role.OPS)}"},
        **{role.value: auth(role) for role in Role},
    }

    async def story() -> dict[tuple[str, str, str], httpx.Response]:
        async with api:
            tokens: dict[str, dict[str, str]] = {}
            for role in Role:
                signed_in = await api.post(
                    "/api/v1/auth/token",
                    data={"username": f"{role.value}-user", "password": PASSWORDS[role]},
                )
                token = signed_in.json()["access_token"]
                tokens[f"token:{role.value}"] = {"Authorization": f"Bearer {token}"}
            results = {}
            # Keys, then tokens, each on resources of their own: a transition or a deletion that
            # succeeded for an ops key would otherwise be a 409 or 404 for the ops token.
            for walk in (callers, tokens):
                ids = await _ids(api, session_factory)
                for (method, path), _allowed in MATRIX.items():
                    url = path
                    for placeholder, value in ids.items():
                        url = url.replace(placeholder, value)
                    for who, headers in walk.items():
                        body = BODIES.get((method, path), {} if method == "POST" else None)
                        results[(method, path, who)] = await api.request(
                            method, url, json=body, headers=headers
                        )
            return results

    results = asyncio.run(story())
    assert {(m, p) for m, p, _ in results} == set(MATRIX)
    for (method, path, who), r in results.items():
        allowed = MATRIX[(method, path)]
        ok = ACCEPTED.get((method, path), SUCCESS[method])
        if allowed is EVERYONE:
            expected: tuple[int, ...] = (200,)
            assert "www-authenticate" not in r.headers
        elif who in ("no key", "wrong key"):
            expected = (401,)
            assert r.headers.get("www-authenticate") == "Bearer", (
                method,
                path,
                who,
                r.status_code,
                r.text,
            )
        elif who in ("bad token", "expired token"):
            expected = (401,)
            assert r.headers.get("www-authenticate") == 'Bearer error="invalid_token"', r.text
            reason = {"bad token": "signature does not match", "expired token": "has expired"}
            assert reason[who] in r.json()["detail"], r.text
        elif Role(who.removeprefix("token:")) in allowed:
            expected = (ok,)
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
    documented = {
        (method.upper(), path)
        for path, ops in paths.items()
        for method in ops
        if (method.upper(), path) not in PUBLIC
    }
    placeholders = {
        PARCEL: "{parcel_id}",
        OUT: "{parcel_id}",
        HOME: "{parcel_id}",
        GONE: "{parcel_id}",
        DEPOSITED: "{parcel_id}",
        COMMAND: "{command_id}",
        VAN_COMMAND: "{command_id}",
        HOOK: "{webhook_id}",
        TOKEN: "{token}",
        "van-1": "{vehicle_id}",
        "locker-1": "{locker_id}",
        "/compartments/2/": "/compartments/{n}/",
        "/depots/north": "/depots/{depot_id}",
    }

    def templated(path: str) -> str:
        path = path.split("?")[0]
        for concrete, template in placeholders.items():
            path = path.replace(concrete, template)
        return path

    # every documented route is in the matrix, and every matrix route is documented
    assert documented == {(m, templated(p)) for m, p in MATRIX}
    for path in ("/track/{token}", "/track/{token}/json"):
        assert "security" not in paths[path]["get"]
    assert "security" not in paths["/api/v1/healthz"]["get"]
    assert "security" not in paths["/api/v1/auth/token"]["post"]
    assert paths["/api/v1/parcels"]["post"]["security"]
    assert (
        "application/problem+json"
        in paths["/api/v1/parcels/{parcel_id}/transitions"]["post"]["responses"]["409"]["content"]
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
