"""The README's first promise: `lastmile demo` shows 3 moving vans and 2 lockers within 60 s, and
Ctrl-C stops everything with no orphan process and no stack trace."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloud.broker import free_port


def _get(url: str, key: str) -> dict[str, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return dict(json.loads(resp.read()))


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found.append(args)
    return found


@pytest.mark.slow
def test_the_demo_shows_moving_vans_and_lockers_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "demo-state"
    out = (tmp_path / "out.txt").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "demo", "--port", str(port), "--state-dir", str(state)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        key = None
        while key is None:
            assert time.monotonic() - started < 60, Path(out.name).read_text()
            assert proc.poll() is None, Path(out.name).read_text()
            m = re.search(r"API key \(ops\)\s+(\S+)", Path(out.name).read_text())
            key = m.group(1) if m else None
            time.sleep(0.1)
        api = f"http://127.0.0.1:{port}/api/v1"
        first: dict[str, object] = {}
        while True:
            assert time.monotonic() - started < 60, "no 3 moving vans and 2 lockers within 60 s"
            vans = {v["id"]: v for v in _get(f"{api}/vehicles", key)["data"]}  # type: ignore[attr-defined]
            lockers = _get(f"{api}/lockers", key)["data"]
            positioned = {i: v["last_position"] for i, v in vans.items() if v.get("last_position")}
            for i, p in positioned.items():
                first.setdefault(i, p)
            moved = [i for i, p in positioned.items() if p != first[i]]
            if len(positioned) == 3 and len(moved) == 3 and len(lockers) == 2:  # type: ignore[arg-type]
                break
            time.sleep(0.5)
        assert sorted(vans) == ["van-1", "van-2", "van-3"]
        assert {lk["id"] for lk in lockers} == {"locker-1", "locker-2"}  # type: ignore[index,union-attr]
        assert all(lk["compartments"] == 12 for lk in lockers)  # type: ignore[index,union-attr]
        track = _get(f"{api}/vehicles/van-1/positions", key)["data"]
        assert len(track) >= 2  # type: ignore[arg-type]
        # The demo user signs in for a bearer token, which reads the van's trips of today.
        m = re.search(r'user "demo" \(ops\), password (\S+)', Path(out.name).read_text())
        assert m is not None, Path(out.name).read_text()
        form = urllib.parse.urlencode({"username": "demo", "password": m.group(1)}).encode()
        with urllib.request.urlopen(f"{api}/auth/token", data=form, timeout=30) as resp:
            token = json.loads(resp.read())["access_token"]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        window = f"from={today}T00:00:00Z&to={today}T23:59:59Z"
        trips = _get(f"{api}/vehicles/van-1/trips?{window}", token)
        assert trips["count"] == len(trips["data"])  # type: ignore[arg-type]
        # The desk's parcels ride the vans of two depots: today's KPIs count their handovers.
        while True:
            kpis: dict[str, Any] = _get(f"{api}/kpis?from={today}", token)
            rows = kpis["data"]
            if sum(r["handovers"] for r in rows if r["vehicle_id"]) >= 1:
                break
            assert time.monotonic() - started < 120, f"no handover in the KPIs: {kpis}"
            time.sleep(1)
        assert {r["depot"] for r in rows} == {"north", "south"}
        assert {lk["locker_id"] for lk in kpis["lockers"]} == {"locker-1", "locker-2"}
        assert f"Dashboard           http://127.0.0.1:{port}/" in Path(out.name).read_text()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert "<title>Lastmile ops</title>" in resp.read().decode()
        # The demo's dispatcher plans the day, dispatches, and each van acknowledges its route.
        while True:
            assert time.monotonic() - started < 90, Path(out.name).read_text()
            plans = _get(f"{api}/plans", key)["data"]
            sent = [p["id"] for p in plans if p["dispatched_at"]]  # type: ignore[attr-defined]
            routes = [r for i in sent for r in _get(f"{api}/plans/{i}", key)["routes"]]  # type: ignore[attr-defined]
            if routes and all(r["state"] == "acknowledged" for r in routes):
                break
            time.sleep(0.5)
        assert {r["vehicle_id"] for r in routes} <= {"van-1", "van-2", "van-3"}
        assert "demo: routes dispatched" in Path(out.name).read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    text = Path(out.name).read_text()
    assert code == 0, text
    assert "Traceback" not in text
    assert _processes_mentioning(str(state)) == [], "an orphan process survived the demo"


def _wait(what: str, deadline: float, out: Path, check: Any) -> Any:
    """Poll ``check()`` until it returns something truthy, failing with the demo's log."""
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not seen in time:\n{out.read_text()[-6000:]}"
        time.sleep(2)


@pytest.mark.slow
def test_the_demo_plans_the_hubs_parcels_and_replans_when_a_van_falls_behind(
    tmp_path: Path,
) -> None:
    """The whole planning loop, seen through the API: each depot's day planned from the desk's
    parcels, dispatched and acknowledged, a stop reached by geofence (its parcel delivered), and
    the held-up van making the dispatcher re-plan -- all within the first few minutes."""
    port = free_port()
    state = tmp_path / "demo-state"
    log = tmp_path / "out.txt"
    out = log.open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "demo", "--port", str(port), "--state-dir", str(state)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 540  # the re-plan comes after ~4 min; a loaded box is slower
    try:

        def key() -> str | None:
            m = re.search(r"API key \(ops\)\s+(\S+)", log.read_text())
            assert proc.poll() is None, log.read_text()
            return m.group(1) if m else None

        k = _wait("the API key", deadline, log, key)
        api = f"http://127.0.0.1:{port}/api/v1"

        def plans() -> list[dict[str, Any]]:
            try:
                return [_get(f"{api}/plans/{p['id']}", k) for p in _get(f"{api}/plans", k)["data"]]  # type: ignore[attr-defined]
            except OSError:
                return []

        def first_plans() -> list[dict[str, Any]] | None:
            sent = [p for p in plans() if p["dispatched_at"] and p["parent_id"] is None]
            routes = [r for p in sent for r in p["routes"]]
            if {p["depot"] for p in sent} == {"north", "south"} and all(
                r["state"] == "acknowledged" for r in routes
            ):
                return sent
            return None

        sent = _wait("both depots' plans dispatched and acknowledged", deadline, log, first_plans)
        for p in sent:
            assert p["parcels"], p  # planned from the hub's parcels, not an invented problem
            stops = {s["stop_id"] for r in p["routes"] for s in r["stops"]}
            assert stops <= set(p["parcels"]), p
        depots: list[dict[str, Any]] = _get(f"{api}/depots", k)["data"]  # type: ignore[assignment]
        assert {d["id"] for d in depots} == {"north", "south"}

        def reached() -> list[str]:
            return [s for p in plans() for r in p["routes"] for s in r["completed"]]

        done = _wait("a stop reached by geofence", deadline, log, reached)
        home = next((s for s in done if s.startswith("parcel-")), None)
        if home is not None:  # the driver's scan at the door follows the arrival

            def delivered() -> bool:
                parcel = _get(f"{api}/parcels/{home.removeprefix('parcel-')}", k)
                return parcel["status"] == "delivered"

            _wait(f"{home} delivered", deadline, log, delivered)

        def replanned() -> list[dict[str, Any]]:
            return [p for p in plans() if p["parent_id"] and p["dispatched_at"]]

        again = _wait("a re-plan dispatched", deadline, log, replanned)
        assert again[0]["status"] == "done"
        text = log.read_text()
        assert "has stood still" in text and "re-planning" in text, text[-4000:]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text
