"""Travel distances and times between locations, behind one small interface.

- :class:`HaversineTravel` (the default): great-circle distance x a circuity factor (roads are not
  straight; ~1.3 in European cities), time from a time-of-day :class:`SpeedProfile`. No network, no
  map data: good enough to plan, and the ETAs are refreshed from live positions anyway.
- :class:`OsrmTravel`: an OSRM server's ``/table`` service, pluggable by URL, for road distances.
- :class:`ValhallaTravel`: a Valhalla server's ``/sources_to_targets`` matrix, pluggable by URL.
- :class:`EuclideanTravel`: plane coordinates, for the Solomon/Gehring-Homberger benchmarks.
- :class:`CachedTravel`: wraps any of them; the same locations are not asked for twice, and
  several wrappers may share one :class:`MatrixCache`.

Time of day: a model with a ``speed_profile`` (the haversine one) makes the problem
time-dependent (``Problem.speed``): every ETA of a plan is computed leg by leg at the leg's real
departure time, and ``solve.plan`` re-times the solvers' static matrix from the plan's departure
times (see there). OSRM and Valhalla answer for one departure; their tables are used as they are.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from cloud.planning.errors import TravelError
from cloud.planning.model import Matrix

Locations = Sequence[tuple[float, float]]
EARTH_RADIUS_M = 6_371_008.8


class TravelModel(Protocol):
    """Gives the distance (m) and duration (s) matrices between locations."""

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]: ...


@dataclass(frozen=True, slots=True)
class SpeedProfile:
    """Average road speed (km/h) per hour of the day, 24 values: slow at rush hours."""

    kmh: tuple[float, ...] = (
        (40.0,) * 6 + (30.0, 22.0, 20.0, 26.0) + (28.0,) * 6 + (22.0, 20.0, 24.0) + (35.0,) * 5
    )

    def __post_init__(self) -> None:
        if len(self.kmh) != 24 or any(v <= 0 for v in self.kmh):
            raise ValueError("a speed profile has 24 positive hourly speeds")

    def speed_ms(self, t: int) -> float:
        return self.kmh[(t // 3600) % 24] / 3.6

    def leg_time(self, distance_m: float, depart_at: int) -> int:
        """Seconds to drive ``distance_m`` leaving at ``depart_at``, crossing hour boundaries."""
        t, left = float(depart_at), float(distance_m)
        while left > 1e-9:
            speed = self.speed_ms(int(t))
            to_next_hour = 3600 - (t % 3600)
            reach = speed * to_next_hour
            if reach >= left:
                t += left / speed
                break
            left -= reach
            t += to_next_hour
        return round(t - depart_at)

    def leg_times(self, distances_m: npt.NDArray[np.int64], depart_at: int) -> Matrix:
        """:meth:`leg_time` for a whole row of legs that all leave at ``depart_at``.

        All legs cross the same hours in the same order, so one walk over the hours does them all.
        """
        left = np.asarray(distances_m, dtype=float).copy()
        out = np.zeros_like(left)
        done = left <= 1e-9
        t = float(depart_at)
        while not done.all():
            speed = self.speed_ms(int(t))
            span = 3600 - (t % 3600)
            reach = speed * span
            ends = ~done & (left <= reach)
            out[ends] = (t - depart_at) + left[ends] / speed
            left[~done] -= reach
            done |= ends
            t += span
        result: Matrix = np.rint(out).astype(np.int64)
        return result


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class HaversineTravel:
    """Great-circle x ``circuity`` for distance; the speed profile for time. Locations are (lat, lon)."""

    def __init__(self, *, circuity: float = 1.3, profile: SpeedProfile | None = None) -> None:
        if circuity < 1.0:
            raise ValueError("circuity is a factor >= 1 (roads are never shorter than a line)")
        self.circuity = circuity
        self.profile = profile or SpeedProfile()

    @property
    def speed_profile(self) -> SpeedProfile:
        """What makes the problems built with this model time-dependent (``Problem.speed``)."""
        return self.profile

    @property
    def cache_key(self) -> tuple[object, ...]:
        return ("haversine", self.circuity, self.profile.kmh)

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        pts = np.radians(np.asarray(locations, dtype=float).reshape(-1, 2))
        lat, lon = pts[:, 0:1], pts[:, 1:2]
        h = (
            np.sin((lat.T - lat) / 2) ** 2
            + np.cos(lat) * np.cos(lat.T) * np.sin((lon.T - lon) / 2) ** 2
        )
        metres = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))) * self.circuity
        seconds = metres / self.profile.speed_ms(depart_at)
        return np.rint(metres).astype(np.int64), np.rint(seconds).astype(np.int64)

    def leg_time(self, distance_m: float, depart_at: int) -> int:
        return self.profile.leg_time(distance_m, depart_at)


class EuclideanTravel:
    """Plane coordinates; distance = time = Euclidean x ``scale``, truncated (DIMACS: scale 10)."""

    def __init__(self, *, scale: int = 10) -> None:
        self.scale = scale

    @property
    def cache_key(self) -> tuple[object, ...]:
        return ("euclidean", self.scale)

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        pts = np.asarray(locations, dtype=float).reshape(-1, 2)
        diff = pts[:, None, :] - pts[None, :, :]
        # Truncation after scaling, exactly as the DIMACS rules (and PyVRP's "dimacs" rounding) do.
        d = np.floor(np.sqrt((diff**2).sum(axis=2)) * self.scale + 1e-9).astype(np.int64)
        return d, d.copy()


HttpGet = Callable[[str, float], bytes]


def urllib_get(url: str, timeout: float) -> bytes:
    """The default HTTP backend of :class:`OsrmTravel` (standard library only).

    OSRM answers errors as HTTP 400 with a JSON body (``code``, ``message``); that body is what
    says what was wrong, so it is returned rather than the bare status.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - URL from settings
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as err:
        error_body: bytes = err.read()
        if error_body.startswith(b"{"):
            return error_body
        raise


class OsrmTravel:
    """An OSRM ``/table/v1/{profile}/{lon,lat;...}?annotations=distance,duration`` client.

    OSRM cannot run on the build machine (no map extract), so the tests run this client against a
    small local HTTP server that answers in OSRM's table response format (``code``, ``durations``,
    ``distances``); a real server is a URL away. Unroutable pairs (``null``) raise
    :class:`TravelError` naming the pair: planning around a hole in the map silently would strand a van.
    """

    def __init__(
        self,
        *,
        base_url: str,
        profile: str = "driving",
        timeout: float = 30.0,
        http_get: HttpGet = urllib_get,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"OSRM base_url must be http(s), got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self.timeout = timeout
        self._get = http_get

    @property
    def cache_key(self) -> tuple[str, ...]:
        return ("osrm", self.base_url, self.profile)

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        coords = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in locations)
        url = f"{self.base_url}/table/v1/{self.profile}/{coords}?annotations=distance,duration"
        try:
            body = json.loads(self._get(url, self.timeout))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise TravelError(f"OSRM table request to {self.base_url} failed: {err}") from err
        if not isinstance(body, dict) or body.get("code") != "Ok":
            code = body.get("code") if isinstance(body, dict) else body
            msg = body.get("message", "") if isinstance(body, dict) else ""
            raise TravelError(f"OSRM answered {code!r}: {msg}")
        n = len(locations)
        out = []
        for key in ("distances", "durations"):
            rows = body.get(key)
            if not isinstance(rows, list) or len(rows) != n or any(len(r) != n for r in rows):
                raise TravelError(f"OSRM table has no {n}x{n} {key!r}")
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    if v is None:
                        raise TravelError(f"OSRM: no route from location {i} to {j}")
            out.append(np.rint(np.asarray(rows, dtype=float)).astype(np.int64))
        return out[0], out[1]


HttpPost = Callable[[str, bytes, float], bytes]


def urllib_post(url: str, body: bytes, timeout: float) -> bytes:
    """The default HTTP backend of :class:`ValhallaTravel`: a JSON POST (standard library only).

    Valhalla answers errors as HTTP 4xx with a JSON body (``error_code``, ``error``); that body says
    what was wrong, so it is returned rather than the bare status.
    """
    req = urllib.request.Request(  # noqa: S310 - URL from settings
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            out: bytes = resp.read()
            return out
    except urllib.error.HTTPError as err:
        error_body: bytes = err.read()
        if error_body.startswith(b"{"):
            return error_body
        raise


#: Valhalla's distance units, to metres.
_VALHALLA_UNITS = {"kilometers": 1000.0, "km": 1000.0, "miles": 1609.344, "mi": 1609.344}


class ValhallaTravel:
    """A Valhalla ``POST /sources_to_targets`` client: the time-distance matrix service.

    The request names every location as both a source and a target (``{"lat", "lon"}``), the
    costing (``auto`` by default) and ``"units": "kilometers"``. Valhalla answers either verbosely,
    ``sources_to_targets`` as one row per source of ``{"distance", "time", "from_index",
    "to_index"}`` cells (the default), or concisely (``"verbose": false``) as
    ``{"durations": [[...]], "distances": [[...]]}``; both are read. Distances come in the
    answer's ``units`` (km by default) and become metres. An unreachable pair (``null``) or an error
    answer (``error_code``, ``error``) raises :class:`TravelError`, as :class:`OsrmTravel` does.
    """

    def __init__(
        self,
        *,
        base_url: str,
        costing: str = "auto",
        timeout: float = 60.0,
        http_post: HttpPost = urllib_post,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Valhalla base_url must be http(s), got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.costing = costing
        self.timeout = timeout
        self._post = http_post

    @property
    def cache_key(self) -> tuple[str, ...]:
        return ("valhalla", self.base_url, self.costing)

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        points = [{"lat": round(lat, 6), "lon": round(lon, 6)} for lat, lon in locations]
        request = {
            "sources": points,
            "targets": points,
            "costing": self.costing,
            "units": "kilometers",
        }
        url = f"{self.base_url}/sources_to_targets"
        try:
            body = json.loads(self._post(url, json.dumps(request).encode(), self.timeout))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise TravelError(f"Valhalla matrix request to {self.base_url} failed: {err}") from err
        if not isinstance(body, dict):
            raise TravelError(f"Valhalla answered {body!r}, not a JSON object")
        if "error_code" in body or "error" in body:
            raise TravelError(
                f"Valhalla answered error {body.get('error_code')!r}: {body.get('error', '')}"
            )
        units = str(body.get("units", "kilometers"))
        if units not in _VALHALLA_UNITS:
            raise TravelError(f"Valhalla answered in unknown units {units!r}")
        table = body.get("sources_to_targets")
        n = len(locations)
        if isinstance(table, dict):  # the concise form
            dist_rows, time_rows = table.get("distances"), table.get("durations")
        elif isinstance(table, list):
            dist_rows, time_rows = [], []
            for i, row in enumerate(table):
                if not isinstance(row, list):
                    raise TravelError(f"Valhalla matrix row {i} is not a list")
                cells = sorted(
                    row, key=lambda c: c.get("to_index", 0) if isinstance(c, dict) else 0
                )
                if any(not isinstance(c, dict) for c in cells):
                    raise TravelError(f"Valhalla matrix row {i} has a cell that is not an object")
                dist_rows.append([c.get("distance") for c in cells])
                time_rows.append([c.get("time") for c in cells])
        else:
            raise TravelError("Valhalla answer has no 'sources_to_targets' matrix")
        out = []
        for name, rows, scale in (
            ("distances", dist_rows, _VALHALLA_UNITS[units]),
            ("durations", time_rows, 1.0),
        ):
            if not isinstance(rows, list) or len(rows) != n or any(len(r) != n for r in rows):
                raise TravelError(f"Valhalla matrix has no {n}x{n} {name}")
            for i, row in enumerate(rows):
                for j, v in enumerate(row):
                    if v is None:
                        raise TravelError(f"Valhalla: no route from location {i} to {j}")
            out.append(np.rint(np.asarray(rows, dtype=float) * scale).astype(np.int64))
        return out[0], out[1]


class MatrixCache:
    """Matrices by (travel source, locations, hour of departure); least recently used go first.

    One cache may serve several :class:`CachedTravel` wrappers (say OSRM for vans, Valhalla for
    bikes): the key names the source, so their answers never mix.
    """

    def __init__(self, *, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[object, ...], tuple[Matrix, Matrix]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[object, ...]) -> tuple[Matrix, Matrix] | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[object, ...], value: tuple[Matrix, Matrix]) -> None:
        self._entries[key] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _source_key(inner: TravelModel) -> tuple[object, ...]:
    key = getattr(inner, "cache_key", None)
    if isinstance(key, tuple):
        return key
    return (type(inner).__name__, id(inner))


class CachedTravel:
    """Remembers matrices by (locations, hour of departure) in a :class:`MatrixCache`.

    Re-planning every few minutes asks for the same depots and stops again; an OSRM or Valhalla
    round trip for a few hundred locations is seconds, a cache hit is nothing. Pass ``cache`` to
    share one cache between several travel sources.
    """

    def __init__(
        self, inner: TravelModel, *, max_entries: int = 32, cache: MatrixCache | None = None
    ) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else MatrixCache(max_entries=max_entries)
        self._source = _source_key(inner)

    @property
    def hits(self) -> int:
        return self.cache.hits

    @property
    def misses(self) -> int:
        return self.cache.misses

    @property
    def speed_profile(self) -> SpeedProfile | None:
        """The wrapped model's time-of-day speeds, if it has them: caching keeps the problem's."""
        profile = getattr(self.inner, "speed_profile", None)
        return profile if isinstance(profile, SpeedProfile) else None

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        key = (
            self._source,
            tuple((round(a, 6), round(b, 6)) for a, b in locations),
            depart_at // 3600,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        value = self.inner.matrices(locations, depart_at=depart_at)
        self.cache.put(key, value)
        return value
