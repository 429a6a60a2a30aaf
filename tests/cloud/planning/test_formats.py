"""Solomon/VRPLIB files read by the DIMACS convention, and our JSON format, garbage refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cloud.planning import FormatError
from cloud.planning.evaluate import RouteOrder, evaluate
from cloud.planning.formats import parse_json, read_problem, read_vrplib, read_vrplib_solution
from tests.cloud.planning.conftest import SHARED

SOLOMON = SHARED / "solomon"


def _bks(folder: Path) -> dict[str, float]:
    with (folder / "bks.csv").open() as f:
        return {r["instance"]: float(r["bks"]) for r in csv.DictReader(f)}


def test_every_solomon_best_known_solution_costs_its_published_value_by_our_convention() -> None:
    # Our reader + our evaluator reproduce the 56 best-known costs exactly, and find each
    # best-known solution feasible: the DIMACS units (x10, truncated) are ours.
    bks = _bks(SOLOMON)
    assert len(bks) == 56
    for name, cost in bks.items():
        problem = read_vrplib(SOLOMON / f"{name}.vrp")
        routes, sol_cost = read_vrplib_solution(SOLOMON / f"{name}.sol")
        assert sol_cost == pytest.approx(cost)
        vans = [v.id for v in problem.vans]
        plan = evaluate(
            problem,
            [RouteOrder(van_id=v, visits=tuple(r)) for v, r in zip(vans, routes, strict=False)],
            engine="bks",
            runtime=0.0,
        )
        assert plan.is_feasible(), (name, plan.violations[:3])
        assert plan.distance / 10 == pytest.approx(cost, abs=1e-6), name


def test_c101_is_read_with_its_fleet_windows_and_service_times_in_tenths() -> None:
    p = read_vrplib(SOLOMON / "C101.vrp")
    assert (len(p.stops), len(p.vans), p.vans[0].capacity.parcels) == (100, 25, 200)
    first = p.stop("2")
    assert first.windows[0].start == 9120 and first.windows[0].end == 9670
    assert first.service_time == 900 and first.required
    # depot (40,50) to customer 1 (45,68): sqrt(25 + 324) = 18.68... -> 186 tenths.
    assert p.distance[0, p.index_of["2"]] == 186


def test_a_large_gehring_homberger_instance_reads() -> None:
    p = read_vrplib(SHARED / "gh" / "C1_2_1.vrp")
    assert len(p.stops) == 200


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hello world\n", "unexpected line"),
        ("NAME : x\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n", "no DEMAND_SECTION"),
        (
            "NAME : x\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 zero\nDEMAND_SECTION\n1 0\n",
            "not a number",
        ),
        (
            "NAME : x\nCAPACITY : 10\nNODE_COORD_SECTION\n1 0 0\n2 1 1\nDEMAND_SECTION\n1 0\n",
            "different nodes",
        ),
        ("NAME : x\nNODE_COORD_SECTION\n1 0 0\nDEMAND_SECTION\n1 0\n", "no CAPACITY"),
    ],
)
def test_garbage_vrplib_is_refused_with_the_file_and_the_reason(
    tmp_path: Path, text: str, words: str
) -> None:
    f = tmp_path / "bad.vrp"
    f.write_text(text)
    with pytest.raises(FormatError) as caught:
        read_vrplib(f)
    assert caught.value.source == str(f) and words in str(caught.value)


DOC = {
    "name": "berlin-morning",
    "depots": [{"id": "hub", "location": [52.52, 13.40], "opens": "06:00", "closes": "20:00"}],
    "vans": [
        {
            "id": "van-1",
            "depot": "hub",
            "capacity": {"parcels": 50, "weight": 800},
            "shift_start": "08:00",
            "shift_end": "16:00",
            "breaks": [{"earliest": "11:30", "latest": "13:00", "duration": 1800}],
            "skills": ["cooled"],
        }
    ],
    "stops": [
        {"id": "a", "location": [52.53, 13.41], "windows": [{"start": "09:00", "end": "10:00"}]},
        {"id": "b", "location": [52.51, 13.38], "kind": "return", "load": {"parcels": 2}},
    ],
    "lockers": [
        {
            "id": "locker-1",
            "location": [52.50, 13.42],
            "parcel_sizes": ["S", "M"],
            "free_compartments": {"S": 2, "M": 1},
        }
    ],
}


def test_our_json_builds_a_problem_with_clock_times(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(json.dumps(DOC))
    p = read_problem(f)
    assert p.name == "berlin-morning" and len(p.stops) == 3
    assert p.vans[0].shift_start == 8 * 3600 and p.vans[0].breaks[0].duration == 1800
    assert p.stop("a").windows[0].start == 9 * 3600
    assert p.stop("locker-1").load.parcels == 2
    # Haversine x 1.3: the 1.3 km from the hub to stop a is about 1.7 km of road.
    assert 1500 < p.distance[0, p.index_of["a"]] < 2000


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d["stops"][1].update(load={"parcels": -1}), "stops.1.load.parcels"),
        (lambda d: d["vans"][0].update(shift_start="later"), "vans.0.shift_start"),
        (lambda d: d.update(colour="red"), "colour: Extra inputs are not permitted"),
        (lambda d: d["vans"][0].update(depot="moon"), "unknown depot 'moon'"),
        (lambda d: d["lockers"][0].update(parcel_sizes=["M", "M"]), "do not fit"),
        (lambda d: d.pop("depots"), "depots: Field required"),
    ],
)
def test_garbage_json_is_refused_with_the_field_path(mutate, words) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(DOC))
    mutate(doc)
    with pytest.raises(FormatError) as caught:
        parse_json(doc, source="upload.json")
    assert words in str(caught.value) and str(caught.value).startswith("upload.json: ")


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text("{not json")
    with pytest.raises(FormatError, match="not a JSON file"):
        read_problem(f)
