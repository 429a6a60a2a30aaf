"""The CAN source against python-can's virtual bus, with frames made from the Prius DBC."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from pathlib import Path

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.can import CanConfigError, CanOpenError, CanSettings, CanSource, SignalSpec
from edge.can.decoder import CanFilter, SignalDecoder, load_dbc
from edge.can.player import FramePlayer, drive_frames
from edge.signals import SignalUpdate
from tests.edge.signal_rig import collecting, poll

DBC = Path(__file__).parents[1] / "data" / "can" / "toyota_prius_2010_pt.dbc"
DB = load_dbc(str(DBC))
SPEED_ID = DB.get_message_by_name("SPEED").frame_id
SIGNALS = [
    SignalSpec(name="SPEED", message="SPEED", deadband=0.5, max_interval_s=5.0),
    SignalSpec(name="GEAR", max_interval_s=5.0),
    SignalSpec(name="DOOR_OPEN_FR", alias="door_fr", max_interval_s=5.0),
]
_channels = itertools.count()


def _settings(**kw: object) -> CanSettings:
    base: dict[str, object] = {
        "interface": "virtual",
        "channel": f"test-can-{next(_channels)}",
        "dbc_file": DBC,
        "signals": SIGNALS,
        "reconnect_min_s": 0.02,
        "reconnect_max_s": 0.1,
        "receive_timeout_s": 0.02,
    }
    base.update(kw)
    return CanSettings.model_validate(base)


def _speed_frame(mph: float, *, t: float, encoder: int = 0) -> can.Message:
    data = DB.encode_message("SPEED", {"ENCODER": encoder, "SPEED": mph, "CHECKSUM": 0})
    return can.Message(timestamp=t, arbitration_id=SPEED_ID, is_extended_id=False, data=data)


def _unfiltered(settings: CanSettings, filters: Sequence[CanFilter]) -> can.BusABC:
    """A bus whose driver ignores filters, so every kind of junk reaches the decoder."""
    return can.Bus(interface="virtual", channel=settings.channel)


def _collecting(source: CanSource) -> contextlib.AbstractAsyncContextManager[list[SignalUpdate]]:
    return collecting(source, ready=lambda: source.health == "ok")


def test_a_speed_frame_becomes_an_update_with_the_dbc_unit() -> None:
    dec = SignalDecoder(db=DB, signals=SIGNALS)
    updates = dec.feed(_speed_frame(30.0, t=100.0))
    assert updates is not None
    (u,) = updates
    assert (u.name, u.unit, u.t) == ("SPEED", "mph", 100.0)
    assert u.value == pytest.approx(30.0, abs=0.01)


def test_filters_are_exactly_the_frames_carrying_configured_signals() -> None:
    dec = SignalDecoder(db=DB, signals=SIGNALS)
    names = {DB.get_message_by_frame_id(f.can_id).name for f in dec.filters}
    assert names == {"SPEED", "GEAR_PACKET", "SEATS_DOORS"}
    assert all(not f.extended for f in dec.filters)


def test_unknown_and_ambiguous_signals_are_refused_all_at_once() -> None:
    with pytest.raises(CanConfigError) as info:
        CanSource(
            settings=_settings(
                signals=[SignalSpec(name="WARP_FACTOR"), SignalSpec(name="STATE"), *SIGNALS]
            )
        )
    assert len(info.value.problems) == 2
    assert "WARP_FACTOR" in info.value.problems[0]
    assert "set 'message'" in info.value.problems[1]


async def test_the_source_decodes_a_virtual_bus_and_counts_junk_per_reason() -> None:
    s = _settings()
    source = CanSource(settings=s, bus_factory=_unfiltered)
    car = can.Bus(interface="virtual", channel=s.channel, preserve_timestamps=True)
    async with _collecting(source) as got:
        junk = [
            can.Message(
                timestamp=1.0, arbitration_id=0x7FF, is_extended_id=False, data=b"\x01"
            ),  # unknown id
            can.Message(
                timestamp=1.0, arbitration_id=SPEED_ID, is_extended_id=False, data=bytes(5)
            ),  # short
            can.Message(timestamp=1.0, arbitration_id=SPEED_ID, is_extended_id=True, data=bytes(8)),
            can.Message(
                timestamp=1.0,
                arbitration_id=SPEED_ID,
                is_extended_id=False,
                is_remote_frame=True,
                dlc=8,
            ),
        ]
        for msg in [_speed_frame(10.0, t=1.0), *junk, _speed_frame(20.0, t=1.1)]:
            car.send(msg)
        await poll(lambda: len(got) == 2)
        await poll(lambda: source.stats.decoder.frames == 6)
    car.shutdown()
    assert [round(u.value) for u in got] == [10, 20]
    assert dict(source.stats.decoder.bad) == {
        "unknown_id": 1,
        "bad_length": 1,
        "extended_mismatch": 1,
        "remote_frame": 1,
    }
    assert source.health == "stopped"


async def test_with_its_own_filters_the_bus_never_hands_over_unrelated_frames() -> None:
    s = _settings()
    source = CanSource(settings=s)
    car = can.Bus(interface="virtual", channel=s.channel)
    async with _collecting(source) as got:
        car.send(
            can.Message(arbitration_id=0x24, is_extended_id=False, data=bytes(8))
        )  # KINEMATICS: not configured
        car.send(_speed_frame(12.0, t=0))
        await poll(lambda: len(got) == 1)
    car.shutdown()
    assert source.stats.decoder.frames == 1
    assert not source.stats.decoder.bad


_DLCS = st.sampled_from([*range(9), 12, 16, 20, 24, 32, 48, 64])


@st.composite
def _frames(draw: st.DrawFn) -> can.Message:
    extended = draw(st.booleans())
    known = draw(st.booleans())
    if known:
        arb = draw(st.sampled_from([m.frame_id for m in DB.messages]))
    else:
        arb = draw(st.integers(0, 0x1FFFFFFF if extended else 0x7FF))
    n = draw(_DLCS)
    return can.Message(
        timestamp=draw(st.floats(0, 1e9, allow_nan=False)),
        arbitration_id=arb,
        is_extended_id=extended,
        is_fd=n > 8,
        is_remote_frame=draw(st.booleans()) and n <= 8,
        is_error_frame=draw(st.integers(0, 9)) == 0,
        data=draw(st.binary(min_size=n, max_size=n)),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(_frames(), max_size=30))
def test_no_frame_crashes_the_decoder_and_every_frame_is_accounted_for(
    frames: list[can.Message],
) -> None:
    signals = [SignalSpec(name=s.name, message=m.name) for m in DB.messages for s in m.signals]
    dec = SignalDecoder(db=DB, signals=signals)
    for msg in frames:
        before = (sum(dec.stats.bad.values()), dec.stats.decoded, dec.stats.unchanged)
        updates = dec.feed(msg)
        after = (sum(dec.stats.bad.values()), dec.stats.decoded, dec.stats.unchanged)
        assert sum(a - b for a, b in zip(after, before, strict=True)) == 1
        good = (
            not msg.is_error_frame
            and not msg.is_remote_frame
            and any(
                m.frame_id == msg.arbitration_id
                and m.is_extended_frame == msg.is_extended_id
                and m.length == len(msg.data)
                for m in DB.messages
            )
        )
        if not good:
            assert after[0] == before[0] + 1, msg
            assert updates is None
    assert dec.stats.frames == len(frames)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    deadband=st.sampled_from([0.0, 0.3, 2.0]),
    heartbeat=st.sampled_from([0.5, 3.0]),
)
def test_speed_is_reported_on_change_beyond_the_deadband_and_as_a_heartbeat(
    seed: int, deadband: float, heartbeat: float
) -> None:
    spec = SignalSpec(name="SPEED", message="SPEED", deadband=deadband, max_interval_s=heartbeat)
    dec = SignalDecoder(db=DB, signals=[spec])
    raw: list[tuple[float, float]] = []
    reported: list[tuple[float, float]] = []
    for msg in drive_frames(DB, seed=seed, duration_s=40, rates_hz={"SPEED": 50.0}):
        decoded = DB.get_message_by_frame_id(msg.arbitration_id).decode(bytes(msg.data))
        raw.append((msg.timestamp, float(decoded["SPEED"])))  # type: ignore[arg-type,call-overload]
        for u in dec.feed(msg) or ():
            reported.append((u.t, u.value))
    assert reported[0] == raw[0]
    assert len(reported) < len(raw) or deadband == 0.0
    # Between two reports, every raw value stayed within the deadband of the last report and the
    # gap stayed under the heartbeat; each report is a change beyond it or a heartbeat.
    rep = iter(reported)
    last = next(rep)
    nxt = next(rep, None)
    for t, v in raw[1:]:
        if nxt is not None and t == nxt[0]:
            assert abs(v - last[1]) > deadband or t - last[0] >= heartbeat
            last, nxt = nxt, next(rep, None)
        else:
            assert abs(v - last[1]) <= deadband and t - last[0] < heartbeat
    assert nxt is None


async def test_a_played_drive_reports_gear_and_door_changes() -> None:
    s = _settings()
    source = CanSource(settings=s)
    frames = list(drive_frames(DB, seed=3, duration_s=60, start_t=1e9))
    async with _collecting(source) as got:
        with FramePlayer(channel=s.channel, frames=frames, time_scale=None) as player:
            await poll(lambda: player.done.is_set())
        await poll(lambda: source.stats.decoder.frames >= player.sent * 0.2)
        await poll(lambda: any(u.name == "GEAR" and u.value == 3 for u in got))
    doors = [u.value for u in got if u.name == "door_fr"]
    assert 1.0 in doors and doors[-1] == 0.0
    assert max(u.value for u in got if u.name == "SPEED") > 15  # mph: 30-50 km/h cruising
    assert source.stats.decoder.unchanged > 0  # repeated payloads skipped cantools


async def test_a_vanished_bus_is_reported_and_reopened() -> None:
    s = _settings()
    buses: list[can.BusABC] = []
    failures_left = [0]

    def factory(settings: CanSettings, filters: Sequence[CanFilter]) -> can.BusABC:
        if failures_left[0] > 0:
            failures_left[0] -= 1
            raise CanOpenError(settings.interface, settings.channel, "adapter not found")
        bus = can.Bus(interface="virtual", channel=settings.channel)
        buses.append(bus)
        return bus

    source = CanSource(settings=s, bus_factory=factory)
    car = can.Bus(interface="virtual", channel=s.channel)
    async with _collecting(source) as got:
        car.send(_speed_frame(10.0, t=0))
        await poll(lambda: len(got) == 1)
        failures_left[0] = 2
        buses[0].shutdown()  # the adapter is unplugged under the reader
        await poll(lambda: source.health == "disconnected")
        await poll(lambda: source.health == "ok" and source.stats.opens == 2)
        car.send(_speed_frame(20.0, t=1))
        await poll(lambda: len(got) == 2)
    car.shutdown()
    assert source.stats.failures == 3  # the bus failure and two failed reopens
    assert "adapter not found" in source.stats.last_error


async def test_bus_off_is_reported_until_frames_flow_again() -> None:
    s = _settings()
    source = CanSource(settings=s, bus_factory=_unfiltered)
    car = can.Bus(interface="virtual", channel=s.channel)
    async with _collecting(source) as got:
        car.send(can.Message(arbitration_id=0x40, is_error_frame=True, data=bytes(8)))
        await poll(lambda: source.health == "bus_off")
        car.send(_speed_frame(5.0, t=0))
        await poll(lambda: len(got) == 1 and source.health == "ok")
    car.shutdown()
    assert source.stats.decoder.bad["error_frame"] == 1
