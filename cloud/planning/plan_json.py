"""A :class:`~cloud.planning.result.Plan` as JSON and back, so a stored plan can be re-planned.

The hub keeps plans in the database (``plan_jobs.result``); :func:`replan` needs the plan object
again, so the round trip is exact for every field it reads.
"""

from __future__ import annotations

from typing import Any, cast

from cloud.planning.model import Load
from cloud.planning.result import DroppedStop, Plan, Route, TakenBreak, Visit, VisitKind


def _load(raw: Any) -> Load:
    return Load(parcels=int(raw["parcels"]), volume=int(raw["volume"]), weight=int(raw["weight"]))


def _load_json(load: Load) -> dict[str, int]:
    return {"parcels": load.parcels, "volume": load.volume, "weight": load.weight}


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """Everything in ``plan`` plus its totals (km, CO2, cost) for readers that want no arithmetic."""
    return {
        "engine": plan.engine,
        "runtime_s": plan.runtime,
        "feasible": plan.is_feasible(),
        "distance_m": plan.distance,
        "driving_s": plan.driving,
        "co2_kg": plan.co2_kg,
        "cost": plan.cost,
        "violations": list(plan.violations),
        "problem_name": plan.problem_name,
        "distance_unit": plan.distance_unit,
        "required_dropped": list(plan.required_dropped),
        "routes": [
            {
                "van_id": r.van_id,
                "start": r.start,
                "end": r.end,
                "distance_m": r.distance,
                "driving_s": r.driving,
                "co2_kg": r.co2_kg,
                "cost": r.cost,
                "departure_load": _load_json(r.departure_load),
                "breaks": [{"start": b.start, "duration": b.duration} for b in r.breaks],
                "visits": [
                    {
                        "stop_id": v.stop_id,
                        "kind": v.kind,
                        "arrival": v.arrival,
                        "start": v.start,
                        "departure": v.departure,
                        "load_after": _load_json(v.load_after),
                        "late_by": v.late_by,
                    }
                    for v in r.visits
                ],
            }
            for r in plan.routes
        ],
        "dropped": [{"stop_id": d.stop_id, "reason": d.reason} for d in plan.dropped],
    }


def plan_from_json(raw: dict[str, Any]) -> Plan:
    """The inverse of :func:`plan_to_json` (totals are recomputed by the Plan itself)."""
    return Plan(
        routes=tuple(
            Route(
                van_id=r["van_id"],
                start=int(r["start"]),
                end=int(r["end"]),
                distance=int(r["distance_m"]),
                driving=int(r["driving_s"]),
                visits=tuple(
                    Visit(
                        stop_id=v["stop_id"],
                        kind=cast(VisitKind, v["kind"]),
                        arrival=int(v["arrival"]),
                        start=int(v["start"]),
                        departure=int(v["departure"]),
                        load_after=_load(v["load_after"]),
                        late_by=int(v["late_by"]),
                    )
                    for v in r["visits"]
                ),
                breaks=tuple(TakenBreak(int(b["start"]), int(b["duration"])) for b in r["breaks"]),
                departure_load=_load(r["departure_load"]),
                co2_kg=float(r["co2_kg"]),
                cost=float(r["cost"]),
            )
            for r in raw["routes"]
        ),
        dropped=tuple(DroppedStop(d["stop_id"], d["reason"]) for d in raw["dropped"]),
        engine=raw["engine"],
        runtime=float(raw["runtime_s"]),
        violations=tuple(raw["violations"]),
        problem_name=raw["problem_name"],
        distance_unit=float(raw["distance_unit"]),
        required_dropped=tuple(raw["required_dropped"]),
    )
