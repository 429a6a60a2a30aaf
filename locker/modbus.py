"""An RS485 lock board on Modbus RTU: relays as coils, door switches (and parcel sensors) as
discrete inputs. Imported only when ``board = "modbus"`` is selected, so a GPIO locker does not
need pymodbus.

pymodbus is pinned to 3.16 (``device_id=``, not the older ``slave=``). Every bus transaction runs on
one worker thread that owns pymodbus's synchronous :class:`~pymodbus.client.ModbusSerialClient`,
in the order it was asked for; the event loop only waits on futures, so a round trip (~10 ms at
9600 baud) never blocks the keypad, the doors or the uplink. ``await compartment.unlock()``
returns once the board has confirmed the coil write (or raises), so the agent still learns whether
the lock released. :meth:`ModbusCompartment.lock` is queued and not awaited: it is called from
timers and door callbacks, lands after any unlock queued before it, and a failure is logged and
counted (``write_errors``). Inputs are polled through the same worker at ``poll_interval_s`` and
turned into the same :class:`~locker.hardware.DoorChange` stream as GPIO edges.

Why a worker thread rather than pymodbus's asyncio client: :meth:`ModbusBoard.close` runs from
synchronous clean-up (the composition root's exit stack, after the loop's tasks are cancelled) and
must still get the final "every relay off" writes onto the wire before the port closes; a queue
drained by a thread does that, an asyncio client whose loop is stopping cannot. It also keeps the
one client the pty tests exercise.

Every pymodbus error and every Modbus exception response is translated here into
:class:`~locker.errors.HardwareInitError` (at start-up) or
:class:`~locker.errors.HardwareOperationError` (afterwards).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from locker.errors import HardwareInitError, HardwareOperationError
from locker.hardware import DoorChange
from locker.settings import ModbusSettings

T = TypeVar("T")
_Job = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"] | None

log = logging.getLogger(__name__)


class ModbusCompartment:
    """One compartment of a :class:`ModbusBoard`."""

    def __init__(self, board: ModbusBoard, number: int) -> None:
        self._board = board
        self.number = number

    async def unlock(self) -> None:
        """Switch the relay on; returns once the board confirmed it. Raises
        :class:`~locker.errors.HardwareOperationError`."""
        await asyncio.wrap_future(self._board.submit_relay(self.number, True))

    def lock(self) -> None:
        """Queue the relay off; does not wait (see the module docstring)."""
        self._board.submit_relay(self.number, False).add_done_callback(self._board.log_failure)

    @property
    def is_open(self) -> bool:
        """As of the last poll (or start-up read)."""
        return self._board.doors_open[self.number - 1]

    @property
    def occupied(self) -> bool | None:
        occ = self._board.occupancy
        return None if occ is None else occ[self.number - 1]


class ModbusBoard:
    """A Modbus RTU lock board with ``compartments`` relays and door inputs. A context manager.

    Build it with :meth:`open`, which de-energizes every relay before anything else happens.
    """

    def __init__(
        self, *, settings: ModbusSettings, compartments: int, client: ModbusSerialClient
    ) -> None:
        self.settings = settings
        self._n = compartments
        self._client = client
        self._compartments = [ModbusCompartment(self, n) for n in range(1, compartments + 1)]
        self.doors_open: list[bool] = [True] * compartments
        self.occupancy: list[bool] | None = None
        self.read_errors = 0
        self.write_errors = 0
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="modbus-bus", daemon=True)
        self._worker.start()

    @classmethod
    def open(cls, settings: ModbusSettings, *, compartments: int) -> ModbusBoard:
        """Connect, switch every relay off, read every input. Raises
        :class:`~locker.errors.HardwareInitError` if the port or the board does not answer."""
        client = ModbusSerialClient(
            settings.port,
            framer=FramerType.RTU,
            baudrate=settings.baudrate,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=settings.timeout_s,
            retries=1,
        )
        if not client.connect():
            raise HardwareInitError(f"cannot open the RS485 port {settings.port}")
        board = cls(settings=settings, compartments=compartments, client=client)
        try:
            board._submit(lambda: board._call("switch every relay off", client.write_coils,
                          settings.coil_offset, [False] * compartments)).result()  # fmt: skip
            board.read_inputs()
        except HardwareOperationError as err:
            board.close()
            raise HardwareInitError(
                f"lock board {settings.device_id} on {settings.port} does not answer: {err}"
            ) from err
        return board

    # -- the bus worker: the only thread that talks to the client ---------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as err:  # handed to whoever waits on the future
                future.set_exception(err)

    def _submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._closed:
            future.set_exception(HardwareOperationError("the lock board is closed", compartment=0))
        else:
            self._jobs.put((fn, future))
        return future

    def _call(self, what: str, method: Any, *args: Any, compartment: int = 0, **kw: Any) -> Any:
        try:
            result = method(*args, device_id=self.settings.device_id, **kw)
        except ModbusException as err:
            raise HardwareOperationError(f"{what}: {err}", compartment=compartment) from err
        if result.isError():
            raise HardwareOperationError(
                f"{what}: board answered {result}", compartment=compartment
            )
        return result

    def log_failure(self, future: concurrent.futures.Future[Any]) -> None:
        """Done-callback of a write nobody waits for: count and log its failure."""
        err = None if future.cancelled() else future.exception()
        if err is not None:
            self.write_errors += 1
            log.error("lock board write failed: %s", err)

    # -- operations --------------------------------------------------------------------------------

    def submit_relay(self, number: int, on: bool) -> concurrent.futures.Future[None]:
        """Queue a coil write; the future completes when the board has confirmed it."""
        if not 1 <= number <= self._n:
            raise KeyError(f"no compartment {number} (this locker has 1..{self._n})")

        def write() -> None:
            self._call(
                f"compartment {number}: switch relay {'on' if on else 'off'}",
                self._client.write_coil,
                self.settings.coil_offset + number - 1,
                on,
                compartment=number,
            )

        return self._submit(write)

    def set_relay(self, number: int, on: bool) -> None:
        """Switch a relay and wait for the board (blocking: for start-up and tools, not the loop)."""
        self.submit_relay(number, on).result()

    def submit_read(self) -> concurrent.futures.Future[list[bool]]:
        return self._submit(self._read_inputs)

    def read_inputs(self) -> list[bool]:
        """Read the door inputs (blocking); return and remember which doors are open."""
        return self.submit_read().result()

    def _read_inputs(self) -> list[bool]:
        s = self.settings
        bits = self._call(
            "read door inputs",
            self._client.read_discrete_inputs,
            s.door_input_offset,
            count=self._n,
        ).bits[: self._n]
        doors = [bool(b) != s.door_closed_when for b in bits]
        if s.occupancy_input_offset is not None:
            occ = self._call(
                "read parcel sensors",
                self._client.read_discrete_inputs,
                s.occupancy_input_offset,
                count=self._n,
            ).bits[: self._n]
            self.occupancy = [bool(b) for b in occ]
        self.doors_open = doors
        return doors

    def door_changes(self) -> ModbusDoorPoller:
        return ModbusDoorPoller(self)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[ModbusCompartment]:
        return iter(self._compartments)

    def __getitem__(self, number: int) -> ModbusCompartment:
        if not 1 <= number <= self._n:
            raise KeyError(f"no compartment {number} (this locker has 1..{self._n})")
        return self._compartments[number - 1]

    def close(self) -> None:
        """Let the worker finish what is queued (the agent's last "relay off" writes), then close
        the port. Waits at most one timeout per queued write and compartment."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._worker.join(timeout=(2 * self._n + 2) * (self.settings.timeout_s * 2 + 0.1))
        if self._worker.is_alive():
            log.error("lock board worker did not finish; closing the port under it")
        self._client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> ModbusBoard:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ModbusDoorPoller:
    """Polls the door inputs and yields each change, compared with the previous poll. A failed
    poll is logged and counted (``board.read_errors``) and retried at the next interval."""

    def __init__(self, board: ModbusBoard) -> None:
        self._board = board
        self._last = list(board.doors_open)
        self._pending: deque[DoorChange] = deque()
        self._closed = False

    def __aiter__(self) -> ModbusDoorPoller:
        return self

    async def __anext__(self) -> DoorChange:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await asyncio.sleep(self._board.settings.poll_interval_s)
            try:
                doors = await asyncio.wrap_future(self._board.submit_read())
            except HardwareOperationError as err:
                self._board.read_errors += 1
                log.warning("lock board poll failed: %s", err)
                continue
            at = datetime.now(UTC)
            for i, (old, new) in enumerate(zip(self._last, doors, strict=True)):
                if old != new:
                    self._pending.append(DoorChange(compartment=i + 1, open=new, at=at))
            self._last = doors
        return self._pending.popleft()

    def close(self) -> None:
        self._closed = True
