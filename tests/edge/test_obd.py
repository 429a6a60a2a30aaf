"""The OBD-II source against a real ELM327-emulator ("car" scenario) through python-OBD."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.broker import free_port
from edge.obd import (
    ObdConfigError,
    ObdDisconnectedError,
    ObdEmulatorError,
    ObdSettings,
    ObdSource,
    PidSpec,
)
from edge.obd.emulator import ElmEmulator
from tests.edge.signal_rig import collecting, poll

PIDS = [
    PidSpec(name="SPEED", interval_s=0.05),
    PidSpec(name="RPM", interval_s=0.05),
    PidSpec(name="COOLANT_TEMP", interval_s=0.2),
]


def _emulator(**kw: object) -> ElmEmulator:
    try:
        return ElmEmulator(**kw).start()  # type: ignore[arg-type]
    except ObdEmulatorError as err:
        pytest.fail(f"the OBD-II tests need ELM327-emulator: {err}")


@pytest.fixture
def elm() -> Iterator[ElmEmulator]:
    emulator = _emulator(dtcs=["0143", "0196"])
    yield emulator
    emulator.close()


async def test_speed_rpm_and_coolant_arrive_with_units_at_their_rates(elm: ElmEmulator) -> None:
    source = ObdSource(settings=ObdSettings(port=elm.port, pids=PIDS))
    async with collecting(source) as got:
        await poll(lambda: sum(u.name == "COOLANT_TEMP" for u in got) >= 3)
        assert source.health == "ok"
    latest = {u.name: u for u in got}
    assert 0 <= latest["SPEED"].value <= 250 and latest["SPEED"].unit == "kph"
    assert 500 <= latest["RPM"].value <= 8000 and latest["RPM"].unit == "rpm"
    assert -40 <= latest["COOLANT_TEMP"].value <= 150 and latest["COOLANT_TEMP"].unit == "°C"
    # SPEED and RPM are polled 4x as often as the coolant temperature.
    assert sum(u.name == "SPEED" for u in got) >= 2 * sum(u.name == "COOLANT_TEMP" for u in got)
    assert source.stats.unanswered == 0


async def test_trouble_codes_are_read_on_demand_between_polls(elm: ElmEmulator) -> None:
    source = ObdSource(settings=ObdSettings(port=elm.port, pids=PIDS))
    with pytest.raises(ObdDisconnectedError):
        await source.read_dtcs()  # not connected yet: said, not hung
    async with collecting(source) as got:
        await poll(lambda: len(got) >= 2)
        dtcs = await source.read_dtcs()
        n = len(got)
        await poll(lambda: len(got) > n + 2)  # polling goes on after the on-demand request
    assert [d.code for d in dtcs] == ["P0143", "P0196"]
    assert "O2 Sensor" in dtcs[0].description


async def test_a_vanished_adapter_is_reported_and_a_new_one_is_picked_up() -> None:
    port = free_port()
    first = _emulator(tcp_port=port)
    settings = ObdSettings(
        port=f"socket://127.0.0.1:{port}", baudrate=38400, pids=PIDS, reconnect_max_s=1.0
    )
    source = ObdSource(settings=settings)
    second: ElmEmulator | None = None
    try:
        async with collecting(source) as got:
            await poll(lambda: len(got) >= 3)
            first.kill()
            await poll(lambda: source.health == "disconnected")
            second = _emulator(tcp_port=port)
            n = len(got)
            await poll(lambda: source.health == "ok" and len(got) > n + 3, timeout=20)
    finally:
        first.close()
        if second is not None:
            second.close()
    assert source.stats.connects >= 2
    assert source.stats.failures >= 1
    assert source.health == "stopped"


def test_unknown_pid_names_are_refused_at_construction() -> None:
    with pytest.raises(ObdConfigError) as info:
        ObdSource(settings=ObdSettings(port="/dev/null", pids=[PidSpec(name="WARP_FACTOR")]))
    assert "WARP_FACTOR" in str(info.value)


def test_a_socket_port_without_baudrate_is_refused() -> None:
    with pytest.raises(ValueError, match="baudrate"):
        ObdSettings(port="socket://127.0.0.1:1", baudrate=None, pids=PIDS)
