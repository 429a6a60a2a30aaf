"""``lastmile locker run --config F``: the locker agent as a command (wired in :mod:`edge.cli`)."""

from __future__ import annotations

import argparse
import os

from edge.runner import run_until_signal
from edge.sdnotify import ServiceWatchdog
from edge.settings import load_settings
from locker.settings import LockerSettings


def run(args: argparse.Namespace) -> int:
    from locker.app import run_locker

    settings = load_settings(LockerSettings, args.config)
    watchdog = ServiceWatchdog.from_environ(os.environ)
    return run_until_signal(lambda: run_locker(settings, watchdog=watchdog))
