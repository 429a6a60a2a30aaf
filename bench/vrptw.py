"""Our planner against PyVRP on the Solomon and Gehring-Homberger VRPTW benchmarks.

    python -m bench.vrptw --time-limit 30 [--instances C101 R101 ...] [--set solomon|gh|all]
                          [--engines ours,pyvrp] [--seed 1] [--ours-engine auto|ortools|hybrid]

Each engine runs alone on an instance (one at a time: the machine has two cores), for the same wall
time. ``ours`` is ``cloud.planning.plan``: ``engine="auto"``, which is PyVRP on these plain
VRPTW instances; ``--ours-engine ortools`` measures our OR-Tools model, ``hybrid`` PyVRP then
OR-Tools. It reads with our VRPLIB reader and is costed by our plan evaluator. ``pyvrp`` is
PyVRP 0.14 straight from its own reader (``round_func="dimacs"``), the reference.
Instances from ``../shared/benchmarks/vrptw`` (the repository root's sibling), DIMACS convention:
cost = total distance, distances truncated to one decimal; gap = cost / best-known - 1.

Default set: the 56 Solomon instances and the 1000-customer GH ones. The last stdout line is one
JSON object: ``ours_mean_gap_pct``, ``pyvrp_mean_gap_pct``, ``ours_classes`` / ``pyvrp_classes``
(mean gap per class C1, C2, R1, R2, RC1, RC2, gh), per-instance rows and the run conditions.
An infeasible or failed run counts as missing and is listed, not averaged in.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path
from statistics import mean
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "vrptw"


def _bks() -> dict[str, tuple[Path, float, int]]:
    out: dict[str, tuple[Path, float, int]] = {}
    for sub in ("solomon", "gh"):
        with (SHARED / sub / "bks.csv").open() as f:
            for row in csv.DictReader(f):
                customers = int(row.get("customers") or 100)
                out[row["instance"]] = (
                    SHARED / sub / f"{row['instance']}.vrp",
                    float(row["bks"]),
                    customers,
                )
    return out


def klass(name: str) -> str:
    if "_" in name:
        return "gh"
    m = re.match(r"^(RC|R|C)(\d)", name)
    if m is None:
        return "other"
    return f"{m.group(1)}{m.group(2)}"


def run_ours(path: Path, *, time_limit: float, seed: int, engine: str) -> tuple[float | None, str]:
    from cloud.planning import plan
    from cloud.planning.formats import read_vrplib

    problem = read_vrplib(path)
    result = plan(
        problem,
        time_limit=time_limit,
        seed=seed,
        engine=engine,  # type: ignore[arg-type]
    )
    if not result.is_feasible():
        return (
            None,
            f"{result.engine}: infeasible ({(result.violations or result.required_dropped)[:2]})",
        )
    return result.distance / 10, result.engine


def run_pyvrp(path: Path, *, time_limit: float, seed: int) -> tuple[float | None, str]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    data = pyvrp.read(str(path), round_func="dimacs")
    result = pyvrp.solve(data, MaxRuntime(time_limit), seed=seed, display=False)
    if not result.is_feasible():
        return None, "pyvrp: infeasible"
    return result.cost() / 10, "pyvrp"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--time-limit", type=float, required=True, help="seconds per instance per engine"
    )
    ap.add_argument("--instances", nargs="*", default=None, help="names, e.g. C101 RC1_10_1")
    ap.add_argument("--set", choices=("all", "solomon", "gh"), default="all")
    ap.add_argument("--engines", default="ours,pyvrp")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ours-engine", choices=("auto", "ortools", "hybrid"), default="auto")
    args = ap.parse_args(argv)
    bks = _bks()
    if args.instances:
        unknown = [i for i in args.instances if i not in bks]
        if unknown:
            ap.error(f"unknown instances {unknown}")
        names = list(args.instances)
    else:
        names = [
            n
            for n, (_, _, customers) in bks.items()
            if (klass(n) != "gh" and args.set in ("all", "solomon"))
            or (klass(n) == "gh" and customers == 1000 and args.set in ("all", "gh"))
        ]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ("ours", "pyvrp"):
            ap.error(f"unknown engine {e!r}")
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    began = time.monotonic()
    for name in names:
        path, best, _ = bks[name]
        row: dict[str, Any] = {"instance": name, "class": klass(name), "bks": best}
        for e in engines:
            t0 = time.monotonic()
            try:
                if e == "ours":
                    cost, how = run_ours(
                        path, time_limit=args.time_limit, seed=args.seed, engine=args.ours_engine
                    )
                else:
                    cost, how = run_pyvrp(path, time_limit=args.time_limit, seed=args.seed)
            except Exception as err:  # a failed run is a result to report, not a crash of the bench
                cost, how = None, f"error: {err}"
            gap = None if cost is None else round(100 * (cost / best - 1), 3)
            row[e] = {
                "cost": cost,
                "gap_pct": gap,
                "how": how,
                "s": round(time.monotonic() - t0, 1),
            }
            print(
                f"{name:9s} {e:5s} cost {cost} gap {gap}% ({how}, {row[e]['s']} s, load {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
        rows.append(row)
    out: dict[str, Any] = {
        "time_limit_s": args.time_limit,
        "seed": args.seed,
        "instances": len(rows),
    }
    for e in ("ours", "pyvrp"):
        gaps = [r[e]["gap_pct"] for r in rows if e in r and r[e]["gap_pct"] is not None]
        out[f"{e}_mean_gap_pct"] = round(mean(gaps), 3) if gaps else None
        classes: dict[str, list[float]] = {}
        for r in rows:
            if e in r and r[e]["gap_pct"] is not None:
                classes.setdefault(r["class"], []).append(r[e]["gap_pct"])
        out[f"{e}_classes"] = {c: round(mean(g), 3) for c, g in sorted(classes.items())}
        out[f"{e}_missing"] = [r["instance"] for r in rows if e in r and r[e]["gap_pct"] is None]
    out["rows"] = rows
    out["wall_s"] = round(time.monotonic() - began, 1)
    out["loadavg_start"] = [round(x, 2) for x in load_before]
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
