"""Handlers of ``lastmile provision ...``; the parser lives in :mod:`edge.cli`.

Prints where the bundle went and what to do next, never the password. Exit status 0 on success,
1 when the broker's files could not be changed (the reason is printed).
"""

from __future__ import annotations

import argparse
import sys

from cloud.provision import ProvisionError, provision, revoke, rotate
from protocol.topics import DeviceKind

_RELOAD_HINT = "apply it: systemctl reload mosquitto (or send the broker SIGHUP)"


def provision_device(args: argparse.Namespace) -> int:
    """``lastmile provision vehicle|locker ID --out DIR --broker-dir DIR --mqtt-host HOST``."""
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
    return 0


def rotate_device(args: argparse.Namespace) -> int:
    """``lastmile provision rotate ID --out DIR --broker-dir DIR --mqtt-host HOST``."""
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
    return 0


def revoke_device(args: argparse.Namespace) -> int:
    """``lastmile provision revoke ID --broker-dir DIR``."""
    try:
        kind = revoke(device_id=args.device_id, broker_dir=args.broker_dir)
    except ProvisionError as err:
        print(f"lastmile: {err}", file=sys.stderr)
        return 1
    print(f"revoked {kind} {args.device_id}")
    print(f"{_RELOAD_HINT}; new connections are refused from then on")
    return 0
