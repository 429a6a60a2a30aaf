"""Travel distances and times between locations, behind one small interface.

- :class:`HaversineTravel` (the default): great-circle distance x a circuity factor (roads are not
  straight; ~1.3 in European cities), time from a time-of-day :class:`SpeedProfile`. No network, no
  map data: good enough to plan, and the ETAs are refreshed from live positions anyway.
- :class:`OsrmTravel`: an OSRM server's ``/table`` service, pluggable by URL, for road distances.
- :class:`EuclideanTravel`: plane coordinates, for the Solomon/Gehring-Homberger benchmarks.
- :class:`CachedTravel`: wraps any of them; the same locations are not asked for twice.

The solvers take one static matrix; the speed profile is applied at the fleet's earliest shift start
for the matrix, and per leg at its real departure time when ETAs are refreshed (``leg_time``).
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


class CachedTravel:
    """Remembers matrices by (locations, hour of departure); least recently used go first.

    Re-planning every few minutes asks for the same depots and stops again; an OSRM round trip for
    a few hundred locations is seconds, a cache hit is nothing.
    """

    def __init__(self, inner: TravelModel, *, max_entries: int = 32) -> None:
        self.inner = inner
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[object, ...], tuple[Matrix, Matrix]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def matrices(self, locations: Locations, *, depart_at: int) -> tuple[Matrix, Matrix]:
        key = (tuple((round(a, 6), round(b, 6)) for a, b in locations), depart_at // 3600)
        if key in self._cache:
            self.hits += 1
            self._cache.move_to_end(key)
            return self._cache[key]
        self.misses += 1
        value = self.inner.matrices(locations, depart_at=depart_at)
        self._cache[key] = value
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return value
