"""The Valhalla matrix client against a local HTTP server speaking Valhalla's response format.

Valhalla cannot run here (it needs routing tiles built from a map extract), so a small server on
loopback answers ``POST /sources_to_targets`` as Valhalla does: by default the verbose form, one
row per source of ``{"distance", "time", "from_index", "to_index"}`` cells with distances in the
request's units (km), and with ``"verbose": false`` the concise ``durations``/``distances``
arrays; errors as HTTP 400 with ``error_code``/``error``/``status_code``/``status``. The server
computes its answer from the request it is sent, so the test checks what the client asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from cloud.planning import TravelError
from cloud.planning.errors import ProblemError
from cloud.planning.formats import ProblemSpec, TravelSpec
from cloud.planning.travel import CachedTravel, MatrixCache, OsrmTravel, ValhallaTravel, haversine_m

A, B, C = (52.5200, 13.4050), (52.5300, 13.4200), (52.5100, 13.3900)


class _Valhalla(BaseHTTPRequestHandler):
    mode: ClassVar[str] = "verbose"
    seen: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body})
        src, dst = body["sources"], body["targets"]

        def km(i: int, j: int) -> float:
            a, b = src[i], dst[j]
            return round(haversine_m((a["lat"], a["lon"]), (b["lat"], b["lon"])) * 1.4 / 1000, 3)

        if self.mode == "error":
            self._send(
                400,
                {
                    "error_code": 171,
                    "error": "No suitable edges near location",
                    "status_code": 400,
                    "status": "Bad Request",
                },
            )
        elif self.mode == "concise":
            self._send(
                200,
                {
                    "sources_to_targets": {
                        "distances": [[km(i, j) for j in range(len(dst))] for i in range(len(src))],
                        "durations": [
                            [round(km(i, j) * 120) for j in range(len(dst))]
                            for i in range(len(src))
                        ],
                    },
                    "units": "kilometers",
                },
            )
        else:
            rows = []
            for i in range(len(src)):
                # Cells listed in reverse to_index order: the client must place them by index.
                row = [
                    {
                        "distance": None
                        if (self.mode == "hole" and (i, j) == (1, 2))
                        else km(i, j),
                        "time": None
                        if (self.mode == "hole" and (i, j) == (1, 2))
                        else round(km(i, j) * 120),
                        "to_index": j,
                        "from_index": i,
                    }
                    for j in reversed(range(len(dst)))
                ]
                rows.append(row)
            self._send(
                200,
                {
                    "sources_to_targets": rows,
                    "sources": [src],
                    "targets": [dst],
                    "units": "kilometers",
                },
            )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def valhalla() -> Iterator[tuple[str, type[_Valhalla]]]:
    handler = type("Handler", (_Valhalla,), {"mode": "verbose", "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("mode", ["verbose", "concise"])
def test_the_client_posts_sources_to_targets_and_reads_metres_and_seconds(
    valhalla: tuple[str, type[_Valhalla]], mode: str
) -> None:
    url, handler = valhalla
    handler.mode = mode
    dist, dur = ValhallaTravel(base_url=url + "/", costing="truck").matrices([A, B, C], depart_at=0)
    (req,) = handler.seen
    assert req["path"] == "/sources_to_targets"
    assert req["body"]["costing"] == "truck" and req["body"]["units"] == "kilometers"
    assert (
        req["body"]["sources"]
        == req["body"]["targets"]
        == [
            {"lat": 52.52, "lon": 13.405},
            {"lat": 52.53, "lon": 13.42},
            {"lat": 52.51, "lon": 13.39},
        ]
    )
    expect_ab = haversine_m(A, B) * 1.4
    assert abs(int(dist[0, 1]) - expect_ab) <= 1  # km with 3 decimals -> metres
    assert dist[1, 0] == dist[0, 1] and dist[0, 0] == 0
    assert int(dur[0, 2]) == round(round(haversine_m(A, C) * 1.4 / 1000, 3) * 120)
    assert dist.shape == dur.shape == (3, 3)


@pytest.mark.parametrize(
    ("mode", "words"),
    [("error", "171.*No suitable edges"), ("hole", "no route from location 1 to 2")],
)
def test_valhalla_errors_and_holes_are_travel_errors(
    valhalla: tuple[str, type[_Valhalla]], mode: str, words: str
) -> None:
    url, handler = valhalla
    handler.mode = mode
    with pytest.raises(TravelError, match=words):
        ValhallaTravel(base_url=url).matrices([A, B, C], depart_at=0)


def test_an_unreachable_valhalla_server_is_a_travel_error() -> None:
    with pytest.raises(TravelError, match="Valhalla matrix request"):
        ValhallaTravel(base_url="http://127.0.0.1:9", timeout=2).matrices([A, B], depart_at=0)
    with pytest.raises(ValueError, match="http"):
        ValhallaTravel(base_url="valhalla:8002")


def test_one_cache_serves_valhalla_and_osrm_without_mixing_them(
    valhalla: tuple[str, type[_Valhalla]],
) -> None:
    url, handler = valhalla
    shared = MatrixCache(max_entries=8)
    bikes = CachedTravel(ValhallaTravel(base_url=url, costing="bicycle"), cache=shared)
    vans = CachedTravel(ValhallaTravel(base_url=url, costing="auto"), cache=shared)
    first = bikes.matrices([A, B], depart_at=8 * 3600)
    again = CachedTravel(ValhallaTravel(base_url=url, costing="bicycle"), cache=shared)
    assert again.matrices([A, B], depart_at=8 * 3600 + 60) is first  # same source, same hour
    vans.matrices([A, B], depart_at=8 * 3600)  # another costing: asked, not taken from bikes
    assert [r["body"]["costing"] for r in handler.seen] == ["bicycle", "auto"]
    assert (shared.hits, shared.misses, len(shared)) == (1, 2, 2)
    osrm = OsrmTravel(base_url=url)
    assert osrm.cache_key != ValhallaTravel(base_url=url).cache_key


def test_a_json_problem_can_name_valhalla_and_is_timed_by_it(
    valhalla: tuple[str, type[_Valhalla]],
) -> None:
    """``"travel": {"kind": "valhalla", "url": ...}`` in our JSON format: the problem's matrices
    come from the Valhalla server (one request), so a plan can be made on its times."""
    url, handler = valhalla
    spec = ProblemSpec.model_validate(
        {
            "depots": [{"id": "d", "location": list(A)}],
            "vans": [
                {
                    "id": "v1",
                    "depot": "d",
                    "capacity": {"parcels": 10},
                    "shift_start": 0,
                    "shift_end": 36000,
                }
            ],
            "stops": [{"id": "s1", "location": list(B)}, {"id": "s2", "location": list(C)}],
            "travel": {"kind": "valhalla", "url": url},
        }
    )
    problem = spec.to_problem()
    assert len(handler.seen) == 1 and handler.seen[0]["path"] == "/sources_to_targets"
    assert problem.distance.shape == (3, 3)
    assert abs(int(problem.distance[0, 1]) - haversine_m(A, B) * 1.4) <= 1  # Valhalla's, not ours
    with pytest.raises(ProblemError, match="valhalla needs a url"):
        ProblemSpec.model_validate(
            {**spec.model_dump(), "travel": TravelSpec(kind="valhalla").model_dump()}
        ).to_problem()
