"""The gpsd backend against a real gpsd (gpsfake replaying a log), and against a rude fake gpsd."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from edge.gnss.gpsd import LINE_LIMIT, GpsdGnss
from edge.gnss.health import GnssState
from edge.gnss.settings import GpsdSettings
from edge.reporting import distance_m
from protocol.messages import Position
from tests.edge.gnss_rigs import NMEA_DIR, Gpsfake, collecting, free_port, until

KNOT = 1852 / 3600
LOG_PLACE = Position(t="2009-12-09T15:25:05Z", lat=55.797, lon=23.569)  # type: ignore[arg-type]


def _settings(port: int, **kw: float) -> GpsdSettings:
    return GpsdSettings(port=port, reconnect_min_s=0.05, reconnect_max_s=0.2, **kw)


@pytest.fixture
def gpsd_bt451() -> Iterator[Gpsfake]:
    rig = Gpsfake(NMEA_DIR / "bt451.log", port=free_port())
    rig.start()
    try:
        yield rig
    finally:
        rig.stop()


async def test_a_moving_car_comes_through_real_gpsd_as_positions(gpsd_bt451: Gpsfake) -> None:
    source = GpsdGnss(_settings(gpsd_bt451.port))
    async with collecting(source) as fixes:
        await until(
            lambda: (
                sum(1 for f in fixes if (f.speed_mps or 0) > 10) >= 5
                and sum(1 for f in fixes if (f.speed_mps or 0) < 1) >= 5
            ),
            timeout=12,
            what="stationary and moving fixes from gpsd",
        )
    moving = [f for f in fixes if (f.speed_mps or 0) > 10]
    parked = [f for f in fixes if (f.speed_mps or 0) < 1]
    assert all(f.heading_deg is None or f.heading_deg == 16.99 for f in parked)  # no course parked
    # The log's car does 30.3-32.3 kn; gpsd reports m/s, and so do we.
    assert all(30 * KNOT <= f.speed_mps <= 32.5 * KNOT for f in moving if f.speed_mps)
    assert all(220 <= (f.heading_deg or 0) <= 223 for f in moving)  # heading south-west
    # gpsd shifts the 2009 dates by 1024 weeks; positions and order are what we can rely on.
    assert all(distance_m(f, LOG_PLACE) < 2_000 for f in fixes)
    # The log holds two recordings (parked, then driving an hour earlier) and gpsfake loops it.
    # Within each recording time runs strictly forward: one fix per epoch, none repeated. (Where
    # they meet gpsd even guesses a midnight rollover, as the GGA there carries no date.)
    steps = [(b.t - a.t).total_seconds() for a, b in itertools.pairwise(fixes)]
    assert all(0 < s <= 1.0 for s in steps if abs(s) <= 60), steps
    assert source.stats.repeats > 0, "gpsd reports an epoch once per NMEA sentence"
    assert {f.fix for f in fixes} <= {"2d", "3d"}
    assert any(f.sats and f.hdop for f in fixes), "HDOP and satellites come from gpsd's SKY"
    assert source.health.state is GnssState.OK
    assert source.stats.fixes == len(fixes) and source.stats.malformed == 0


async def test_gpsd_killed_mid_stream_is_reported_and_recovered(gpsd_bt451: Gpsfake) -> None:
    source = GpsdGnss(_settings(gpsd_bt451.port))
    async with collecting(source) as fixes:
        await until(
            lambda: len(fixes) >= 3,
            timeout=10,
            what=lambda: f"first fixes ({source.stats}, {source.health})",
        )
        await asyncio.to_thread(gpsd_bt451.stop)
        await until(
            lambda: source.health.state is GnssState.DISCONNECTED, timeout=5, what="disconnected"
        )
        assert str(gpsd_bt451.port) in source.health.error
        before = len(fixes)
        await asyncio.to_thread(gpsd_bt451.start)  # a new gpsd on the same port
        await until(lambda: len(fixes) >= before + 3, timeout=10, what="fixes after restart")
        assert source.health.state is GnssState.OK
    assert source.stats.connects >= 2


async def test_an_unreachable_gpsd_is_reported_and_retried() -> None:
    source = GpsdGnss(_settings(free_port()))
    async with collecting(source) as fixes:
        await until(lambda: source.health.state is GnssState.DISCONNECTED, what="disconnected")
        assert "cannot connect" in source.health.error
    assert fixes == []


def _tpv(sec: int, **extra: object) -> bytes:
    msg = {
        "class": "TPV",
        "mode": 3,
        "time": f"2026-11-23T10:00:{sec:02d}.000Z",
        "lat": 52.37,
        "lon": 4.89,
        "speed": 12.5,
        "track": 90.0,
        "altHAE": 3.5,
        **extra,
    }
    return json.dumps(msg).encode() + b"\r\n"


RUDE_GPSD = [
    b'{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}\r\n',
    b"this is not json\r\n",
    b'{"class":"TPV", "mode": 3, "lat": 52.\r\n',  # cut off
    b"[1, 2, 3]\r\n",  # JSON, but not an object
    b"\xff\xfe\x00garbage\r\n",
    b"x" * (LINE_LIMIT + 10) + b"\r\n",  # far too long
    b'{"class":"SKY","hdop":1.3,"satellites":[{"used":true},{"used":false},{"used":true}]}\r\n',
    _tpv(1),
    b'{"class":"TPV","mode":1}\r\n',  # no fix
    b'{"class":"TPV","mode":3,"time":"2026-11-23T10:00:02.000Z"}\r\n',  # mode 3, no position yet
    _tpv(3, lat=95.0),  # impossible latitude
    _tpv(4, lat="52.37"),  # a string is not a number
    _tpv(5, speed=True),  # a boolean is not a speed
    b'{"class":"SKY","hdop":0.9,"uSat":9}\r\n',
    _tpv(6, mode=2, altHAE=None, alt=7.0),
]


class RudeGpsd:
    """A gpsd-like server: the first client gets RUDE_GPSD and a hang-up, later ones one good TPV."""

    def __init__(self) -> None:
        self.sessions = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        assert (await reader.readline()).startswith(b"?WATCH=")
        for line in RUDE_GPSD if self.sessions == 1 else [_tpv(30)]:
            writer.write(line)
            await writer.drain()
        if self.sessions == 1:
            writer.close()  # hang up: the source must reconnect
        else:
            await reader.read()  # stay until the client leaves


@pytest.fixture
async def rude_gpsd() -> AsyncIterator[RudeGpsd]:
    rude = RudeGpsd()
    server = await asyncio.start_server(rude.serve, "127.0.0.1", 0)
    rude.port = server.sockets[0].getsockname()[1]
    async with server:
        yield rude


async def test_malformed_gpsd_lines_are_counted_and_never_fatal(rude_gpsd: RudeGpsd) -> None:
    source = GpsdGnss(_settings(rude_gpsd.port))
    async with collecting(source) as fixes:
        await until(lambda: len(fixes) >= 4, what=lambda: f"fixes from both sessions ({fixes})")
    assert [f.t.second for f in fixes] == [1, 5, 6, 30]
    one, five, six, _ = fixes
    assert (one.speed_mps, one.heading_deg, one.alt_m, one.fix) == (12.5, 90.0, 3.5, "3d")
    assert (one.hdop, one.sats) == (1.3, 2)  # satellites counted from "used" when uSat is absent
    assert five.speed_mps is None  # true is not a speed
    assert (six.hdop, six.sats, six.alt_m, six.fix) == (0.9, 9, 7.0, "2d")
    assert dict(source.counters()) == {
        "connects": 2,
        "lines": len(RUDE_GPSD) - 1 + 1,  # the over-long line never counts as read
        "fixes": 4,
        "no_fix": 3,  # mode 1; mode 3 without a position; latitude as a string
        "malformed": 5,
        "invalid": 1,  # latitude 95
        "repeats": 0,
    }
