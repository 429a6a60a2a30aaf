"""Composition root of the van agent: settings in, a running agent out."""

from __future__ import annotations

from edge.agent import VehicleAgent
from edge.config import VehicleSettings
from edge.gnss.source import GnssSource
from edge.outbox import Outbox


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


async def run_vehicle(settings: VehicleSettings, *, gnss: GnssSource | None = None) -> None:
    """Run one van agent until cancelled."""
    outbox = Outbox(settings.state_dir / f"{settings.device_id}-outbox.db")
    try:
        agent = VehicleAgent(settings=settings, gnss=gnss or build_gnss(settings), outbox=outbox)
        await agent.run()
    finally:
        outbox.close()
