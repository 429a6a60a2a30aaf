"""Keypads, and the entry rules that turn key presses into submitted codes.

A keypad is anything that yields key presses as single characters (``0``-``9``, ``*``, ``#``; other
keys, e.g. the A-D column of a 4x4 pad, pass through and are ignored by :class:`CodeEntry`). Two
ship here: :class:`SimKeypad` (tests and the demo type on it) and :class:`StdinKeypad` (a terminal);
the hardware ones live beside this module: :mod:`locker.keypad_matrix` (a 3x4/4x4 matrix on GPIO)
and :mod:`locker.keypad_usb` (a USB keypad through evdev, imported only when selected).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TextIO, runtime_checkable

from locker.errors import KeypadError

log = logging.getLogger(__name__)

KEYS = frozenset("0123456789*#ABCD")
CLEAR = "*"
SUBMIT = "#"


class Keypad(Protocol):
    """A source of key presses."""

    def keys(self) -> AsyncIterator[str]:
        """Yield each key pressed, one character at a time, until the keypad is gone."""
        ...


@runtime_checkable
class ReportsHealth(Protocol):
    """A keypad that can fail on its own (unplugged, a pin error): ``health`` is ``ok`` while it
    works; the agent polls it into the locker's retained status, as the van does for its sources."""

    @property
    def health(self) -> str: ...


class CodeEntry:
    """The entry rules: digits accumulate, ``*`` clears, ``#`` submits.

    An entry left alone for ``timeout_s`` is cleared, so half a code typed by one person is not
    completed by the next. An entry longer than ``max_len`` is spoiled: it is discarded on ``#``
    rather than cut short, because a truncated code is not what the person typed.
    """

    def __init__(self, keypad: Keypad, *, max_len: int, timeout_s: float) -> None:
        if max_len < 1:
            raise ValueError(f"max_len must be at least 1, got {max_len}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self._keypad = keypad
        self._max_len = max_len
        self._timeout_s = timeout_s

    async def codes(self) -> AsyncIterator[str]:
        """Yield each submitted code; ends when the keypad ends."""
        keys = aiter(self._keypad.keys())
        buffer: list[str] = []
        spoiled = False
        # The pending read survives timeouts: cancelling an async generator's __anext__ would
        # close the generator, so we wait on it with a timeout instead of cancelling it.
        pending: asyncio.Future[str] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(keys))
                typing = bool(buffer) or spoiled
                done, _ = await asyncio.wait({pending}, timeout=self._timeout_s if typing else None)
                if not done:
                    log.debug("keypad entry timed out; cleared")
                    buffer.clear()
                    spoiled = False
                    continue
                try:
                    key = pending.result()
                except StopAsyncIteration:
                    return
                finally:
                    pending = None
                if key == CLEAR:
                    buffer.clear()
                    spoiled = False
                elif key == SUBMIT:
                    code, was_spoiled = "".join(buffer), spoiled
                    buffer.clear()
                    spoiled = False
                    if was_spoiled:
                        log.info("keypad entry longer than %d keys discarded", self._max_len)
                    elif code:
                        yield code
                elif key.isdigit():
                    if len(buffer) >= self._max_len:
                        spoiled = True
                    else:
                        buffer.append(key)
        finally:
            if pending is not None:
                pending.cancel()


class SimKeypad:
    """A keypad that software types on: ``press("12345678#")`` from any coroutine or thread."""

    def __init__(self) -> None:
        self._pending: deque[str] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup = asyncio.Event()

    def press(self, keys: str) -> None:
        """Queue ``keys`` in order. Raises :class:`~locker.errors.KeypadError` for a key the pad
        does not have, before queueing any of them."""
        unknown = sorted(set(keys) - KEYS)
        if unknown:
            raise KeypadError(f"this keypad has no key(s) {unknown}")
        with self._lock:
            self._pending.extend(keys)
            loop, wake = self._loop, self._wakeup.set
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening any more
                loop.call_soon_threadsafe(wake)

    async def keys(self) -> AsyncIterator[str]:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()  # bound to this loop, not to one a previous run used
        while True:
            self._wakeup.clear()
            with self._lock:
                batch = list(self._pending)
                self._pending.clear()
            if not batch:
                await self._wakeup.wait()
                continue
            for key in batch:
                yield key


class StdinKeypad:
    """Keys from a terminal: each line is a sequence of keys with a trailing ``#`` implied.

    Lines are read on a daemon thread, not the loop's default executor: a thread blocked in
    ``readline`` cannot be cancelled, and ``asyncio.run`` would wait for it at exit until someone
    pressed Enter.
    """

    def __init__(self, *, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin

    async def keys(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        put: Callable[[str | None], None] = lines.put_nowait

        def read() -> None:
            try:
                try:
                    for line in self._stream:
                        loop.call_soon_threadsafe(put, line)
                except (OSError, ValueError) as err:  # closed or unreadable stream
                    log.warning("keypad input failed: %s", err)
                loop.call_soon_threadsafe(put, None)
            except RuntimeError:
                pass  # the loop is closed: the agent has stopped listening

        threading.Thread(target=read, name="stdin-keypad", daemon=True).start()
        while (line := await lines.get()) is not None:
            keys = line.strip()
            if not keys:
                continue
            if not keys.endswith(SUBMIT):
                keys += SUBMIT
            for key in keys:
                yield key
