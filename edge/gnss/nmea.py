"""GNSS from a receiver on a serial port speaking NMEA 0183, without gpsd in between.

Two parts, so the hard one can be tested without a port:

- :class:`NmeaDecoder` turns bytes into Positions. It splits lines, resynchronises on ``$`` (so junk
  before a sentence costs nothing but the junk), checks the checksum, parses RMC/GGA/VTG/GSA of any
  GNSS talker (GP, GN, GL, GA, GB, ...) with pynmeagps (``validate=VALCKSUM``), and combines one epoch
  (the RMC/GGA time) into one fix: position, speed and course from RMC (knots to m/s; VTG fills in
  when RMC has none), altitude, satellites and HDOP from GGA, 2D/3D from the latest GSA. An epoch is
  emitted as soon as both its RMC and GGA arrived, or when a sentence of a later epoch shows up.
  Everything it cannot use is counted in :class:`NmeaStats` by reason and skipped.
- :class:`NmeaSerialGnss` owns the port. pyserial is blocking, so a reader thread does the reads and
  hands byte chunks to the event loop with ``loop.call_soon_threadsafe``. A thread rather than
  ``loop.add_reader`` on the port's fd, because pyserial's URL ports (``socket://``, ``rfc2217://``,
  ``loop://``) and Windows ports have no selectable fd, and because pyserial's own ``read()`` is what
  turns an unplugged device into an exception; the thread costs one blocked read at a few hundred
  bytes per second. A port that fails or vanishes is reported as ``disconnected`` and reopened with
  backoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Final

import serial  # type: ignore[import-untyped]  # no stubs declared in pyproject (see report)
from pydantic import ValidationError
from pynmeagps import VALCKSUM, NMEAReader  # type: ignore[import-untyped]

from edge.backoff import Backoff
from edge.errors import SourceError
from edge.gnss.health import GnssState, HealthCell, SourceHealth
from edge.gnss.settings import NmeaSettings
from protocol.messages import Position

log = logging.getLogger(__name__)

KNOTS: Final = 1852.0 / 3600.0  # m/s per knot
TALKERS: Final = frozenset({"GP", "GN", "GL", "GA", "GB", "BD", "GQ", "GI"})
USED: Final = frozenset({"RMC", "GGA", "VTG", "GSA"})
MAX_LINE: Final = 256  # NMEA allows 82 characters; a longer run without a newline is junk
BAD_LINES_BEFORE_ALARM: Final = 20
EPOCH_IDLE_S: Final = 0.5  # receivers send an epoch as one burst, at 1-10 Hz
_SENTENCE = re.compile(rb"\$([\x20-\x7e]*)\*([0-9A-Fa-f]{2})")
_REASONS: Final = ("garbage", "truncated", "checksum", "unknown", "invalid")
# Fields pynmeagps turns into "" when it cannot parse them; a non-empty raw field that became "" is
# garbled, and an RMC with a garbled time or date would otherwise split or misdate an epoch.
_CHECKED: Final = {
    "RMC": {"time": 0, "lat": 2, "lon": 4, "date": 8},
    "GGA": {"time": 0, "lat": 1, "lon": 3},
}


@dataclass
class NmeaStats:
    """Running totals. ``rejected`` counts skipped input by reason:

    - ``garbage``: bytes that are not NMEA (noise, wrong baud rate, junk before a ``$``),
    - ``truncated``: a sentence without its ``*hh`` checksum (cut off mid-line),
    - ``checksum``: a sentence whose checksum does not match,
    - ``unknown``: a well-formed sentence this decoder does not use (GSV, GLL, ZDA, TXT, ``$P...``),
    - ``invalid``: a used sentence whose fields cannot be parsed or make no valid Position.
    """

    sentences: int = 0
    fixes: int = 0
    no_fix: int = 0
    """Epochs (or time-less RMCs) in which the receiver reported no position."""
    opens: int = 0
    last_had_fix: bool | None = None
    """Whether the most recent complete epoch had a position: what health must follow, whatever
    order epochs happen to arrive in within one read."""
    rejected: Counter[str] = field(default_factory=Counter)
    bad_in_a_row: int = 0
    """Lines rejected since the last good sentence; many in a row suggests a wrong baud rate."""

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1
        self.bad_in_a_row += 1


def _checksum(body: bytes) -> int:
    return reduce(lambda a, b: a ^ b, body, 0)


def _f(msg: Any, name: str) -> float | None:
    """A numeric field, or None: pynmeagps gives "" for empty fields."""
    value = getattr(msg, name, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _garbled(kind: str, msg: Any) -> bool:
    payload = getattr(msg, "payload", None) or []
    for attr, index in _CHECKED.get(kind, {}).items():
        raw = payload[index] if index < len(payload) else ""
        if raw and getattr(msg, attr, "") == "":
            return True
    return False


@dataclass
class _Epoch:
    time: dt.time
    rmc: Any = None
    gga: Any = None
    vtg: Any = None
    done: bool = False


class NmeaDecoder:
    """Bytes in, Positions out; pure and synchronous (see the module docstring)."""

    def __init__(self, *, stats: NmeaStats | None = None) -> None:
        self.stats = stats or NmeaStats()
        self._buf = b""
        self._epoch: _Epoch | None = None
        self._date: dt.date | None = None  # from the latest RMC; GGA carries only a time
        self._nav_mode: int | None = None  # from the latest GSA: 1 none, 2 2D, 3 3D

    def feed(self, data: bytes) -> list[Position]:
        """Add received bytes; return the fixes they completed."""
        out: list[Position] = []
        *lines, self._buf = (self._buf + data).split(b"\n")
        for line in lines:
            out += self.feed_line(line)
        if len(self._buf) > MAX_LINE:
            # Keep a possible sentence start, drop the junk in front of it.
            start = self._buf.rfind(b"$")
            keep = self._buf[start:] if start >= 0 and len(self._buf) - start <= MAX_LINE else b""
            self.stats.reject("garbage")
            self._buf = keep
        return out

    def flush(self) -> list[Position]:
        """Emit the pending epoch (the end of a recording has no later sentence to close it)."""
        return self._finish()

    def feed_line(self, raw: bytes) -> list[Position]:
        """One line without its newline; junk before the last ``$`` is counted and dropped."""
        line = raw.strip()
        if not line:
            return []
        start = line.rfind(b"$")
        if start < 0:
            self.stats.reject("garbage")
            return []
        if start > 0:
            self.stats.reject("garbage")
            line = line[start:]
        m = _SENTENCE.fullmatch(line)
        if m is None:
            bad_bytes = any(b < 0x20 or b > 0x7E for b in line)
            self.stats.reject("garbage" if bad_bytes else "truncated")
            return []
        body = m.group(1)
        if _checksum(body) != int(m.group(2), 16):
            self.stats.reject("checksum")
            return []
        address = body.split(b",", 1)[0].decode("ascii")
        talker, kind = address[:2], address[2:]
        if len(address) != 5 or talker not in TALKERS or kind not in USED:
            self.stats.reject("unknown")
            return []
        try:
            msg = NMEAReader.parse(line + b"\r\n", validate=VALCKSUM)
        except Exception:  # pynmeagps raises several unrelated types on odd fields
            msg = None
        if msg is None or _garbled(kind, msg):
            self.stats.reject("invalid")
            return []
        self.stats.sentences += 1
        self.stats.bad_in_a_row = 0
        return self._sentence(kind, msg)

    def _sentence(self, kind: str, msg: Any) -> list[Position]:
        if kind == "GSA":
            mode = getattr(msg, "navMode", None)
            if isinstance(mode, int) and not isinstance(mode, bool):
                self._nav_mode = mode
            return []
        if kind == "VTG":
            if self._epoch is not None and not self._epoch.done:
                self._epoch.vtg = msg
            return []
        out: list[Position] = []
        time = getattr(msg, "time", None)
        if kind == "RMC" and isinstance(getattr(msg, "date", None), dt.date):
            self._date = msg.date
        if not isinstance(time, dt.time):
            # No time means no fix yet ($GPRMC,,V,...). Count it once per RMC, not again for GGA.
            out += self._finish()
            if kind == "RMC":
                self.stats.no_fix += 1
                self.stats.last_had_fix = False
            return out
        if self._epoch is None or self._epoch.time != time:
            out += self._finish()
            self._epoch = _Epoch(time)
        epoch = self._epoch
        if epoch.done:
            return out  # a second talker's copy of an epoch already emitted
        if kind == "RMC":
            epoch.rmc = msg
        else:
            epoch.gga = msg
        if epoch.rmc is not None and epoch.gga is not None:
            out += self._finish()
        return out

    def _finish(self) -> list[Position]:
        epoch = self._epoch
        if epoch is None or epoch.done:
            return []
        epoch.done = True
        fix = self._position(epoch)
        if fix is None:
            self.stats.no_fix += 1
            self.stats.last_had_fix = False
            return []
        self.stats.fixes += 1
        self.stats.last_had_fix = True
        return [fix]

    def _position(self, e: _Epoch) -> Position | None:
        rmc, gga = e.rmc, e.gga
        if rmc is not None and getattr(rmc, "status", "") == "A":
            src = rmc
        elif gga is not None and isinstance(getattr(gga, "quality", None), int) and gga.quality > 0:
            src = gga
        else:
            return None
        lat, lon = _f(src, "lat"), _f(src, "lon")
        date = rmc.date if rmc is not None and isinstance(rmc.date, dt.date) else self._date
        if lat is None or lon is None or date is None:
            return None
        knots, course = _f(rmc, "spd"), _f(rmc, "cog")
        speed = None if knots is None else knots * KNOTS
        if e.vtg is not None:
            if speed is None:
                kmh = _f(e.vtg, "sogk")
                knots = _f(e.vtg, "sogn")
                speed = knots * KNOTS if knots is not None else None if kmh is None else kmh / 3.6
            if course is None:
                course = _f(e.vtg, "cogt")
        sats = getattr(gga, "numSV", None)
        try:
            return Position(
                t=dt.datetime.combine(date, e.time.replace(tzinfo=None), tzinfo=dt.UTC),
                lat=lat,
                lon=lon,
                speed_mps=None if speed is None else round(speed, 3),
                heading_deg=None if course is None else course % 360,
                alt_m=_f(gga, "alt"),
                hdop=_f(gga, "HDOP"),
                sats=sats if isinstance(sats, int) and not isinstance(sats, bool) else None,
                fix={2: "2d", 3: "3d"}.get(self._nav_mode or 0),
            )
        except ValidationError:
            self.stats.reject("invalid")
            return None


class PortLost(SourceError):
    """The reader thread saw the port fail (pyserial's error translated at this adapter). It stays
    inside the source, which reports it as ``disconnected`` health and reopens the port."""

    def __init__(self, port: str, reason: str) -> None:
        super().__init__(f"{port}: {reason}")
        self.port = port
        self.reason = reason


class NmeaSerialGnss:
    """A :class:`~edge.gnss.source.GnssSource` reading NMEA from a serial port (see module docstring)."""

    def __init__(self, settings: NmeaSettings, *, backoff: Backoff | None = None) -> None:
        self._s = settings
        self._backoff = backoff or Backoff(
            minimum=settings.reconnect_min_s, maximum=settings.reconnect_max_s
        )
        self._health = HealthCell()
        self.stats = NmeaStats()

    @property
    def health(self) -> SourceHealth:
        return self._health.value

    def health_changes(self) -> AsyncIterator[SourceHealth]:
        return self._health.changes()

    def counters(self) -> Mapping[str, int]:
        s = self.stats
        out = {"sentences": s.sentences, "fixes": s.fixes, "no_fix": s.no_fix, "opens": s.opens}
        out.update({f"rejected_{r}": s.rejected[r] for r in _REASONS})
        return out

    def _open(self) -> serial.Serial:
        return serial.Serial(self._s.port, self._s.baudrate, timeout=0.5)

    async def fixes(self) -> AsyncIterator[Position]:
        """Yield fixes forever; reopen the port with backoff whenever it fails or vanishes."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                port = await asyncio.to_thread(self._open)
            except (serial.SerialException, OSError, ValueError) as err:
                self._lost(f"cannot open {self._s.port}: {err}")
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self.stats.opens += 1
            log.info("opened %s at %d baud", self._s.port, self._s.baudrate)
            chunks: asyncio.Queue[bytes | PortLost] = asyncio.Queue()
            stop = threading.Event()
            reader = threading.Thread(
                target=_pump,
                args=(port, loop, chunks, stop),
                name=f"nmea-{self._s.port}",
                daemon=True,
            )
            reader.start()
            try:
                async with aclosing(self._decode(chunks)) as fixes:
                    async for fix in fixes:
                        yield fix
            except PortLost as err:
                self._lost(f"{err.port} failed: {err.reason}")
            finally:
                stop.set()
                with suppress(serial.SerialException, OSError):
                    port.cancel_read()
                reader.join(timeout=2)
                with suppress(serial.SerialException, OSError):
                    port.close()
            await asyncio.sleep(self._backoff.next_delay())

    def _lost(self, why: str) -> None:
        if self._health.set(GnssState.DISCONNECTED, why):
            log.warning("%s; reopening", why)

    def _follow_last_epoch(self) -> None:
        if self.stats.last_had_fix:
            self._health.set(GnssState.OK)
        else:
            self._health.set(GnssState.NO_FIX, "receiver has no fix")

    async def _decode(
        self, chunks: asyncio.Queue[bytes | PortLost]
    ) -> AsyncGenerator[Position, None]:
        decoder = NmeaDecoder(stats=self.stats)  # a fresh one: a partial line from before is junk
        stale = self._s.stale_after_s
        idle = 0.0
        while True:
            try:
                async with asyncio.timeout(EPOCH_IDLE_S):
                    chunk = await chunks.get()
            except TimeoutError:
                # A quiet line means the epoch is complete: emit it rather than wait for the next.
                epochs_before = self.stats.fixes + self.stats.no_fix
                flushed = decoder.flush()
                if self.stats.fixes + self.stats.no_fix != epochs_before:
                    self._follow_last_epoch()
                for fix in flushed:
                    yield fix
                idle += EPOCH_IDLE_S
                if idle >= stale:
                    self._health.set(
                        GnssState.NO_FIX, f"no data from {self._s.port} for {stale:g} s"
                    )
                continue
            idle = 0.0
            if isinstance(chunk, PortLost):
                raise chunk
            epochs_before = self.stats.fixes + self.stats.no_fix
            fixes = decoder.feed(chunk)
            if fixes:
                self._backoff.reset()
            if self.stats.fixes + self.stats.no_fix != epochs_before:
                self._follow_last_epoch()
            elif self.stats.bad_in_a_row >= BAD_LINES_BEFORE_ALARM:
                self._health.set(
                    GnssState.NO_FIX,
                    f"no valid NMEA in {self.stats.bad_in_a_row} lines (wrong baud rate?)",
                )
            for fix in fixes:
                yield fix


def _pump(
    port: serial.Serial,
    loop: asyncio.AbstractEventLoop,
    chunks: asyncio.Queue[bytes | PortLost],
    stop: threading.Event,
) -> None:
    """Reader thread: blocking reads in, chunks (or the failure) out to the event loop."""

    def hand_over(item: bytes | PortLost) -> None:
        try:
            loop.call_soon_threadsafe(chunks.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    try:
        while not stop.is_set():
            data = port.read(port.in_waiting or 1)
            if data:
                hand_over(data)
    except (serial.SerialException, OSError, TypeError) as err:
        # TypeError: pyserial's read after close() from another thread dereferences a None fd.
        if not stop.is_set():
            hand_over(PortLost(str(port.port), str(err) or type(err).__name__))
