"""``lastmile``: one command for every program. Each subcommand imports only what it runs, so a van's
Pi with only the ``edge`` extra never loads the hub's dependencies.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from edge.errors import ConfigError, EdgeError
from edge.runner import run_until_signal


def _locker_run(args: argparse.Namespace) -> int:
    from locker.cli import run

    return run(args)


def _edge_run(args: argparse.Namespace) -> int:
    from edge.app import run_vehicle
    from edge.config import VehicleSettings
    from edge.sdnotify import ServiceWatchdog
    from edge.settings import load_settings

    settings = load_settings(VehicleSettings, args.config)
    watchdog = ServiceWatchdog.from_environ(os.environ)
    return run_until_signal(
        lambda: run_vehicle(settings, config_path=args.config, watchdog=watchdog)
    )


def _hub_serve(args: argparse.Namespace) -> int:
    from cloud.cli import serve

    return serve(args)


def _demo(args: argparse.Namespace) -> int:
    from cloud.cli import demo

    return demo(args)


def _hub_ingest(args: argparse.Namespace) -> int:
    from cloud.cli import ingest

    return ingest(args)


def _hub_hash_password(args: argparse.Namespace) -> int:
    from cloud.cli import hash_password

    return hash_password(args)


def _plan(args: argparse.Namespace) -> int:
    from cloud.planning.cli import run  # hub-side: needs the cloud extra (OR-Tools, PyVRP)

    return run(args)


def _provision(args: argparse.Namespace) -> int:
    from cloud import provision_cli  # the broker host's side: a Pi never imports it

    handler: Callable[[argparse.Namespace], int] = getattr(provision_cli, args.action)
    return handler(args)


def _kpis_rebuild(args: argparse.Namespace) -> int:
    from cloud.kpi_cli import rebuild  # hub-side: needs the cloud extra (SQLAlchemy)

    return rebuild(args)


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    # Declared here, not imported from cloud.planning.cli: building the parser must not load the
    # hub's dependencies on a van's Pi.
    parser.add_argument("file", type=Path, help="a Solomon/VRPLIB file or our .json")
    parser.add_argument("--time-limit", type=float, required=True, help="seconds of search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("auto", "ortools", "pyvrp", "hybrid"), default="auto")
    parser.add_argument("--geojson", type=Path, default=None, help="write the routes as GeoJSON")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lastmile", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="run broker, hub, simulated vans and lockers on this machine"
    )
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of the hub (default 8000)")
    demo.add_argument("--vans", type=int, default=3)
    demo.add_argument("--lockers", type=int, default=2)
    demo.add_argument("--compartments", type=int, default=12)
    demo.add_argument("--state-dir", type=Path, default=Path("var/demo"))
    demo.set_defaults(handler=_demo)

    for name, verb, handler, what in (
        ("edge", "run", _edge_run, "the van agent"),
        ("locker", "run", _locker_run, "the parcel-locker agent"),
        ("hub", "serve", _hub_serve, "the cloud hub (ingest + API)"),
    ):
        group = sub.add_parser(name, help=f"{what}")
        verbs = group.add_subparsers(dest="verb", required=True)
        cmd = verbs.add_parser(verb, help=f"run {what}")
        cmd.add_argument("--config", type=Path, required=True, help="TOML settings file")
        cmd.set_defaults(handler=handler)
        if name == "hub":
            worker = verbs.add_parser(
                "ingest", help="run one ingest worker process (several share the load)"
            )
            worker.add_argument("--config", type=Path, required=True, help="TOML settings file")
            worker.add_argument(
                "--client-id",
                default=None,
                help="MQTT client id, unique per worker and stable across restarts "
                "(default: <client_id>-ingest)",
            )
            worker.set_defaults(handler=_hub_ingest)
            hasher = verbs.add_parser(
                "hash-password",
                help="print a password hash for 'users' in the hub's settings (reads the "
                "password from the terminal, or one line of stdin)",
            )
            hasher.set_defaults(handler=_hub_hash_password)

    planner = sub.add_parser("plan", help="plan routes for a VRPLIB/Solomon file or our JSON")
    _plan_arguments(planner)
    planner.set_defaults(handler=_plan)

    prov = sub.add_parser("provision", help="device accounts and bundles, on the broker host")
    actions = prov.add_subparsers(dest="verb", required=True)
    for verb, action, what in (
        ("vehicle", "provision_device", "create a van's broker account and config bundle"),
        ("locker", "provision_device", "create a locker's broker account and config bundle"),
        ("rotate", "rotate_device", "new password and bundle for a device"),
        ("revoke", "revoke_device", "remove a device's broker account"),
    ):
        cmd = actions.add_parser(verb, help=what)
        cmd.add_argument("device_id")
        cmd.add_argument(
            "--broker-dir",
            type=Path,
            required=True,
            help="passwd, acl, ca.crt (/etc/mosquitto/lastmile)",
        )
        if verb != "revoke":
            cmd.add_argument(
                "--out", type=Path, required=True, help="bundles go to OUT/<device_id>/"
            )
            cmd.add_argument("--mqtt-host", required=True, help="the broker name devices dial")
            cmd.add_argument("--mqtt-port", type=int, default=8883)
            cmd.add_argument("--install-dir", type=Path, default=Path("/etc/lastmile"))
        hub_db = cmd.add_mutually_exclusive_group()
        hub_db.add_argument("--database-url", help="also record it in the hub's device registry")
        hub_db.add_argument("--hub-config", type=Path, help="as --database-url, from hub.toml")
        cmd.set_defaults(handler=_provision, action=action, kind=verb)
    kpis = sub.add_parser("kpis", help="the hub's materialised daily KPIs")
    kpi_verbs = kpis.add_subparsers(dest="verb", required=True)
    rebuild = kpi_verbs.add_parser(
        "rebuild", help="recompute and store the KPIs of closed days (after late data or a fix)"
    )
    rebuild.add_argument("--config", type=Path, required=True, help="the hub's hub.toml")
    rebuild.add_argument("--day", required=True, help="first UTC day, YYYY-MM-DD")
    rebuild.add_argument("--to", help="last UTC day, inclusive (default: --day)")
    rebuild.set_defaults(handler=_kpis_rebuild)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Alembic narrates every plugin it loads at INFO; our own migrate() logs the outcome.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # httpx logs every request at INFO: the webhook sender and the demo's desk would drown
        # the agents' own lines. Failures are logged by our callers.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        code: int = args.handler(args)
    except ConfigError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 2
    except EdgeError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        print(
            f"lastmile: {err.name} is not installed; install the extra for this program, e.g. "
            "pip install 'lastmile[cloud]'",
            file=sys.stderr,
        )
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
