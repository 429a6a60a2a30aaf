"""An RS485 lock board on Modbus RTU: relays as coils, door switches (and parcel sensors) as
discrete inputs. Imported only when ``board = "modbus"`` is selected, so a GPIO locker does not
need pymodbus.

pymodbus is pinned to 3.16 (``device_id=``, not the older ``slave=``). The synchronous
:class:`pymodbus.client.ModbusSerialClient` is used behind one lock: a relay write is a single
round trip (~10 ms at 9600 baud) made from the event loop, so the agent learns at once whether the
lock released; inputs are polled from a worker thread at ``poll_interval_s`` and turned into the
same :class:`~locker.hardware.DoorChange` stream as GPIO edges. A write may wait for one poll in
flight (another round trip); at 9600 baud that keeps ``#`` → relay well under 50 ms.

Every pymodbus error and every Modbus exception response is translated here into
:class:`~locker.errors.HardwareInitError` (at start-up) or
:class:`~locker.errors.HardwareOperationError` (afterwards).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException

from locker.errors import HardwareInitError, HardwareOperationError
from locker.hardware import DoorChange
from locker.settings import ModbusSettings

log = logging.getLogger(__name__)


class ModbusCompartment:
    """One compartment of a :class:`ModbusBoard`."""

    def __init__(self, board: ModbusBoard, number: int) -> None:
        self._board = board
        self.number = number

    def unlock(self) -> None:
        self._board.set_relay(self.number, True)

    def lock(self) -> None:
        self._board.set_relay(self.number, False)

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
        self._lock = threading.Lock()
        self._compartments = [ModbusCompartment(self, n) for n in range(1, compartments + 1)]
        self.doors_open: list[bool] = [True] * compartments
        self.occupancy: list[bool] | None = None
        self.read_errors = 0

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
            board._call("switch every relay off", client.write_coils, settings.coil_offset,
                        [False] * compartments)  # fmt: skip
            board.read_inputs()
        except HardwareOperationError as err:
            board.close()
            raise HardwareInitError(
                f"lock board {settings.device_id} on {settings.port} does not answer: {err}"
            ) from err
        return board

    def _call(self, what: str, method: Any, *args: Any, compartment: int = 0, **kw: Any) -> Any:
        with self._lock:
            try:
                result = method(*args, device_id=self.settings.device_id, **kw)
            except ModbusException as err:
                raise HardwareOperationError(f"{what}: {err}", compartment=compartment) from err
        if result.isError():
            raise HardwareOperationError(
                f"{what}: board answered {result}", compartment=compartment
            )
        return result

    def set_relay(self, number: int, on: bool) -> None:
        if not 1 <= number <= self._n:
            raise KeyError(f"no compartment {number} (this locker has 1..{self._n})")
        self._call(
            f"compartment {number}: switch relay {'on' if on else 'off'}",
            self._client.write_coil,
            self.settings.coil_offset + number - 1,
            on,
            compartment=number,
        )

    def read_inputs(self) -> list[bool]:
        """Read the door inputs (and parcel sensors); return and remember which doors are open."""
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
        with self._lock:
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
                doors = await asyncio.to_thread(self._board.read_inputs)
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
