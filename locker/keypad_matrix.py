"""A membrane matrix keypad (3x4 or 4x4) on GPIO, scanned through gpiozero's pin factory.

Wiring: each key joins one row line to one column line. The columns are inputs with the Pi's
pull-ups; the scan drives one row low at a time and reads which columns follow it low. Rows that
are not being scanned are switched to *inputs* (high impedance), not driven high: with two keys of
one column held, a row driven high and a row driven low would be shorted through the membrane.

What a person presses is recovered from the raw scans by :class:`MatrixScanner`:

- **debounce**: a key changes state only after ``debounce_scans`` identical scans in a row, so
  contact bounce (and a glitch on a long ribbon cable) yields nothing or exactly one key;
- **one key per press**: a key is reported when it goes down, never again while it is held;
- **ghosting**: a matrix without diodes shows a fourth, phantom key when three keys at the corners
  of a rectangle are held. Three or more keys down, or two arriving in the same scan (their order
  unknown), make the reading ambiguous: nothing is reported until every key is released again,
  and the event is counted (``stats.ambiguous``). Two keys held one after the other (a fast
  typist's rollover) cannot ghost and both count.

The scan runs on its own thread every ``scan_interval_s`` and hands each key to the event loop.
While nothing is pressed it holds every row low and reads only the columns (a quarter of a full
scan's pin I/O); a column going low starts row-by-row scans until every key is up again. :class:`MockKeyMatrix` is the simulator: the electrical model
of a passive matrix on mock pins, phantom keys included, for tests and the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gpiozero import Factory, GPIOZeroError
from gpiozero.pins.mock import MockFactory, MockPin

from locker.errors import HardwareInitError, KeypadError
from locker.settings import MatrixKeypadSettings

log = logging.getLogger(__name__)

LAYOUTS: dict[int, tuple[str, ...]] = {
    3: ("123", "456", "789", "*0#"),
    4: ("123A", "456B", "789C", "*0#D"),
}
"""Key legends by number of columns, top row first: the standard 3x4 and 4x4 membrane pads."""


@dataclass
class MatrixStats:
    scans: int = 0
    keys: int = 0
    ambiguous: int = 0
    """Readings with three or more keys (a possible phantom) or two new keys in one scan."""


class MatrixScanner:
    """Turns raw scans (the set of keys that read closed) into key presses. Pure logic: tests and
    :class:`MatrixKeypad` feed it one scan at a time."""

    def __init__(self, *, debounce_scans: int) -> None:
        if debounce_scans < 1:
            raise ValueError(f"debounce_scans must be at least 1, got {debounce_scans}")
        self._debounce = debounce_scans
        self._down: set[str] = set()  # debounced state
        self._streak: dict[str, int] = {}  # raw readings that differ from it, and for how long
        self._blocked = False
        self.stats = MatrixStats()

    @property
    def down(self) -> frozenset[str]:
        return frozenset(self._down)

    @property
    def quiet(self) -> bool:
        """No key down, none settling, not blocked: an empty scan cannot change anything."""
        return not self._down and not self._streak and not self._blocked

    def feed(self, raw: Iterable[str]) -> str | None:
        """One scan's closed keys in; the key that was pressed, if this scan completes a press."""
        self.stats.scans += 1
        closed = set(raw)
        for key in closed ^ self._down:
            self._streak[key] = self._streak.get(key, 0) + 1
        for key in list(self._streak):
            if (key in closed) == (key in self._down):  # back to the debounced state: a bounce
                del self._streak[key]
        settled = {k for k, n in self._streak.items() if n >= self._debounce}
        if not settled:
            return None
        for key in settled:
            del self._streak[key]
        went_down = {k for k in settled if k not in self._down}
        self._down ^= settled
        if self._blocked:
            if not self._down:
                self._blocked = False
            return None
        if len(self._down) >= 3 or len(went_down) >= 2:
            self._blocked = True
            self.stats.ambiguous += 1
            log.info("keypad: %d keys at once, ignored until all are released", len(self._down))
            return None
        if len(went_down) == 1:
            self.stats.keys += 1
            return went_down.pop()
        return None


class MatrixKeypad:
    """The keypad protocol of :mod:`locker.keypad` on GPIO pins; :meth:`close` releases the pins
    (``contextlib.closing`` makes it a context manager). Raises :class:`~locker.errors.HardwareInitError` when a pin cannot be
    claimed (in use, no such pin)."""

    def __init__(self, *, settings: MatrixKeypadSettings, pin_factory: Factory) -> None:
        self._settings = settings
        self._factory = pin_factory
        self._legends = LAYOUTS[len(settings.cols)]
        self._scanner = MatrixScanner(debounce_scans=settings.debounce_scans)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._watching = False
        self.health = "ok"
        names = [*settings.rows, *settings.cols]
        try:
            pin_factory.reserve_pins(self, *names)
        except (GPIOZeroError, OSError) as err:
            raise HardwareInitError(f"keypad: cannot claim pins {names}: {err}") from err
        try:
            self._rows = [pin_factory.pin(n) for n in settings.rows]
            self._cols = [pin_factory.pin(n) for n in settings.cols]
            for pin in self._rows:
                pin.function = "input"
                pin.pull = "floating"
            for pin in self._cols:
                pin.function = "input"
                pin.pull = "up"
        except (GPIOZeroError, OSError) as err:
            pin_factory.release_pins(self, *names)
            raise HardwareInitError(f"keypad: cannot set up pins {names}: {err}") from err

    @property
    def stats(self) -> MatrixStats:
        return self._scanner.stats

    @property
    def held(self) -> frozenset[str]:
        """The keys down after debouncing."""
        return self._scanner.down

    def _conflicts_with(self, other: object) -> bool:
        """gpiozero's reservation check: nothing else may use a keypad line."""
        return True

    @staticmethod
    def _idle(pin: Any) -> None:
        """A row not being scanned: an input (high impedance). Its pull was set to floating once,
        at start-up; switching the function back keeps it, so a scan costs no re-claim for it."""
        pin.function = "input"

    def scan(self) -> set[str]:
        """One pass over the rows: the keys that read closed. Python's own delay between driving a
        row and reading the columns (tens of microseconds) is longer than the lines need to settle
        (a 50 kOhm pull-up on ~100 pF: about 5 microseconds)."""
        self._watch_off()
        closed: set[str] = set()
        for r, row in enumerate(self._rows):
            row.function = "output"
            row.state = False
            try:
                for c, col in enumerate(self._cols):
                    if not col.state:
                        closed.add(self._legends[r][c])
            finally:
                self._idle(row)
        return closed

    def _watch_on(self) -> None:
        """Idle: every row driven low at once (no short: all at one level), so any key pulls its
        column low and one read of the columns tells whether anything is pressed."""
        if not self._watching:
            for row in self._rows:
                row.function = "output"
                row.state = False
            self._watching = True

    def _watch_off(self) -> None:
        if self._watching:
            for row in self._rows:
                self._idle(row)
            self._watching = False

    def poll(self) -> str | None:
        """Scan once and debounce: the key pressed, if this scan completes a press.

        While nothing is pressed (nor settling), this reads only the columns against all rows
        held low: a quarter of the pin I/O of a full scan, which matters on a small Pi polled 200
        times a second. Any column low starts full scans until every key is up again."""
        if self._scanner.quiet and self._watching and all(col.state for col in self._cols):
            return self._scanner.feed(())
        closed = self.scan()
        key = self._scanner.feed(closed)
        if self._scanner.quiet:
            self._watch_on()
        return key

    async def keys(self) -> AsyncIterator[str]:
        """Start the scan thread and yield each key pressed; the thread stops with the iterator."""
        if self._closed:
            raise KeypadError("the matrix keypad is closed")
        if self._thread is not None:
            raise KeypadError("the matrix keypad is already being read")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException] = asyncio.Queue()
        self._stop.clear()

        def deliver(item: str | BaseException) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody reads keys any more
                self._stop.set()

        def scan_loop() -> None:
            try:
                while not self._stop.wait(self._settings.scan_interval_s):
                    key = self.poll()
                    if key is not None:
                        deliver(key)
            except (GPIOZeroError, OSError) as err:
                self.health = "failed"
                deliver(KeypadError(f"keypad scan failed: {err}"))

        self._thread = threading.Thread(target=scan_loop, name="matrix-keypad", daemon=True)
        self._thread.start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    log.error("%s", item)
                    return  # the keypad is gone: the agent logs it and keeps serving the doors
                yield item
        finally:
            self._stop_thread()

    def _stop_thread(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=5)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_thread()
        for pin in (*self._rows, *self._cols):
            with contextlib.suppress(GPIOZeroError, OSError):
                pin.close()
        self._factory.release_pins(self, *self._settings.rows, *self._settings.cols)


class _RowPin(MockPin):  # type: ignore[misc]
    """A mock row line: whenever it is driven or released, the matrix recomputes the columns."""

    def __init__(self, factory: Any, info: Any, matrix: MockKeyMatrix) -> None:
        super().__init__(factory, info)
        self.matrix = matrix

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        self.matrix.settle()

    def _set_state(self, value: Any) -> None:
        super()._set_state(value)
        self.matrix.settle()


class MockKeyMatrix:
    """A passive key matrix wired to mock pins: hold keys, and the column lines read what a real
    membrane would, including phantom keys. Create it *before* the keypad claims the pins.

    Electrically, the held keys join row and column lines into groups; a column reads low when its
    group contains a row that is driven low, else its pull-up holds it high.
    """

    def __init__(self, *, factory: MockFactory, rows: Sequence[int], cols: Sequence[int]) -> None:
        self._legends = LAYOUTS[len(cols)]
        self._lock = threading.RLock()
        self._held: set[str] = set()
        self._cols = [factory.pin(n) for n in cols]
        self._rows = [factory.pin(n, pin_class=_RowPin, matrix=self) for n in rows]
        if not all(isinstance(pin, _RowPin) for pin in self._rows):
            raise ValueError("create the MockKeyMatrix before the keypad claims its pins")

    def _where(self, key: str) -> tuple[int, int]:
        for r, line in enumerate(self._legends):
            if key in line:
                return r, line.index(key)
        raise KeypadError(f"this keypad has no key {key!r}")

    def hold(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._where(key)
            self._held.update(keys)
            self.settle()

    def release(self, *keys: str) -> None:
        with self._lock:
            self._held.difference_update(keys or set(self._held))
            self.settle()

    def settle(self) -> None:
        """Recompute every column line from the rows' drive and the held keys."""
        with self._lock:
            if not hasattr(self, "_rows"):
                return  # still wiring up
            parent = list(range(len(self._rows) + len(self._cols)))

            def find(i: int) -> int:
                while parent[i] != i:
                    parent[i] = parent[parent[i]]
                    i = parent[i]
                return i

            for key in self._held:
                r, c = self._where(key)
                parent[find(r)] = find(len(self._rows) + c)
            low = {
                find(r)
                for r, row in enumerate(self._rows)
                if row.function == "output" and not row.state
            }
            for c, col in enumerate(self._cols):
                if col.function != "input":
                    continue
                if find(len(self._rows) + c) in low:
                    col.drive_low()
                elif col.pull == "up":
                    col.drive_high()
