"""``lastmile plan``: summary on stdout, progress bar on stderr, GeoJSON on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from tests.cloud.planning.conftest import SHARED


def test_plan_a_solomon_file_prints_the_summary_and_writes_geojson(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c101.geojson"
    code = main(
        [
            "plan",
            str(SHARED / "solomon" / "C101.vrp"),
            "--time-limit",
            "1",
            "--seed",
            "2",
            "--geojson",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("plan C101 by pyvrp")
    assert "100 stops served, 0 dropped" in captured.out
    assert "planning [" in captured.err and "100%" in captured.err
    features = json.loads(out.read_text())["features"]
    assert sum(f["geometry"]["type"] == "Point" for f in features) == 100


def test_a_garbage_file_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"depots": []}')
    assert main(["plan", str(bad), "--time-limit", "1"]) == 2
    assert "vans: Field required" in capsys.readouterr().err


def test_plan_the_example_json_with_a_break_several_windows_and_a_locker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = Path(__file__).resolve().parents[3] / "docs" / "plan-example.json"
    assert main(["plan", str(example), "--time-limit", "1", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan berlin-mitte-morning by hybrid") and ": feasible" in out
    assert "7 stops served, 0 dropped" in out
