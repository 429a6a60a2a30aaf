"""The serial NMEA backend: the decoder on real receiver logs and on abuse, then through a pty."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
from collections.abc import Iterator
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.gnss.health import GnssState
from edge.gnss.nmea import NmeaDecoder, NmeaSerialGnss
from edge.gnss.settings import NmeaSettings
from protocol.messages import Position
from tests.edge.gnss_rigs import LOGS, PtyPort, collecting, nmea_lines, until

# Fixes per log: epochs whose RMC says "A" or whose GGA has a quality above 0.
EXPECTED = {"bt451.log": 14, "haicom-305N.log": 68, "bu353-glonass.log": 9}
# How each log ends: the BU-353 loses its fix for its last ten epochs.
FINAL_STATE = {"bt451.log": "ok", "haicom-305N.log": "ok", "bu353-glonass.log": "no_fix"}
KNOT = 1852 / 3600


def _valid_epochs(lines: list[bytes]) -> int:
    """An independent count of EXPECTED: distinct times of RMC/GGA sentences that have a fix."""
    times = set()
    for line in lines:
        f = line.split(b"*")[0].split(b",")
        kind = f[0][3:]
        if (kind == b"RMC" and f[2] == b"A") or (kind == b"GGA" and f[6] not in (b"", b"0")):
            times.add(f[1])
    return len(times)


def _decode_all(data: bytes) -> tuple[list[Position], NmeaDecoder]:
    d = NmeaDecoder()
    return d.feed(data) + d.flush(), d


def _sentence(body: str) -> bytes:
    ck = reduce(lambda a, b: a ^ b, body.encode(), 0)
    return f"${body}*{ck:02X}".encode()


@pytest.mark.parametrize("log", LOGS)
def test_each_receiver_log_decodes_to_one_fix_per_epoch(log: str) -> None:
    lines = nmea_lines(log)
    fixes, d = _decode_all(b"\r\n".join(lines) + b"\r\n")
    assert len(fixes) == EXPECTED[log] == _valid_epochs(lines)
    assert sum(d.stats.rejected.values()) == d.stats.rejected["unknown"]  # GSV, ZDA, TXT, GLL
    assert all(f.speed_mps is None or f.speed_mps < 17 for f in fixes)


def test_a_moving_car_is_decoded_with_its_speed_course_and_quality() -> None:
    fixes, _ = _decode_all(b"\n".join(nmea_lines("bt451.log")))
    car = [f for f in fixes if f.speed_mps and f.speed_mps > 10]
    knots = [f.speed_mps / KNOT for f in car if f.speed_mps]
    assert knots == pytest.approx([30.324, 30.86, 31.351, 32.0, 32.273], abs=0.005)
    assert car[0].heading_deg == 221.16
    assert (car[0].sats, car[0].hdop, car[0].alt_m, car[0].fix) == (9, 1.26, 128.9, "3d")
    assert all(a.t < b.t for a, b in itertools.pairwise(car))
    assert abs(car[0].lat - 55.7804972) < 1e-6 and abs(car[0].lon - 23.5786872) < 1e-6


def test_multi_constellation_talkers_are_combined_per_epoch() -> None:
    fixes, d = _decode_all(b"\r\n".join(nmea_lines("bu353-glonass.log")))
    # $GNRMC gives position and speed, $GPGGA altitude and satellites, $GNGSA the 3D fix.
    first_full = fixes[1]
    assert first_full.t.isoformat() == "2014-05-26T08:14:12+00:00"
    assert (first_full.alt_m, first_full.sats, first_full.hdop, first_full.fix) == (
        66.2,
        5,
        4.87,
        "3d",
    )
    assert d.stats.no_fix == 10  # the receiver lost its fix for the last ten epochs


def test_bad_lines_are_counted_per_reason_and_skipped() -> None:
    good = nmea_lines("haicom-305N.log")
    rmc = next(ln for ln in good if b"RMC" in ln and b",A," in ln)
    bad = [
        rmc[:30],  # truncated
        rmc[:-2] + b"00",  # wrong checksum
        b"\x00\xff\xfe\x13 line noise",  # garbage
        b"noise before" + rmc[:-2] + b"00",  # garbage, then a wrong checksum
        _sentence("GPXYZ,1,2,3"),  # unknown sentence
        _sentence("PGRME,15.0,M,45.0,M,25.0,M"),  # proprietary
        _sentence("GPRMC,123519,A,99zz.038,N,01131.000,E,022.4,084.4,230394,,"),  # unparsable
    ]
    mixed = [x for pair in zip(good, bad * 100, strict=False) for x in pair] + good[
        len(bad) * 100 :
    ]
    fixes, d = _decode_all(b"\r\n".join(mixed) + b"\r\n")
    assert len(fixes) == EXPECTED["haicom-305N.log"]
    n = len(good) if len(good) < len(bad) * 100 else len(bad) * 100
    per_kind = n // len(bad)
    r = d.stats.rejected
    assert r["truncated"] >= per_kind
    assert r["checksum"] >= 2 * per_kind
    assert r["garbage"] >= 2 * per_kind
    assert r["invalid"] >= per_kind


@settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    junk=st.lists(st.binary(max_size=120), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    log=st.sampled_from(LOGS),
)
def test_junk_between_sentences_never_costs_a_fix(junk: list[bytes], seed: int, log: str) -> None:
    """Arbitrary bytes between valid sentences, fed in arbitrary chunks: every fix still comes out,
    nothing crashes, and the junk is counted."""
    rng = random.Random(seed)
    lines = [ln + b"\r\n" for ln in nmea_lines(log)]
    clean, clean_d = _decode_all(b"".join(lines))
    stream = bytearray()
    inserted = 0
    for i, line in enumerate(lines):
        if i and rng.random() < 0.5:
            piece = junk[i % len(junk)]
            stream += piece
            inserted += bool(piece.strip())
        stream += line
    d = NmeaDecoder()
    got: list[Position] = []
    pos = 0
    while pos < len(stream):
        step = rng.randint(1, 200)
        got += d.feed(bytes(stream[pos : pos + step]))
        pos += step
    got += d.flush()
    assert got == clean
    assert sum(d.stats.rejected.values()) >= sum(clean_d.stats.rejected.values()) + inserted


# --- through a serial port (a pty) ---------------------------------------------------------------


@pytest.fixture
def pty_port() -> Iterator[PtyPort]:
    port = PtyPort()
    try:
        yield port
    finally:
        port.close()


def _source(path: str, **kw: float) -> NmeaSerialGnss:
    return NmeaSerialGnss(
        NmeaSettings(port=path, baudrate=4800, reconnect_min_s=0.05, reconnect_max_s=0.2, **kw)
    )


@pytest.mark.parametrize("log", LOGS)
async def test_each_log_through_a_serial_port(pty_port: PtyPort, log: str) -> None:
    # Health here must come from the log's own content; a short staleness timer would turn "ok"
    # into "no_fix" whenever a loaded machine takes longer to get here than the timer.
    source = _source(pty_port.path, stale_after_s=3600)
    async with collecting(source) as fixes:
        # Open the reader before writing: pyserial's open() flushes the input queue.
        await until(lambda: source.stats.opens == 1, what="port open")
        await asyncio.to_thread(pty_port.write_lines, nmea_lines(log))
        await until(lambda: len(fixes) >= EXPECTED[log], what=lambda: f"{log}: {len(fixes)} fixes")
        await until(
            lambda: source.health.state == FINAL_STATE[log],
            what=lambda: (
                f"final health {FINAL_STATE[log]} (now {source.health}, {source.counters()})"
            ),
        )
    assert len(fixes) == EXPECTED[log]
    assert fixes == _decode_all(b"\r\n".join(nmea_lines(log)) + b"\r\n")[0]


async def test_junk_on_the_wire_is_counted_and_fixes_still_arrive(pty_port: PtyPort) -> None:
    lines = nmea_lines("bt451.log")
    junk = [b"\x00\x00\xff", b"$GPRMC,1525", lines[-1][:-2] + b"FF", b"~~~~~"]
    source = _source(pty_port.path)
    async with collecting(source) as fixes:
        await until(lambda: source.stats.opens == 1, what="port open")
        for i, line in enumerate(lines):
            pty_port.write(junk[i % len(junk)] + b"\r\n" + line + b"\r\n")
        await until(lambda: len(fixes) >= EXPECTED["bt451.log"], what="fixes")
    r = source.counters()
    assert r["rejected_garbage"] >= len(lines) // 2
    assert r["rejected_truncated"] >= len(lines) // 4
    assert r["rejected_checksum"] >= len(lines) // 4


async def test_a_receiver_without_a_fix_reports_no_fix(pty_port: PtyPort) -> None:
    source = _source(pty_port.path)
    async with collecting(source) as fixes:
        await until(lambda: source.stats.opens == 1, what="port open")
        pty_port.write_lines(nmea_lines("bt451.log")[:20])  # the indoor part: no fix yet
        await until(lambda: source.health.state is GnssState.NO_FIX, what="no_fix")
    assert fixes == []


async def test_an_unplugged_receiver_is_reported_and_reopened(tmp_path: Path) -> None:
    """The device node disappears and comes back (a USB receiver unplugged and plugged in)."""
    link = tmp_path / "gnss"
    first = PtyPort()
    link.symlink_to(first.path)
    source = _source(str(link))
    lines = nmea_lines("haicom-305N.log")
    async with collecting(source) as fixes:
        await until(lambda: source.stats.opens == 1, what="port open")
        first.write_lines(lines[:120])
        await until(lambda: len(fixes) >= 5, what="fixes before the unplug")
        first.close()
        link.unlink()
        await until(lambda: source.health.state is GnssState.DISCONNECTED, what="disconnected")
        await until(lambda: "cannot open" in source.health.error, what="reopen attempts")
        before = len(fixes)
        second = PtyPort()
        try:
            link.symlink_to(second.path)
            await until(lambda: source.stats.opens == 2, what="reopened")
            second.write_lines(lines[120:])
            await until(lambda: len(fixes) >= before + 5, what="fixes after the replug")
            assert source.health.state is GnssState.OK
        finally:
            second.close()


def test_the_port_path_comes_from_settings() -> None:
    s = NmeaSettings(port="/dev/ttyUSB3", baudrate=4800)
    assert (s.port, s.baudrate) == ("/dev/ttyUSB3", 4800)
    assert re.fullmatch(r"/dev/tty\w+", NmeaSettings().port)
    assert os.sep in NmeaSettings().port
