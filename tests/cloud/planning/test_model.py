"""Garbage in is refused at once, with the offending item named; the layout rules hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.planning import Break, Load, ProblemBuilder, ProblemError
from cloud.planning.model import locker_fits
from tests.cloud.planning.conftest import LINE, at, line_builder

PACKAGE = Path(__file__).resolve().parents[3] / "cloud" / "planning"


def test_exactly_one_module_imports_ortools() -> None:
    importers = sorted(
        p.name
        for p in PACKAGE.glob("*.py")
        if re.search(r"^\s*(from|import) ortools", p.read_text(), re.MULTILINE)
    )
    assert importers == ["ortools_engine.py"]


@pytest.mark.parametrize(
    ("add", "item", "words"),
    [
        (lambda b: b.add_stop(id="s1", location=at(1)), "stop 's1'", "duplicate id"),
        (lambda b: b.add_stop(id="", location=at(1)), "stop ''", "non-empty"),
        (lambda b: b.add_stop(id="x", location=(float("nan"), 0)), "stop 'x'", "finite"),
        (lambda b: b.add_stop(id="x", location="here"), "stop 'x'", "pair of numbers"),
        (
            lambda b: b.add_stop(id="x", location=at(1), windows=[(50, 10)]),
            "stop 'x'",
            "before it starts",
        ),
        (
            lambda b: b.add_stop(id="x", location=at(1), windows=[(0, 50), (40, 90)]),
            "stop 'x'",
            "overlap",
        ),
        (lambda b: b.add_stop(id="x", location=at(1), load=Load(parcels=-2)), "stop 'x'", ">= 0"),
        (lambda b: b.add_stop(id="x", location=at(1), service_time=1.5), "stop 'x'", "integer"),
        (lambda b: b.add_stop(id="x", location=at(1), kind="teleport"), "stop 'x'", "kind"),
        (lambda b: b.add_stop(id="x", location=at(1), priority=0), "stop 'x'", ">= 1"),
        (
            lambda b: b.add_van(id="v1", depot="d", capacity=Load(), shift_start=0, shift_end=9),
            "van 'v1'",
            "duplicate",
        ),
        (
            lambda b: b.add_van(
                id="v9", depot="nowhere", capacity=Load(), shift_start=0, shift_end=9
            ),
            "van 'v9'",
            "unknown depot 'nowhere'",
        ),
        (
            lambda b: b.add_van(id="v9", depot="d", capacity=Load(), shift_start=9, shift_end=9),
            "van 'v9'",
            "before it starts",
        ),
        (
            lambda b: b.add_van(
                id="v9",
                depot="d",
                capacity=Load(),
                shift_start=0,
                shift_end=100,
                breaks=[Break(earliest=90, latest=95, duration=30)],
            ),
            "van 'v9'",
            "does not fit the shift",
        ),
        (
            lambda b: b.add_van(
                id="v9", depot="d", capacity=Load(), shift_start=0, shift_end=9, cost_per_km=-1
            ),
            "van 'v9'",
            "cost_per_km",
        ),
        (lambda b: b.add_pair(pickup="s1", delivery="ghost"), "pair 's1'->'ghost'", "unknown stop"),
        (lambda b: b.add_pair(pickup="s1", delivery="s1"), "pair 's1'->'s1'", "itself"),
        (lambda b: b.add_pair(pickup="s1", delivery="s2"), "pair 's1'->'s2'", "pickup stop"),
        (
            lambda b: b.add_locker_stop(
                id="L", location=at(3), parcel_sizes=["L", "M"], free_compartments={"L": 1, "S": 4}
            ),
            "locker stop 'L'",
            "do not fit the free compartments",
        ),
        (
            lambda b: b.add_locker_stop(
                id="L", location=at(3), parcel_sizes=["XL"], free_compartments={"L": 1}
            ),
            "locker stop 'L'",
            "S, M, L",
        ),
    ],
)
def test_bad_items_are_refused_as_they_are_added_naming_the_item(add, item, words) -> None:  # type: ignore[no-untyped-def]
    b = line_builder()
    b.add_stop(id="s1", location=at(1))
    b.add_stop(id="s2", location=at(2))
    with pytest.raises(ProblemError) as caught:
        add(b)
    assert caught.value.item == item
    assert words in str(caught.value)


def test_a_problem_needs_a_depot_a_van_and_square_matrices() -> None:
    with pytest.raises(ProblemError, match="no depot"):
        ProblemBuilder().build(travel=LINE)
    b = ProblemBuilder()
    b.add_depot(id="d", location=at(0))
    with pytest.raises(ProblemError, match="no van"):
        b.build(travel=LINE)
    b = line_builder()
    b.add_stop(id="s", location=at(1))
    with pytest.raises(ProblemError, match=r"distance matrix is \(1, 1\), expected \(2, 2\)"):
        b.build(distance=[[0]], duration=[[0]])  # type: ignore[arg-type]


def test_the_problem_is_immutable() -> None:
    b = line_builder()
    b.add_stop(id="s", location=at(1))
    problem = b.build(travel=LINE)
    with pytest.raises(AttributeError):
        problem.stops = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        problem.distance[0, 1] = 5


def test_locker_sizes_nest_a_parcel_fits_its_size_or_larger() -> None:
    assert locker_fits(["S", "S", "M"], {"S": 1, "M": 1, "L": 1}) == (True, "")
    ok, why = locker_fits(["L", "S"], {"S": 5, "M": 5})
    assert not ok and "size L" in why
