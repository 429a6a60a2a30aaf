"""GNSS through gpsd, speaking its JSON protocol directly over an asyncio TCP connection.

Why no client library: gpsd-py3 is unmaintained, blocking, and its ``speed()`` reports 0 below gpsd's
error estimate (it read 0 while the car did 15.6 m/s); gpsdclient is correct but blocking, so it would
need a thread per source plus a way to interrupt its socket read on shutdown. The protocol we need is
small and stable (gpsd_json(5)): send one ``?WATCH`` line, then read one JSON object per line. Doing it
on the event loop gives cancellation, timeouts and reconnects for free and adds no dependency.

What becomes a :class:`~protocol.messages.Position`: a TPV report with ``mode >= 2`` and a ``lat``/
``lon`` (gpsd sends TPVs with mode 3 but no position right after start). Speed comes from ``speed``
(already m/s), heading from ``track``, altitude from ``altHAE`` (gpsd >= 3.20) or ``alt``, and HDOP and
satellites used from the latest SKY report. Everything else is counted in :class:`GpsdStats` and
dropped; a malformed line is never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from edge.backoff import Backoff
from edge.gnss.health import GnssState, HealthCell, SourceHealth
from edge.gnss.settings import GpsdSettings
from protocol.messages import Position

log = logging.getLogger(__name__)

WATCH: Final = b'?WATCH={"enable":true,"json":true}\n'
LINE_LIMIT: Final = 1 << 20  # a SKY with 100+ satellites is a few kB; anything near this is junk


@dataclass
class GpsdStats:
    """Running totals since the source was created."""

    connects: int = 0
    lines: int = 0
    fixes: int = 0
    no_fix: int = 0
    """TPV reports without a usable position (mode < 2, no lat/lon, or no time)."""
    malformed: int = 0
    """Lines that are not a JSON object, or too long."""
    invalid: int = 0
    """TPVs whose values a Position refuses (e.g. latitude out of range)."""
    repeats: int = 0
    """TPVs for an epoch already reported: gpsd's NMEA driver reports once per sentence it reads."""


def _num(value: Any) -> float | None:
    """A finite JSON number, or None (JSON booleans are ints in Python; they are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


class GpsdGnss:
    """A :class:`~edge.gnss.source.GnssSource` fed by a gpsd daemon."""

    def __init__(self, settings: GpsdSettings, *, backoff: Backoff | None = None) -> None:
        self._s = settings
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self._health = HealthCell()
        self._hdop: float | None = None
        self._sats: int | None = None
        self._last_t: datetime | None = None
        self.stats = GpsdStats()

    @property
    def health(self) -> SourceHealth:
        return self._health.value

    def health_changes(self) -> AsyncIterator[SourceHealth]:
        return self._health.changes()

    def counters(self) -> Mapping[str, int]:
        return asdict(self.stats)

    async def fixes(self) -> AsyncIterator[Position]:
        """Yield fixes forever; reconnect with backoff whenever gpsd is unreachable or goes away."""
        where = f"gpsd at {self._s.host}:{self._s.port}"
        while True:
            try:
                async with asyncio.timeout(self._s.stale_after_s):
                    reader, writer = await asyncio.open_connection(
                        self._s.host, self._s.port, limit=LINE_LIMIT
                    )
            except (OSError, TimeoutError) as err:
                self._lost(f"cannot connect to {where}: {err or type(err).__name__}")
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self.stats.connects += 1
            log.info("connected to %s", where)
            try:
                writer.write(WATCH)
                await writer.drain()
                async with aclosing(self._reports(reader)) as reports:
                    async for fix in reports:
                        yield fix
                self._lost(f"{where} closed the connection")
            except OSError as err:
                self._lost(f"connection to {where} lost: {err or type(err).__name__}")
            finally:
                writer.close()
            await asyncio.sleep(self._backoff.next_delay())

    def _lost(self, why: str) -> None:
        if self._health.set(GnssState.DISCONNECTED, why):
            log.warning("%s; reconnecting", why)

    async def _reports(self, reader: asyncio.StreamReader) -> AsyncGenerator[Position, None]:
        """Fixes from one connection until gpsd closes it (OSError if it breaks)."""
        while True:
            try:
                async with asyncio.timeout(self._s.stale_after_s):
                    line = await reader.readline()
            except TimeoutError:
                self._health.set(
                    GnssState.NO_FIX, f"no report from gpsd for {self._s.stale_after_s:g} s"
                )
                continue
            except ValueError:  # longer than LINE_LIMIT: readline dropped it
                self.stats.malformed += 1
                continue
            if not line:
                return
            self.stats.lines += 1
            self._backoff.reset()  # gpsd is talking: the next outage starts from a short delay
            fix = self._handle_line(line)
            if fix is not None:
                yield fix

    def _handle_line(self, line: bytes) -> Position | None:
        """Digest one line of gpsd output; return a Position when it is a usable TPV."""
        try:
            msg = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self.stats.malformed += 1
            return None
        if not isinstance(msg, dict):
            self.stats.malformed += 1
            return None
        match msg.get("class"):
            case "TPV":
                return self._tpv(msg)
            case "SKY":
                self._sky(msg)
            case "ERROR":
                log.warning("gpsd: %s", msg.get("message"))
        return None

    def _sky(self, msg: dict[str, Any]) -> None:
        hdop = _num(msg.get("hdop"))
        if hdop is not None and hdop >= 0:
            self._hdop = hdop
        used = msg.get("uSat")
        if isinstance(used, int) and not isinstance(used, bool) and 0 <= used <= 255:
            self._sats = used
        elif isinstance(msg.get("satellites"), list):
            self._sats = min(
                255,
                sum(1 for s in msg["satellites"] if isinstance(s, dict) and s.get("used") is True),
            )

    def _tpv(self, msg: dict[str, Any]) -> Position | None:
        mode = msg.get("mode")
        lat, lon = _num(msg.get("lat")), _num(msg.get("lon"))
        if not isinstance(mode, int) or mode < 2:
            self.stats.no_fix += 1
            self._health.set(GnssState.NO_FIX, "receiver has no fix")
            return None
        if lat is None or lon is None:
            self.stats.no_fix += 1
            return None
        try:
            t = datetime.fromisoformat(str(msg["time"]))
        except (KeyError, ValueError):
            self.stats.no_fix += 1
            return None
        if t == self._last_t:
            self.stats.repeats += 1
            return None
        track = _num(msg.get("track"))
        alt = _num(msg.get("altHAE"))
        try:
            fix = Position(
                t=t,
                lat=lat,
                lon=lon,
                speed_mps=_num(msg.get("speed")),
                heading_deg=None if track is None else track % 360,
                alt_m=alt if alt is not None else _num(msg.get("alt")),
                hdop=self._hdop,
                sats=self._sats,
                fix="3d" if mode >= 3 else "2d",
            )
        except ValidationError:
            self.stats.invalid += 1
            return None
        self._last_t = t
        self.stats.fixes += 1
        self._health.set(GnssState.OK)
        return fix
