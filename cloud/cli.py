"""``lastmile hub serve --config hub.toml``: the hub's command line.

:func:`register` adds the subcommand to a parent parser; its handler is ``args.handler``. Ctrl-C and
SIGTERM stop the hub cleanly (exit status 0, no traceback, via :func:`edge.runner.run_until_signal`);
an invalid config prints what is wrong and exits 2; an API that cannot start exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cloud.errors import HubError
from cloud.hub import run_hub
from cloud.settings import HubSettings
from edge.errors import ConfigError
from edge.runner import run_until_signal
from edge.settings import load_settings


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``hub serve`` to a parent parser's subcommands."""
    hub = subparsers.add_parser("hub", help="the cloud hub: ingest, storage, API")
    commands = hub.add_subparsers(dest="verb", required=True)
    serve = commands.add_parser("serve", help="run the hub until Ctrl-C or SIGTERM")
    serve.add_argument(
        "--config", type=Path, default=None, help="TOML file (LASTMILE_... variables override it)"
    )
    serve.set_defaults(handler=serve_command)


add_hub_parser = register


def serve_command(args: argparse.Namespace) -> int:
    """Handler of ``hub serve``; returns the process exit status."""
    try:
        settings = load_settings(HubSettings, args.config)
    except ConfigError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 2
    try:
        return run_until_signal(lambda: run_hub(settings))
    except HubError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
