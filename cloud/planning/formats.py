"""Problem files: Solomon/VRPLIB text (the benchmarks) and our own JSON (pydantic-validated).

VRPLIB instances follow the DIMACS 2021 VRPTW convention (see ../shared/benchmarks/README.md):
Euclidean distances and travel times truncated to one decimal, i.e. integers x10, service and
windows x10 as well; every customer must be served; at most ``VEHICLES`` vans. The plan's total
distance divided by 10 is then directly comparable with the best-known costs in ``bks.csv``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cloud.planning.errors import FormatError, ProblemError
from cloud.planning.model import Break, CompartmentSize, Load, Problem, ProblemBuilder, StopKind
from cloud.planning.travel import (
    CachedTravel,
    EuclideanTravel,
    HaversineTravel,
    OsrmTravel,
    TravelModel,
    ValhallaTravel,
)

DIMACS_SCALE = 10


def _parse_sections(text: str, source: str) -> tuple[dict[str, str], dict[str, list[list[str]]]]:
    headers: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "EOF":
            continue
        if line.endswith("_SECTION"):
            current = sections.setdefault(line, [])
            continue
        m = re.match(r"^([A-Z_]+)\s*:\s*(.*)$", line)
        if m:
            headers[m.group(1)] = m.group(2).strip()
            current = None
            continue
        if current is None:
            raise FormatError(source, f"unexpected line outside any section: {line[:60]!r}")
        current.append(line.split())
    return headers, sections


def _num(source: str, where: str, value: str) -> float:
    try:
        return float(value)
    except ValueError as err:
        raise FormatError(source, f"{where}: not a number: {value!r}") from err


def read_vrplib(path: Path | str, *, scale: int = DIMACS_SCALE) -> Problem:
    """Read a Solomon/VRPLIB (CVRPTW) instance into a :class:`Problem` in DIMACS units (x10)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(source, f"cannot read: {err}") from err
    headers, sections = _parse_sections(text, source)
    for needed in ("NODE_COORD_SECTION", "DEMAND_SECTION"):
        if needed not in sections:
            raise FormatError(source, f"no {needed}: not a VRPLIB instance")
    if "CAPACITY" not in headers:
        raise FormatError(source, "no CAPACITY header")
    if headers.get("EDGE_WEIGHT_TYPE", "EUC_2D") != "EUC_2D":
        raise FormatError(source, f"EDGE_WEIGHT_TYPE {headers['EDGE_WEIGHT_TYPE']} not supported")

    def table(name: str, width: int) -> dict[int, list[float]]:
        rows = {}
        for row in sections.get(name, []):
            if len(row) < width + 1:
                raise FormatError(source, f"{name}: short row {' '.join(row)!r}")
            rows[int(_num(source, name, row[0]))] = [
                _num(source, name, v) for v in row[1 : width + 1]
            ]
        return rows

    coords = table("NODE_COORD_SECTION", 2)
    demand = table("DEMAND_SECTION", 1)
    windows = table("TIME_WINDOW_SECTION", 2)
    service = table("SERVICE_TIME_SECTION", 1)
    default_service = _num(source, "SERVICE_TIME", headers.get("SERVICE_TIME", "0"))
    depot_rows = [r for r in sections.get("DEPOT_SECTION", [["1"]]) if r and r[0] != "-1"]
    depot_ids = [int(_num(source, "DEPOT_SECTION", r[0])) for r in depot_rows]
    if not depot_ids:
        raise FormatError(source, "no depot")
    nodes = sorted(coords)
    if set(demand) != set(nodes):
        raise FormatError(source, "DEMAND_SECTION and NODE_COORD_SECTION list different nodes")
    name = headers.get("NAME", Path(path).stem)
    capacity = int(_num(source, "CAPACITY", headers["CAPACITY"]))
    n_vehicles = int(_num(source, "VEHICLES", headers.get("VEHICLES", str(len(nodes)))))
    b = ProblemBuilder(name=name)
    horizon = 10**9
    try:
        for d in depot_ids:
            tw = windows.get(d, [0, horizon])
            b.add_depot(
                id=f"depot{d}",
                location=(coords[d][0], coords[d][1]),
                opens=round(tw[0] * scale),
                closes=round(tw[1] * scale),
            )
        for k in range(n_vehicles):
            d = depot_ids[k % len(depot_ids)]
            tw = windows.get(d, [0, horizon])
            b.add_van(
                id=f"v{k + 1}",
                depot=f"depot{d}",
                capacity=Load(parcels=capacity),
                shift_start=round(tw[0] * scale),
                shift_end=round(tw[1] * scale),
            )
        for node in nodes:
            if node in depot_ids:
                continue
            window = windows.get(node)
            b.add_stop(
                id=str(node),
                location=(coords[node][0], coords[node][1]),
                load=Load(parcels=int(demand[node][0])),
                service_time=round(service.get(node, [default_service])[0] * scale),
                windows=[(round(window[0] * scale), round(window[1] * scale))] if window else [],
                required=True,
            )
        return b.build(travel=EuclideanTravel(scale=scale))
    except ProblemError as err:
        raise FormatError(source, str(err)) from err


def read_vrplib_solution(path: Path | str) -> tuple[list[list[str]], float]:
    """A ``.sol`` file: routes as lists of stop ids (node numbers, 1 = first customer) and the cost.

    VRPLIB solutions number customers from 1 with the depot excluded, so customer ``k`` is node
    ``k + 1`` of the instance file (whose depot is node 1).
    """
    source = str(path)
    routes, cost = [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("Route"):
            routes.append([str(int(x) + 1) for x in line.split(":", 1)[1].split()])
        elif line.startswith("Cost"):
            cost = _num(source, "Cost", line.split()[1])
    if cost is None or not routes:
        raise FormatError(source, "no routes or no Cost line")
    return routes, cost


# ---------------------------------------------------------------- our JSON format

_Time = Annotated[int, Field(ge=0)]


def _clock(value: object) -> object:
    """Times may be seconds or "HH:MM" strings (seconds from midnight)."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
        h, m = value.split(":")
        return int(h) * 3600 + int(m) * 60
    return value


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoadSpec(_Spec):
    parcels: int = Field(default=0, ge=0)
    volume: int = Field(default=0, ge=0)
    weight: int = Field(default=0, ge=0)


class DepotSpec(_Spec):
    id: str
    location: tuple[float, float]
    opens: _Time = 0
    closes: _Time = 86_400
    _c = field_validator("opens", "closes", mode="before")(_clock)


class BreakSpec(_Spec):
    earliest: _Time
    latest: _Time
    duration: int = Field(gt=0)
    _c = field_validator("earliest", "latest", mode="before")(_clock)


class VanSpec(_Spec):
    id: str
    depot: str
    end_depot: str | None = None
    capacity: LoadSpec
    shift_start: _Time
    shift_end: _Time
    breaks: list[BreakSpec] = []
    max_distance_m: int | None = Field(default=None, gt=0)
    cost_per_km: float = Field(default=1.0, ge=0)
    cost_per_hour: float = Field(default=0.0, ge=0)
    fixed_cost: float = Field(default=0.0, ge=0)
    skills: list[str] = []
    max_trips: int = Field(default=1, ge=1)
    reload_time: int = Field(default=0, ge=0)
    co2_g_per_km: float = Field(default=180.0, ge=0)
    _c = field_validator("shift_start", "shift_end", mode="before")(_clock)


class WindowSpec(_Spec):
    start: _Time
    end: _Time
    _c = field_validator("start", "end", mode="before")(_clock)


class StopSpec(_Spec):
    id: str
    location: tuple[float, float]
    kind: StopKind = "delivery"
    load: LoadSpec = LoadSpec(parcels=1)
    service_time: int = Field(default=0, ge=0)
    windows: list[WindowSpec] = []
    priority: int = Field(default=1, ge=1)
    skills: list[str] = []
    required: bool = False


class LockerSpec(_Spec):
    id: str
    location: tuple[float, float]
    parcel_sizes: list[CompartmentSize]
    free_compartments: dict[CompartmentSize, int]
    service_time: int = Field(default=0, ge=0)
    per_parcel_time: int = Field(default=0, ge=0)
    windows: list[WindowSpec] = []
    priority: int = Field(default=1, ge=1)
    required: bool = False


class PairSpec(_Spec):
    pickup: str
    delivery: str


class TravelSpec(_Spec):
    kind: Literal["haversine", "euclidean", "osrm", "valhalla"] = "haversine"
    circuity: float = Field(default=1.3, ge=1.0)
    scale: int = Field(default=10, gt=0)
    url: str | None = None


class ProblemSpec(_Spec):
    """Our JSON problem format. Times are seconds from midnight or "HH:MM"; distances in metres."""

    name: str = ""
    depots: list[DepotSpec]
    vans: list[VanSpec]
    stops: list[StopSpec] = []
    lockers: list[LockerSpec] = []
    pairs: list[PairSpec] = []
    travel: TravelSpec = TravelSpec()
    drop_penalty: int = Field(default=1_000_000, gt=0)

    def to_problem(self, *, travel: TravelModel | None = None) -> Problem:
        b = ProblemBuilder(name=self.name, drop_penalty=self.drop_penalty)
        for d in self.depots:
            b.add_depot(id=d.id, location=d.location, opens=d.opens, closes=d.closes)
        for v in self.vans:
            b.add_van(
                id=v.id,
                depot=v.depot,
                end_depot=v.end_depot,
                capacity=Load(**v.capacity.model_dump()),
                shift_start=v.shift_start,
                shift_end=v.shift_end,
                breaks=[Break(x.earliest, x.latest, x.duration) for x in v.breaks],
                max_distance=v.max_distance_m,
                cost_per_km=v.cost_per_km,
                cost_per_hour=v.cost_per_hour,
                fixed_cost=v.fixed_cost,
                skills=v.skills,
                max_trips=v.max_trips,
                reload_time=v.reload_time,
                co2_g_per_km=v.co2_g_per_km,
            )
        for s in self.stops:
            b.add_stop(
                id=s.id,
                location=s.location,
                kind=s.kind,
                load=Load(**s.load.model_dump()),
                service_time=s.service_time,
                windows=[(w.start, w.end) for w in s.windows],
                priority=s.priority,
                skills=s.skills,
                required=s.required,
            )
        for lk in self.lockers:
            b.add_locker_stop(
                id=lk.id,
                location=lk.location,
                parcel_sizes=lk.parcel_sizes,
                free_compartments=lk.free_compartments,
                service_time=lk.service_time,
                per_parcel_time=lk.per_parcel_time,
                windows=[(w.start, w.end) for w in lk.windows],
                priority=lk.priority,
                required=lk.required,
            )
        for p in self.pairs:
            b.add_pair(pickup=p.pickup, delivery=p.delivery)
        return b.build(travel=travel or self._travel())

    def travel_model(self) -> TravelModel:
        """The travel model this document names (a re-plan needs the same one)."""
        return self._travel()

    def _travel(self) -> TravelModel:
        t = self.travel
        if t.kind == "euclidean":
            return EuclideanTravel(scale=t.scale)
        if t.kind == "osrm":
            if not t.url:
                raise ProblemError("travel", "osrm needs a url")
            return CachedTravel(OsrmTravel(base_url=t.url))
        if t.kind == "valhalla":
            if not t.url:
                raise ProblemError("travel", "valhalla needs a url")
            return CachedTravel(ValhallaTravel(base_url=t.url))
        return HaversineTravel(circuity=t.circuity)


def read_json(path: Path | str, *, travel: TravelModel | None = None) -> Problem:
    source = str(path)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(source, f"not a JSON file: {err}") from err
    return parse_json(raw, source=source, travel=travel)


def parse_json(
    raw: object, *, source: str = "problem", travel: TravelModel | None = None
) -> Problem:
    """Validate a decoded JSON document; the first error names the field path (``stops.3.load``)."""
    try:
        spec = ProblemSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise FormatError(source, f"{where}: {first['msg']} ({err.error_count()} errors)") from err
    try:
        return spec.to_problem(travel=travel)
    except ProblemError as err:
        raise FormatError(source, str(err)) from err


def read_problem(path: Path | str) -> Problem:
    """A ``.json`` file in our format, anything else as VRPLIB text."""
    if str(path).endswith(".json"):
        return read_json(path)
    return read_vrplib(path)
