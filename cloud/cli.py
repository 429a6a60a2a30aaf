"""Handlers of the hub's subcommands (``lastmile hub serve``, ``lastmile hub ingest``,
``lastmile demo``); the parser lives in
:mod:`edge.cli`, which imports this module only when one of them runs.

Ctrl-C and SIGTERM stop cleanly (exit status 0, no traceback, via
:func:`edge.runner.run_until_signal`); an invalid config exits 2 (reported by :mod:`edge.cli`); a
hub that cannot start (port taken, broker missing) prints why and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from cloud.errors import HubError
from edge.runner import run_until_signal
from edge.settings import load_settings


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> int:
    try:
        return run_until_signal(main)
    except HubError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1


def serve(args: argparse.Namespace) -> int:
    from cloud.hub import run_hub
    from cloud.settings import HubSettings
    from edge.sdnotify import ServiceWatchdog, supervised

    settings = load_settings(HubSettings, args.config)
    watchdog = ServiceWatchdog.from_environ(os.environ)

    async def main() -> None:
        started = asyncio.Event()  # the API listens and the MQTT sessions are starting
        await supervised(run_hub(settings, started=started), watchdog=watchdog, ready=started.wait)

    return _run(main)


def ingest(args: argparse.Namespace) -> int:
    """``lastmile hub ingest --config F [--client-id ID]``: one ingest worker as its own process."""
    from cloud.gc_tuning import tune_for_bulk_work
    from cloud.hub import run_ingest
    from cloud.settings import HubSettings

    settings = load_settings(HubSettings, args.config)
    if settings.ingest_group is None:
        print(
            "lastmile: 'hub ingest' runs one of several workers that share a subscription: set "
            "ingest_group (e.g. \"hub\") in the config, for 'hub serve' too",
            file=sys.stderr,
        )
        return 2
    client_id: str | None = getattr(args, "client_id", None)
    tune_for_bulk_work()  # this process only ingests (see cloud.gc_tuning)
    return _run(lambda: run_ingest(settings, client_id=client_id))


def demo(args: argparse.Namespace) -> int:
    from cloud.demo import DemoOptions, run_demo

    options = DemoOptions(
        port=args.port,
        vans=args.vans,
        lockers=args.lockers,
        compartments=args.compartments,
        state_dir=args.state_dir,
    )
    return _run(lambda: run_demo(options))


def hash_password(args: argparse.Namespace) -> int:
    """``lastmile hub hash-password``: a scrypt hash for ``users.<name>.password_hash``.

    Asks twice on a terminal (without echo); otherwise reads one line from stdin, so scripts can
    pipe a generated password in. The password never appears in argv (``ps`` would show it).
    """
    import getpass

    from cloud.api.passwords import hash_password as make_hash

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("lastmile: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("lastmile: the password is empty", file=sys.stderr)
        return 2
    print(make_hash(password))
    return 0
