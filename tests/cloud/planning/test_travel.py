"""Travel models: haversine with a speed profile, OSRM's table API over real HTTP, the cache.

OSRM itself cannot run here (it needs a map extract), so a small local HTTP server answers in
OSRM's ``/table`` response format; the client is exercised over a real socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from cloud.planning import TravelError
from cloud.planning.travel import (
    CachedTravel,
    HaversineTravel,
    OsrmTravel,
    SpeedProfile,
    haversine_m,
)

BERLIN, PARIS = (52.5200, 13.4050), (48.8566, 2.3522)


def test_haversine_distance_berlin_paris() -> None:
    assert haversine_m(BERLIN, PARIS) == pytest.approx(877_500, rel=0.005)


def test_the_matrix_applies_circuity_and_the_speed_of_the_departure_hour() -> None:
    flat = SpeedProfile(kmh=(36.0,) * 8 + (18.0,) * 16)
    travel = HaversineTravel(circuity=1.5, profile=flat)
    d, t = travel.matrices([BERLIN, (52.53, 13.405)], depart_at=7 * 3600)
    crow = haversine_m(BERLIN, (52.53, 13.405))
    assert d[0, 1] == round(crow * 1.5)
    assert t[0, 1] == round(crow * 1.5 / 10.0)  # 36 km/h = 10 m/s at 07:00
    _, t_rush = travel.matrices([BERLIN, (52.53, 13.405)], depart_at=9 * 3600)
    assert t_rush[0, 1] == round(crow * 1.5 / 5.0)


def test_a_leg_crossing_into_rush_hour_slows_down_on_the_way() -> None:
    profile = SpeedProfile(kmh=(36.0,) * 8 + (18.0,) * 16)
    # Leave at 07:59:00 for 1200 m: 600 m in the last minute at 10 m/s, then 600 m at 5 m/s.
    assert profile.leg_time(1200, 8 * 3600 - 60) == 60 + 120


class _Osrm(BaseHTTPRequestHandler):
    answer: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = json.dumps(type(self).answer).encode()
        self.send_response(200 if type(self).answer.get("code") == "Ok" else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def osrm() -> Iterator[tuple[str, type[_Osrm]]]:
    handler = type("Handler", (_Osrm,), {"answer": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_the_osrm_client_asks_the_table_service_and_reads_its_matrices(osrm) -> None:  # type: ignore[no-untyped-def]
    url, handler = osrm
    handler.answer = {
        "code": "Ok",
        "durations": [[0, 61.4], [58.9, 0]],
        "distances": [[0, 812.2], [790.0, 0]],
    }
    d, t = OsrmTravel(base_url=url).matrices([BERLIN, PARIS], depart_at=0)
    assert d.tolist() == [[0, 812], [790, 0]] and t.tolist() == [[0, 61], [59, 0]]
    (path,) = handler.seen
    # OSRM wants lon,lat pairs.
    assert path == (
        "/table/v1/driving/13.405000,52.520000;2.352200,48.856600?annotations=distance,duration"
    )


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ({"code": "InvalidQuery", "message": "Query string malformed"}, "InvalidQuery"),
        (
            {"code": "Ok", "durations": [[0, None], [1, 0]], "distances": [[0, 1], [1, 0]]},
            "no route from location 0 to 1",
        ),
        ({"code": "Ok", "durations": [[0]]}, "no 2x2 'distances'"),
    ],
)
def test_osrm_errors_are_translated_with_what_went_wrong(osrm, answer, words) -> None:  # type: ignore[no-untyped-def]
    url, handler = osrm
    handler.answer = answer
    with pytest.raises(TravelError, match=words):
        OsrmTravel(base_url=url).matrices([BERLIN, PARIS], depart_at=0)


def test_an_unreachable_osrm_server_is_a_travel_error() -> None:
    with pytest.raises(TravelError, match="failed"):
        OsrmTravel(base_url="http://127.0.0.1:9", timeout=2).matrices([BERLIN, PARIS], depart_at=0)


def test_the_cache_asks_once_per_set_of_locations_and_hour(osrm) -> None:  # type: ignore[no-untyped-def]
    url, handler = osrm
    handler.answer = {"code": "Ok", "durations": [[0, 1], [1, 0]], "distances": [[0, 2], [2, 0]]}
    travel = CachedTravel(OsrmTravel(base_url=url), max_entries=2)
    for _ in range(3):
        travel.matrices([BERLIN, PARIS], depart_at=8 * 3600 + 5)
    travel.matrices([BERLIN, PARIS], depart_at=9 * 3600)
    assert (travel.hits, travel.misses, len(handler.seen)) == (2, 2, 2)
