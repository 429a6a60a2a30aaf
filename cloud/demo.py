"""``lastmile demo``: the whole system on one machine, on embedded defaults.

A real Mosquitto on a free loopback port, the hub (ingest + API) on ``--port``, simulated vans driving
street grids, and simulated lockers (mock GPIO pins, simulated people opening the doors). A simulated
customer desk creates parcels through the real API and later types their codes on the lockers'
keypads, so the demo shows the whole loop without anyone typing (see :mod:`cloud.demo_desk`). A person can type too:
``<locker-id> <code>`` and Enter.

Everything runs in this one process (plus the broker), so Ctrl-C stops it all in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import math
import random
import secrets
import shutil
import socket
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cloud.api.passwords import hash_password
from cloud.broker import MosquittoBroker
from cloud.demo_desk import Morning, run_desk
from cloud.demo_routes import DemoSites, run_dispatcher
from cloud.errors import HubError
from cloud.fleet import FleetSettings, VehicleProfile
from cloud.hub import run_hub
from cloud.settings import HubSettings, Role, UserSettings
from edge.app import run_vehicle
from edge.config import VehicleSettings
from edge.gnss.sim import SimGnssSettings
from edge.settings import MqttSettings
from locker.app import run_locker
from locker.errors import KeypadError
from locker.keypad import SimKeypad
from locker.settings import LockerSettings
from protocol.codes import derive_courier_key, derive_locker_key
from protocol.commands import derive_command_key
from protocol.topics import DeviceKind

log = logging.getLogger(__name__)

DEPOT = (52.3702, 4.8952)
#: The demo's two depots: the north one at the centre of the vans' streets, the south one nearby.
DEPOTS = {"north": DEPOT, "south": (52.3652, 4.9012)}  # ~700 m apart


@dataclass(frozen=True)
class DemoOptions:
    port: int = 8000
    vans: int = 3
    lockers: int = 2
    compartments: int = 12
    state_dir: Path = Path("var/demo")
    customers: bool = True
    #: This van is held up this long at each stop of its route, so it falls behind its plan and
    #: the dispatcher re-plans without it within the first few minutes (None: nobody is).
    held_up_van: str | None = "van-1"
    held_up_s: float = 420.0


def locker_sites(n: int) -> dict[str, tuple[float, float]]:
    """Where the demo's lockers stand on the dashboard's map: on a ring around the depot, inside
    the streets the vans drive."""
    return {
        f"locker-{i}": (
            round(DEPOT[0] + 0.004 * math.cos(2 * math.pi * i / max(n, 1)), 6),
            round(DEPOT[1] + 0.006 * math.sin(2 * math.pi * i / max(n, 1)), 6),
        )
        for i in range(1, n + 1)
    }


def demo_fleet(*, vans: int, lockers: int) -> FleetSettings:
    """Two depots, odd vans and lockers in the north, even ones in the south; every third van
    electric, so KPIs per depot and CO2 per parcel differ."""
    return FleetSettings(
        default_depot="north",
        vehicles={
            f"van-{i}": VehicleProfile(
                type="e_van" if i % 3 == 0 else "diesel_van", depot="north" if i % 2 else "south"
            )
            for i in range(1, vans + 1)
        },
        lockers={f"locker-{i}": "north" if i % 2 else "south" for i in range(1, lockers + 1)},
    )


def demo_sites(fleet: FleetSettings, *, vans: list[str]) -> DemoSites:
    """The sites the dispatcher sets through ``PUT /depots/...``: the same depots, van types and
    locker depots as ``[fleet]``, with the positions of :data:`DEPOTS` and :func:`locker_sites`."""
    positions = locker_sites(len(fleet.lockers))
    return DemoSites(
        depots=DEPOTS,
        vans={v: (fleet.depot_of_vehicle(v), fleet.type_of_vehicle(v)) for v in vans},
        lockers={lk: (fleet.depot_of_locker(lk), positions[lk]) for lk in sorted(fleet.lockers)},
    )


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise HubError(
                f"port {port} is already in use; pick another with 'lastmile demo --port N'"
            ) from None


async def _stdin_keypads(keypads: dict[str, SimKeypad]) -> None:
    """Lines '<locker-id> <code>' from the terminal go to that locker's keypad.

    Read on a daemon thread: a thread blocked in readline cannot be cancelled, and the loop's default
    executor would hold up Ctrl-C until someone pressed Enter.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        with contextlib.suppress(RuntimeError, OSError, ValueError):  # loop closed / stdin gone
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line)

    threading.Thread(target=read, name="demo-stdin", daemon=True).start()
    while True:
        parts = (await lines.get()).split()
        if len(parts) != 2 or parts[0] not in keypads:
            print(f"type '<locker-id> <code>' with a locker id of {sorted(keypads)}")
            continue
        try:
            keypads[parts[0]].press(parts[1].rstrip("#") + "#")
        except KeypadError as err:
            print(f"not typed: {err}")


async def run_demo(options: DemoOptions) -> None:
    _check_port_free(options.port)
    state = options.state_dir.resolve()
    shutil.rmtree(state, ignore_errors=True)  # every demo starts a fresh day
    state.mkdir(parents=True)

    master_secret = secrets.token_urlsafe(48)
    api_key = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(12)  # of the demo user "demo" (ops), for bearer tokens
    password_hash = await asyncio.to_thread(hash_password, password)
    broker = MosquittoBroker(data_dir=state / "mosquitto", persistence=True)
    await asyncio.to_thread(broker.start)
    try:
        mqtt = MqttSettings(host=broker.host, port=broker.port, reconnect_max_s=5)
        fleet = demo_fleet(vans=options.vans, lockers=options.lockers)
        hub = HubSettings(
            database_url=f"sqlite:///{state / 'hub.db'}",
            mqtt=mqtt,
            http_port=options.port,
            code_master_secret=master_secret,
            api_keys={hashlib.sha256(api_key.encode()).hexdigest(): Role.OPS},
            users={"demo": UserSettings(role=Role.OPS, password_hash=password_hash)},
            jwt_secret=secrets.token_urlsafe(48),
            map_locker_sites=locker_sites(options.lockers),
            fleet=fleet,
            # The demo desk receives its webhooks on loopback: let that one network in.
            webhook_allow_networks=[ipaddress.ip_network("127.0.0.0/8")],
        )
        vans = [
            VehicleSettings(
                device_id=f"van-{i}",
                mqtt=mqtt,
                state_dir=state / "vans",
                sim=SimGnssSettings(
                    origin_lat=DEPOTS[fleet.depot_of_vehicle(f"van-{i}")][0],
                    origin_lon=DEPOTS[fleet.depot_of_vehicle(f"van-{i}")][1],
                    seed=i,
                    route_dwell_s=options.held_up_s if f"van-{i}" == options.held_up_van else None,
                ),
                command_key=derive_command_key(
                    master_secret.encode(), f"van-{i}", kind=DeviceKind.VEHICLE
                ).hex(),
            )
            for i in range(1, options.vans + 1)
        ]
        lockers = [
            LockerSettings(
                device_id=f"locker-{i}",
                mqtt=mqtt,
                state_dir=state / "lockers",
                compartments=options.compartments,
                code_key=derive_locker_key(master_secret.encode(), f"locker-{i}").hex(),
                courier_key=derive_courier_key(master_secret.encode(), f"locker-{i}").hex(),
                command_key=derive_command_key(master_secret.encode(), f"locker-{i}").hex(),
                simulate_people=True,
            )
            for i in range(1, options.lockers + 1)
        ]
        keypads = {s.device_id: SimKeypad() for s in lockers}
        hub_started = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_hub(hub, started=hub_started), name="hub")
            await hub_started.wait()
            for v in vans:
                tg.create_task(run_vehicle(v), name=v.device_id)
            for lk in lockers:
                tg.create_task(run_locker(lk, keypad=keypads[lk.device_id]), name=lk.device_id)
            api = f"http://127.0.0.1:{options.port}"
            sites = demo_sites(fleet, vans=[v.device_id for v in vans])
            morning = Morning(
                depots=sites.depots,
                homes={
                    d: 3 * sum(1 for dv, _ in sites.vans.values() if dv == d) for d in sites.depots
                },
                lockers=tuple(sites.lockers),
                ready=asyncio.Event(),
                planned=asyncio.Event(),
            )
            if options.customers:
                tg.create_task(
                    run_desk(
                        api=api,
                        api_key=api_key,
                        keypads=keypads,
                        rng=random.Random(7),
                        vans=tuple(v.device_id for v in vans),
                        morning=morning,
                    ),
                    name="demo-desk",
                )
            # Plans each depot's day from the desk's parcels, dispatches the routes, delivers at
            # each stop reached, re-plans when a van falls behind.
            tg.create_task(
                run_dispatcher(
                    api=api,
                    api_key=api_key,
                    sites=sites,
                    parcels_ready=morning.ready if options.customers else None,
                    planned=morning.planned,
                    keypads=keypads,
                ),
                name="demo-dispatcher",
            )
            if sys.stdin.isatty():
                tg.create_task(_stdin_keypads(keypads), name="demo-stdin")
            _banner(api=api, api_key=api_key, broker=broker, lockers=sorted(keypads))
            _sign_in_banner(api=api, password=password)
    finally:
        await asyncio.to_thread(broker.close)


def _banner(*, api: str, api_key: str, broker: MosquittoBroker, lockers: list[str]) -> None:
    auth = f'-H "Authorization: Bearer {api_key}"'
    print(
        f"""
Lastmile demo is running.
  Dashboard           {api}/   (sign in with the API key below)
  API docs (OpenAPI)  {api}/docs
  Vans                curl {auth} {api}/api/v1/vehicles
  A van's track       curl {auth} {api}/api/v1/vehicles/van-1/positions
  Command a van       curl {auth} -H 'Content-Type: application/json' \\
                           -d '{{"name": "send_position"}}' {api}/api/v1/vehicles/van-1/commands
  Lockers             curl {auth} {api}/api/v1/lockers
  New parcel          curl {auth} -H 'Content-Type: application/json' \\
                           -d '{{"locker_id": "{lockers[0]}"}}' {api}/api/v1/parcels
  Broker              mqtt://{broker.host}:{broker.port}  (mosquitto_sub -p {broker.port} -t '#' -v)
  API key (ops)       {api_key}

Type '<locker-id> <code>' and Enter to use a locker's keypad ({", ".join(lockers)}).
A simulated desk sends a parcel to a locker every ~20 s: the courier types the courier code, the
pickup code arrives by signed webhook and the customer types it; now and then nobody comes, the
code expires and the courier takes the parcel back with a return code.
Ctrl-C stops everything.
""",
        flush=True,
    )


def _sign_in_banner(*, api: str, password: str) -> None:
    today = datetime.now(UTC).date()
    print(
        f"""Bearer tokens: user "demo" (ops), password {password}
  Sign in             curl -d 'username=demo&password={password}' {api}/api/v1/auth/token
  A van's trips       curl -H "Authorization: Bearer <access_token>" \\
                           '{api}/api/v1/vehicles/van-1/trips?from={today}T00:00:00Z&to={today}T23:59:59Z'
  Today's KPIs        curl -H "Authorization: Bearer <access_token>" '{api}/api/v1/kpis?from={today}'
""",
        flush=True,
    )
