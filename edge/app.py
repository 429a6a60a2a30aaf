"""Composition root of the van agent: settings in, a running agent out."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from edge.agent import SignalSource, VehicleAgent
from edge.config import VehicleSettings
from edge.gnss.source import GnssSource
from edge.nonces import DurableNonces
from edge.outbox import Outbox
from edge.routes import DurableRoutes
from edge.sdnotify import OFFLINE_READY_S, ServiceWatchdog, supervised
from edge.settings import load_settings

SIMULATED_DRIVE_S = 7 * 24 * 3600.0
"""How long the virtual bus's simulated drive lasts: a week, i.e. as long as anyone runs a demo. The
frames are generated lazily, so the length costs nothing."""


def build_gnss(settings: VehicleSettings) -> GnssSource:
    """The receiver backend ``settings.gnss`` names. Backends are imported only when chosen, so a
    van without pyserial/pynmeagps installed can still run gpsd or the simulator."""
    match settings.gnss:
        case "sim":
            from edge.gnss.sim import SimulatedGnss

            return SimulatedGnss(settings.sim)
        case "gpsd":
            from edge.gnss.gpsd import GpsdGnss

            return GpsdGnss(settings.gpsd)
        case "nmea":
            from edge.gnss.nmea import NmeaSerialGnss

            return NmeaSerialGnss(settings.nmea)


def build_signal_sources(settings: VehicleSettings) -> dict[str, SignalSource]:
    """The configured vehicle-bus sources, keyed by their name in the status (``can``, ``obd``).

    python-can/cantools and python-OBD are imported only for a configured section. Raises
    :class:`~edge.can.CanConfigError` / :class:`~edge.obd.ObdConfigError` for a DBC or PID list that
    does not fit: a deployment mistake, refused before anything runs.
    """
    sources: dict[str, SignalSource] = {}
    if settings.can is not None:
        from edge.can.source import CanSource

        sources["can"] = CanSource(settings=settings.can)
    if settings.obd is not None:
        from edge.obd.source import ObdSource

        sources["obd"] = ObdSource(settings=settings.obd)
    return sources


@contextlib.contextmanager
def simulated_bus(settings: VehicleSettings) -> Iterator[None]:
    """With ``[can] interface = "virtual"``, play a simulated van's drive (:mod:`edge.can.player`)
    onto the virtual channel for as long as the block runs, so such a config works standalone: the
    CAN source reads it exactly as it would read ``can0`` in a van. Does nothing otherwise.

    The drive is seeded with ``sim.seed`` and timestamped with the wall clock. The DBC must define
    the messages the player simulates (the Prius DBC in ``tests/data/can/`` does); raises
    :class:`~edge.can.CanConfigError` naming the missing ones.
    """
    can_settings = settings.can
    if can_settings is None or can_settings.interface != "virtual":
        yield
        return
    from edge.can.decoder import load_dbc
    from edge.can.errors import CanConfigError
    from edge.can.player import DEFAULT_RATES_HZ, FramePlayer, drive_frames

    db = load_dbc(str(can_settings.dbc_file))
    known = {m.name for m in db.messages}
    missing = [f"the simulated drive needs message {n}" for n in DEFAULT_RATES_HZ if n not in known]
    if missing:
        raise CanConfigError(str(can_settings.dbc_file), missing)
    frames = drive_frames(
        db, seed=settings.sim.seed, duration_s=SIMULATED_DRIVE_S, start_t=time.time()
    )
    with FramePlayer(channel=can_settings.channel, frames=frames, time_scale=1.0):
        yield


async def run_vehicle(
    settings: VehicleSettings,
    *,
    gnss: GnssSource | None = None,
    config_path: Path | None = None,
    watchdog: ServiceWatchdog | None = None,
) -> None:
    """Run one van agent until cancelled. With ``config_path`` the ``reload_settings`` command
    re-reads that file (environment overrides still apply); ``watchdog`` hears READY once the
    uplink is connected (or serving offline), then a WATCHDOG=1 ping from this loop
    (:mod:`edge.sdnotify`)."""
    sources = build_signal_sources(settings)
    outbox = Outbox(settings.state_dir / f"{settings.device_id}-outbox.db", limits=settings.outbox)
    nonces = DurableNonces(
        settings.state_dir / f"{settings.device_id}-nonces.db", clock=lambda: datetime.now(UTC)
    )
    routes = DurableRoutes(settings.state_dir / f"{settings.device_id}-route.db")
    reload = None if config_path is None else functools.partial(_reload, config_path)
    try:
        agent = VehicleAgent(
            settings=settings,
            gnss=gnss or build_gnss(settings),
            outbox=outbox,
            signal_sources=sources,
            nonces=nonces,
            reload_settings=reload,
            routes=routes,
        )
        with simulated_bus(settings):
            await supervised(
                agent.run(),
                watchdog=watchdog,
                ready=agent.uplink.wait_connected,
                ready_timeout_s=OFFLINE_READY_S,
            )
    finally:
        routes.close()
        nonces.close()
        outbox.close()


def _reload(path: Path) -> VehicleSettings:
    return load_settings(VehicleSettings, path)
