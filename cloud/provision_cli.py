"""Handlers of ``lastmile provision ...``; the parser lives in :mod:`edge.cli`.

Prints where the bundle went and what to do next, never the password. Exit status 0 on success,
1 when the broker's files could not be changed (the reason is printed).

Given the hub's database (``--database-url``, or ``--hub-config`` for the hub's own settings file),
each action is also recorded in the device registry (:mod:`cloud.registry`). The database is
reached (and migrated, as the hub does at start) before the broker's files change, so an
unreachable database changes nothing; should recording fail after the broker changed, the message
says so and how to catch up.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cloud.db import make_engine, make_session_factory, migrate
from cloud.provision import ProvisionError, provision, revoke, rotate
from cloud.registry import record_provisioned, record_revoked, record_rotated
from cloud.services.webhook_setup import secret_box
from cloud.settings import HubSettings
from edge.errors import ConfigError
from edge.settings import load_settings
from protocol.topics import DeviceKind


class Recorder(Protocol):
    def __call__(
        self, session: Session, *, kind: DeviceKind, device_id: str, now: datetime
    ) -> object: ...


class _Registry:
    """The hub database named on the command line, or nothing to record in."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Registry:
        """Raises ConfigError (a bad hub config), SQLAlchemyError (database unreachable)."""
        url: str | None = getattr(args, "database_url", None)
        hub_config = getattr(args, "hub_config", None)
        box = None
        if url is None and hub_config is not None:
            settings = load_settings(HubSettings, hub_config)
            url, box = settings.database_url, secret_box(settings)  # migration 0009 needs it
        if url is not None:
            migrate(url, webhook_secret_box=box)
        return cls(url)

    def record(self, action: Recorder, *, kind: DeviceKind, device_id: str) -> str | None:
        """Run ``action`` in one transaction; the error as a sentence, or None when it worked."""
        if self.url is None:
            return None
        engine = make_engine(self.url)
        try:
            session: Session
            with make_session_factory(engine)() as session, session.begin():
                action(session, kind=kind, device_id=device_id, now=datetime.now(UTC))
        except SQLAlchemyError as err:
            return (
                f"the broker was changed but the hub's device registry was not ({err}); "
                f"run the same command again once the database is back"
            )
        finally:
            engine.dispose()
        return None


def _open_registry(args: argparse.Namespace) -> _Registry | None:
    try:
        return _Registry.from_args(args)
    except ConfigError as err:
        print(f"lastmile: {err}", file=sys.stderr)
    except SQLAlchemyError as err:
        print(f"lastmile: the hub database cannot be used, nothing changed: {err}", file=sys.stderr)
    return None


def _recorded(registry: _Registry, action: Recorder, *, kind: DeviceKind, device_id: str) -> int:
    problem = registry.record(action, kind=kind, device_id=device_id)
    if problem is not None:
        print(f"lastmile: {problem}", file=sys.stderr)
        return 1
    if registry.url is not None:
        print(f"recorded {kind} {device_id} in the hub's device registry")
    return 0


_RELOAD_HINT = "apply it: systemctl reload mosquitto (or send the broker SIGHUP)"


def provision_device(args: argparse.Namespace) -> int:
    """``lastmile provision vehicle|locker ID --out DIR --broker-dir DIR --mqtt-host HOST``."""
    registry = _open_registry(args)
    if registry is None:
        return 1
    try:
        bundle = provision(
            kind=DeviceKind(args.kind),
            device_id=args.device_id,
            broker_dir=args.broker_dir,
            out_dir=args.out,
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            install_dir=args.install_dir,
        )
    except ProvisionError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
    print(
        f"provisioned {bundle.kind} {bundle.device_id}; bundle (secret, 0600): {bundle.directory}"
    )
    print(_RELOAD_HINT)
    return _recorded(registry, record_provisioned, kind=bundle.kind, device_id=bundle.device_id)


def rotate_device(args: argparse.Namespace) -> int:
    """``lastmile provision rotate ID --out DIR --broker-dir DIR --mqtt-host HOST``."""
    registry = _open_registry(args)
    if registry is None:
        return 1
    try:
        bundle = rotate(
            device_id=args.device_id,
            broker_dir=args.broker_dir,
            out_dir=args.out,
            mqtt_host=args.mqtt_host,
            mqtt_port=args.mqtt_port,
            install_dir=args.install_dir,
        )
    except ProvisionError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
    print(f"new password for {bundle.kind} {bundle.device_id}; bundle: {bundle.directory}")
    print(f"{_RELOAD_HINT}; the old password is refused from then on")
    return _recorded(registry, record_rotated, kind=bundle.kind, device_id=bundle.device_id)


def revoke_device(args: argparse.Namespace) -> int:
    """``lastmile provision revoke ID --broker-dir DIR``."""
    registry = _open_registry(args)
    if registry is None:
        return 1
    try:
        kind = revoke(device_id=args.device_id, broker_dir=args.broker_dir)
    except ProvisionError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
    print(f"revoked {kind} {args.device_id}")
    print(f"{_RELOAD_HINT}; new connections are refused from then on")
    return _recorded(registry, record_revoked, kind=kind, device_id=args.device_id)
