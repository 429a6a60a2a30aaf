"""A plan as GeoJSON: one LineString per route and one Point per stop, for a map or a dashboard.

Coordinates are GeoJSON's (lon, lat); our locations are (lat, lon), so they are swapped here.
Benchmark instances in plane coordinates come out as (y, x), which any viewer still draws.
"""

from __future__ import annotations

from typing import Any

from cloud.planning.model import Problem
from cloud.planning.result import Plan


def plan_geojson(problem: Problem, plan: Plan) -> dict[str, Any]:
    features: list[dict[str, Any]] = []

    def lonlat(loc: tuple[float, float]) -> list[float]:
        return [loc[1], loc[0]]

    for route in plan.routes:
        van = problem.van(route.van_id)
        path = [lonlat(problem.depot(van.start_depot).location)]
        for v in route.visits:
            loc = (
                problem.depot(van.start_depot).location
                if v.kind == "reload"
                else problem.stop(v.stop_id).location
            )
            path.append(lonlat(loc))
            if v.kind == "stop":
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": lonlat(loc)},
                        "properties": {
                            "stop": v.stop_id,
                            "van": route.van_id,
                            "eta": v.start,
                            "load_after": v.load_after.parcels,
                        },
                    }
                )
        path.append(lonlat(problem.depot(van.end_depot).location))
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": path},
                "properties": {
                    "van": route.van_id,
                    "distance_m": route.distance,
                    "start": route.start,
                    "end": route.end,
                },
            }
        )
    for d in plan.dropped:
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": lonlat(problem.stop(d.stop_id).location),
                },
                "properties": {"stop": d.stop_id, "dropped": d.reason},
            }
        )
    return {"type": "FeatureCollection", "features": features}
