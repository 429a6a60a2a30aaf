"""A submitted problem may name only the routing servers the hub's settings list: the hub fetches
travel matrices from ``travel.url`` while it plans, so a URL taken as given would be a server-side
request forgery (the hub calling its own loopback or private network for whoever submits)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import PositionRow, Vehicle
from cloud.settings import Role
from tests.cloud import plan_rigs
from tests.cloud.helpers import auth, hub_settings

DAY = dt.date(2026, 12, 1)
ORIGIN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class _Recorder(BaseHTTPRequestHandler):
    """Stands for whatever the URL points at: it records that the hub called it and, while
    ``up``, answers OSRM's table service (straight-line metres, 10 m/s); otherwise 503."""

    seen: ClassVar[list[str]] = []
    up: ClassVar[list[bool]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        if not type(self).up:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        coords = self.path.split("/")[-1].split("?")[0].split(";")
        points = [tuple(float(x) for x in c.split(",")) for c in coords]
        metres = [[round(math.dist(a, b) * 111_000) for b in points] for a in points]
        body = json.dumps(
            {
                "code": "Ok",
                "distances": metres,
                "durations": [[m / 10 for m in row] for row in metres],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[tuple[str, list[str], list[bool]]]:
    """(URL, paths asked, a list that makes it answer while it holds an item)."""
    handler: type[_Recorder] = type("Handler", (_Recorder,), {"seen": [], "up": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen, handler.up
    finally:
        server.shutdown()
        server.server_close()


def _with_travel(kind: str, url: str) -> dict[str, Any]:
    problem = plan_rigs.problem()
    problem["travel"] = {"kind": kind, "url": url}
    return {**plan_rigs.request(), "problem": problem}


@contextlib.asynccontextmanager
async def _hub(
    session_factory: sessionmaker[Session], database_url: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The hub's API with ``settings``, as ops; its planner thread stopped afterwards."""
    app = create_app(
        settings=hub_settings(database_url=database_url, **settings),
        session_factory=session_factory,
    )
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub", headers=auth(Role.OPS)
        ) as api:
            yield api
    finally:
        app.state.plan_runner.close()


async def _post(
    session_factory: sessionmaker[Session], database_url: str, body: dict[str, Any], **settings: Any
) -> tuple[httpx.Response, dict[str, Any] | None]:
    """POST /plans; for an accepted job, also what it ended as."""
    async with _hub(session_factory, database_url, **settings) as api:
        r = await api.post("/api/v1/plans", json=body)
        if r.status_code != 202:
            assert (await api.get("/api/v1/plans")).json()["count"] == 0
            return r, None
        return r, await plan_rigs.finished(api, r.json()["id"])


@pytest.mark.parametrize("kind", ["osrm", "valhalla"])
async def test_a_routing_server_the_settings_do_not_list_is_refused_and_never_called(
    session_factory: sessionmaker[Session],
    database_url: str,
    target: tuple[str, list[str], list[bool]],
    kind: str,
) -> None:
    url, seen, _ = target
    r, _ = await _post(session_factory, database_url, _with_travel(kind, url))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "travel_servers" in r.json()["detail"] and url in r.json()["detail"]
    # Listing another server, or the same host on another path, does not let this one through.
    r, _ = await _post(
        session_factory,
        database_url,
        _with_travel(kind, url + "/admin"),
        travel_servers=[url + "/osrm"],
    )
    assert r.status_code == 422, r.text
    assert seen == []


async def test_a_listed_routing_server_is_the_one_the_planner_asks(
    session_factory: sessionmaker[Session],
    database_url: str,
    target: tuple[str, list[str], list[bool]],
) -> None:
    url, seen, _ = target
    r, job = await _post(
        session_factory, database_url, _with_travel("osrm", url + "/"), travel_servers=[url]
    )
    assert r.status_code == 202, r.text  # accepted without asking the server in the request
    assert job is not None and job["status"] == "failed", job  # it answers 503 now
    assert "503" in job["error"]
    assert seen and seen[0].startswith("/table/v1/driving/")


async def test_a_routing_server_going_down_leaves_a_dispatched_plan_readable_without_etas(
    session_factory: sessionmaker[Session],
    database_url: str,
    target: tuple[str, list[str], list[bool]],
) -> None:
    url, _, up = target
    up.append(True)
    with session_factory() as session, session.begin():
        session.add_all(Vehicle(id=v, online=True, version="") for v in ("van-1", "van-2"))
    async with _hub(session_factory, database_url, travel_servers=[url]) as api:
        body = {**_with_travel("osrm", url), "day": DAY.isoformat()}
        r = await api.post("/api/v1/plans", json=body)
        assert r.status_code == 202, r.text
        done = await plan_rigs.finished(api, r.json()["id"])
        assert done["status"] == "done", done
        r = await api.post(f"/api/v1/plans/{done['id']}/dispatch")
        assert r.status_code == 202, r.text
        van, first = next((route["van_id"], route["visits"][0]) for route in done["plan"]["routes"])
        with session_factory() as session, session.begin():
            session.add(
                PositionRow(
                    vehicle_id=van,
                    t=ORIGIN + dt.timedelta(seconds=first["arrival"] - 1200),
                    lat=52.37,
                    lon=4.9,
                    message_id=uuid.uuid4(),
                )
            )
        live = (await api.get(f"/api/v1/plans/{done['id']}")).json()
        assert live["etas"], "ETAs while the server answers"
        up.clear()
        down = await api.get(f"/api/v1/plans/{done['id']}")
        assert down.status_code == 200, down.text
        assert down.json()["etas"] == []
        assert down.json()["routes"] == live["routes"]


@pytest.mark.parametrize(
    "server", ["ftp://osrm.internal", "http://", "http://u:p@osrm.internal", "http://h/?a=1"]
)
def test_the_settings_refuse_a_travel_server_that_is_not_a_plain_base_url(server: str) -> None:
    with pytest.raises(ValidationError, match="travel server"):
        hub_settings(database_url="sqlite://", travel_servers=[server])


async def test_a_replan_is_refused_once_its_routing_server_is_no_longer_listed(
    session_factory: sessionmaker[Session],
    database_url: str,
    target: tuple[str, list[str], list[bool]],
) -> None:
    url, seen, up = target
    up.append(True)
    with session_factory() as session, session.begin():
        session.add_all(Vehicle(id=v, online=True, version="") for v in ("van-1", "van-2"))

    async def call(method: str, path: str, body: dict[str, Any], **settings: Any) -> Any:
        async with _hub(session_factory, database_url, **settings) as api:
            r = await api.request(method, path, json=body)
            if path == "/api/v1/plans" and r.status_code == 202:
                return await plan_rigs.finished(api, r.json()["id"])
            return r

    done = await call("POST", "/api/v1/plans", _with_travel("osrm", url), travel_servers=[url])
    assert done["status"] == "done", done
    dispatched = await call(
        "POST", f"/api/v1/plans/{done['id']}/dispatch", {}, travel_servers=[url]
    )
    assert dispatched.status_code == 202, dispatched.text
    asked = len(seen)
    # The hub restarted with the server taken off its list: a re-plan, whose fleet state comes
    # with ETAs from the travel model, must not ask it.
    r = await call("POST", f"/api/v1/plans/{done['id']}/replan", {"time_limit_s": 0.5})
    assert r.status_code == 422 and "travel_servers" in r.json()["detail"], r.text
    assert len(seen) == asked, "refused before anything asked the server"
