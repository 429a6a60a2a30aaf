"""The RS485 lock board: a pymodbus RTU server on one end of a socat pty pair plays the board, the
agent drives it from the other end, exactly as over a USB-RS485 adapter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import ModbusSerialServer

from locker.app import open_locker
from locker.errors import HardwareInitError
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.modbus import ModbusBoard
from locker.settings import ModbusSettings
from tests.locker.story import T0, FakeClock, grant, offline, queued_events, settings_for, until

UNIT = 7
COILS, DOORS = 1, 2  # Modbus function codes of the two tables
COIL_OFFSET, DOOR_OFFSET = 8, 16


@pytest.fixture(autouse=True)
def _socat_is_installed() -> None:
    """The board runs on a socat pty pair; a machine without socat must fail here, not skip."""
    if shutil.which("socat") is None:
        pytest.fail("socat is missing: apt-get install socat (scripts/setup test does)")


class FakeBoard:
    """A Modbus RTU server with 32 coils and 32 discrete inputs, running on its own thread."""

    def __init__(self, port: Path) -> None:
        # Datablocks start at address 1 in pymodbus 3.16; the server maps wire address 0 onto it.
        device = ModbusDeviceContext(
            co=ModbusSequentialDataBlock(1, [False] * 32),
            di=ModbusSequentialDataBlock(1, [True] * 32),  # every door shut
        )
        self._context = ModbusServerContext(devices={UNIT: device}, single=False)
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._server: ModbusSerialServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-board", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = ModbusSerialServer(
                self._context, framer=FramerType.RTU, port=str(self._port), baudrate=38400
            )
            self._ready.set()
            await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            self._loop.run_until_complete(serve())

    @property
    def server(self) -> ModbusSerialServer:
        assert self._server is not None
        return self._server

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)

    def coil(self, address: int) -> bool:
        return bool(self._run(self.server.async_getValues(UNIT, COILS, address, 1))[0])

    def door(self, address: int, *, shut: bool) -> None:
        self._run(self.server.async_setValues(UNIT, DOORS, address, [shut]))

    def start(self) -> FakeBoard:
        self._thread.start()
        assert self._ready.wait(timeout=5), "the fake board did not start"
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.server.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


@pytest.fixture
def rs485(tmp_path) -> Iterator[tuple[Path, FakeBoard]]:
    """A pty pair: the agent opens ``A``, the fake board listens on ``B``."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # deprecation notes of the datastore
    a, b = tmp_path / "A", tmp_path / "B"
    socat = subprocess.Popen(
        ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            assert socat.poll() is None, "socat exited"
            assert time.monotonic() < deadline, "socat made no pty pair within 5 s"
            time.sleep(0.01)
        board = FakeBoard(b).start()
        try:
            yield a, board
        finally:
            board.stop()
    finally:
        socat.kill()
        socat.wait(timeout=5)


def _modbus(port: Path, **extra: object) -> ModbusSettings:
    fields: dict[str, object] = {
        "port": str(port),
        "baudrate": 38400,
        "device_id": UNIT,
        "coil_offset": COIL_OFFSET,
        "door_input_offset": DOOR_OFFSET,
        "poll_interval_s": 0.02,
    }
    return ModbusSettings.model_validate({**fields, **extra})


def test_a_code_opens_a_compartment_on_the_rs485_board(
    tmp_path, rs485: tuple[Path, FakeBoard], factory: MockLockerFactory
) -> None:
    port, board = rs485
    g = grant("48151623", compartment=3, now=T0)

    async def story() -> None:
        keypad = SimKeypad()
        settings = settings_for(tmp_path, board="modbus", modbus=_modbus(port))
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=FakeClock()) as a:
            a._grants.add(g, now=T0)
            async with offline(a):
                keypad.press("48151623#")
                await until(lambda: board.coil(COIL_OFFSET + 2), what="coil of compartment 3 on")
                assert not any(board.coil(COIL_OFFSET + i) for i in (0, 1, 3))
                board.door(DOOR_OFFSET + 2, shut=False)  # the customer opens the door
                await until(lambda: not board.coil(COIL_OFFSET + 2), what="coil released")
                board.door(DOOR_OFFSET + 2, shut=True)
                await until(lambda: len(queued_events(tmp_path)) == 5, what="5 events")

    asyncio.run(story())
    assert [(e.kind, e.compartment) for e in queued_events(tmp_path)] == [
        ("code_accepted", 3),
        ("unlocked", 3),
        ("door_opened", 3),
        ("door_closed", 3),
        ("picked_up", 3),
    ]


def test_every_relay_is_switched_off_when_the_board_is_opened(
    rs485: tuple[Path, FakeBoard],
) -> None:
    port, board = rs485
    with ModbusBoard.open(_modbus(port), compartments=4) as mb:
        mb.set_relay(2, True)
        assert board.coil(COIL_OFFSET + 1)
    with ModbusBoard.open(_modbus(port), compartments=4):  # a restart after a crash
        assert not any(board.coil(COIL_OFFSET + i) for i in range(4))


def test_a_board_that_does_not_answer_is_an_init_error(rs485: tuple[Path, FakeBoard]) -> None:
    port, _ = rs485
    with pytest.raises(HardwareInitError, match="does not answer"):
        ModbusBoard.open(_modbus(port, device_id=9, timeout_s=0.2), compartments=4)
    with pytest.raises(HardwareInitError, match="cannot open"):
        ModbusBoard.open(_modbus(port.with_name("missing")), compartments=4)


def _stall(board: FakeBoard, seconds: float) -> None:
    """The board stops answering for a while (its firmware busy, a slow bus): its loop sleeps."""
    board._loop.call_soon_threadsafe(time.sleep, seconds)


def test_a_relay_write_waiting_for_the_board_does_not_block_the_event_loop(
    rs485: tuple[Path, FakeBoard],
) -> None:
    port, board = rs485

    async def story() -> tuple[int, bool]:
        with ModbusBoard.open(_modbus(port, timeout_s=5, poll_interval_s=1), compartments=4) as mb:
            _stall(board, 1.0)
            unlock = asyncio.create_task(mb[3].unlock())
            ticks = 0
            while not unlock.done():
                await asyncio.sleep(0.01)  # the keypad, the doors, the uplink: all still served
                ticks += 1
            await unlock
            return ticks, board.coil(COIL_OFFSET + 2)

    ticks, energized = asyncio.run(story())
    assert energized
    assert ticks >= 5, f"the loop ran only {ticks} times while the board was silent for 1 s"


def test_a_queued_release_lands_after_the_unlock_and_close_waits_for_it(
    rs485: tuple[Path, FakeBoard],
) -> None:
    port, board = rs485

    async def story() -> None:
        with ModbusBoard.open(_modbus(port, poll_interval_s=1), compartments=4) as mb:
            await mb[1].unlock()
            assert board.coil(COIL_OFFSET)
            _stall(board, 0.3)
            mb[1].lock()  # not awaited: from a timer or a door callback
            # close() (leaving the with block) drains the queue before the port closes

    asyncio.run(story())
    assert not board.coil(COIL_OFFSET)


def test_a_release_the_board_does_not_answer_is_counted(rs485: tuple[Path, FakeBoard]) -> None:
    port, board = rs485

    async def story() -> int:
        with ModbusBoard.open(
            _modbus(port, timeout_s=0.2, poll_interval_s=5), compartments=4
        ) as mb:
            await mb[1].unlock()
            _stall(board, 1.5)
            mb[1].lock()  # times out (twice: one retry), nobody awaits it
            await until(lambda: mb.write_errors == 1, what="the failed release counted")
            return mb.write_errors

    assert asyncio.run(story()) == 1
