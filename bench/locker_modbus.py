"""The RS485 lock board: how long the event loop stalls while relays are switched, and the unlock's
round trip.

Run from the repository root: ``python -m bench.locker_modbus [--writes 200] [--baud 9600]``
(needs socat). A pymodbus RTU server on one end of a socat pty pair plays the board, as in
tests/locker/test_modbus.py; :class:`locker.modbus.ModbusBoard` drives the other end. A ticker on
the loop sleeps 1 ms at a time and records how late it wakes: the loop's stall. Measured twice:
``await compartment.unlock()`` (the agent's path: the write runs on the bus worker) and, as the
control, the same write made synchronously from the loop, as ``locker/modbus.py`` did before.
A pty does not pace bytes at the baud rate, so the round trip here is pymodbus's own time; on a
real RS485 line at 9600 baud a coil write (8 bytes out, 8 back) adds ~17 ms of wire time, all of
which the blocking control would stall the loop for. The last line of output is one JSON object: ``unlock_p50_ms``/``unlock_p99_ms`` (the round trip as
the agent awaits it), ``loop_stall_p99_ms``/``loop_stall_max_ms`` and the same for the blocking control.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from pymodbus import FramerType
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusSerialServer

from locker.modbus import ModbusBoard
from locker.settings import ModbusSettings

UNIT = 1
COMPARTMENTS = 8


@contextlib.contextmanager
def board_on_a_pty(baud: int) -> Iterator[Path]:
    """A socat pty pair with a pymodbus RTU server on one end; yields the other end's path."""
    with tempfile.TemporaryDirectory(prefix="lastmile-bench-") as tmp:
        a, b = Path(tmp) / "A", Path(tmp) / "B"
        socat = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loop = asyncio.new_event_loop()
        try:
            deadline = time.monotonic() + 5
            while not (a.exists() and b.exists()):
                if socat.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("socat made no pty pair (apt-get install socat)")
                time.sleep(0.01)
            device = ModbusDeviceContext(
                co=ModbusSequentialDataBlock(1, [False] * 32),  # type: ignore[no-untyped-call]
                di=ModbusSequentialDataBlock(1, [True] * 32),  # type: ignore[no-untyped-call]
            )
            context = ModbusServerContext(devices={UNIT: device}, single=False)
            ready = threading.Event()

            async def serve() -> None:
                server = ModbusSerialServer(
                    context, framer=FramerType.RTU, port=str(b), baudrate=baud
                )
                ready.set()
                await server.serve_forever()

            def run() -> None:
                with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                    loop.run_until_complete(serve())

            threading.Thread(target=run, name="bench-board", daemon=True).start()
            ready.wait(5)
            yield a
        finally:
            loop.call_soon_threadsafe(loop.stop)
            socat.kill()
            socat.wait(timeout=5)


async def _with_ticker(
    work: Callable[[], Awaitable[list[float]]],
) -> tuple[list[float], list[float]]:
    """Run ``work`` with a 1 ms ticker beside it; return its result and every oversleep (ms)."""
    late: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append((time.perf_counter() - t - 0.001) * 1000)

    ticker = asyncio.create_task(tick())
    try:
        result = await work()
    finally:
        stop.set()
        await ticker
    return result, late


async def measure(port: Path, *, writes: int, baud: int) -> dict[str, float]:
    settings = ModbusSettings(port=str(port), baudrate=baud, device_id=UNIT, poll_interval_s=10)
    with ModbusBoard.open(settings, compartments=COMPARTMENTS) as board:

        async def awaited() -> list[float]:
            rtts = []
            for i in range(writes):
                c = board[i % COMPARTMENTS + 1]
                t = time.perf_counter()
                await c.unlock()
                rtts.append((time.perf_counter() - t) * 1000)
                await asyncio.wrap_future(board.submit_relay(c.number, False))
            return rtts

        async def blocking() -> list[float]:
            rtts = []
            for i in range(writes):
                n = i % COMPARTMENTS + 1
                t = time.perf_counter()
                board.set_relay(n, True)  # the loop waits here, as before the bus worker
                rtts.append((time.perf_counter() - t) * 1000)
                board.set_relay(n, False)
                await asyncio.sleep(0.002)  # let the ticker see the loop between writes
            return rtts

        rtts, stalls = await _with_ticker(awaited)
        _, blocking_stalls = await _with_ticker(blocking)

    def p(values: list[float], pct: int) -> float:
        return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 3)

    return {
        "unlock_p50_ms": p(rtts, 50),
        "unlock_p99_ms": p(rtts, 99),
        "loop_stall_p99_ms": p(stalls, 99),
        "loop_stall_max_ms": round(max(stalls), 3),
        "blocking_loop_stall_p99_ms": p(blocking_stalls, 99),
        "blocking_loop_stall_max_ms": round(max(blocking_stalls), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--baud", type=int, default=9600)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    with board_on_a_pty(args.baud) as port:
        result = asyncio.run(measure(port, writes=args.writes, baud=args.baud))
    print(f"{args.writes} relay writes at {args.baud} baud on a socat pty, pymodbus RTU server")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
