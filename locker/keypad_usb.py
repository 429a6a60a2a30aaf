"""A USB numeric keypad read through the kernel's evdev interface (python-evdev).

Imported only when ``keypad = "usb"`` is selected, so a locker with a matrix keypad does not need
evdev. The device is opened by path (best ``/dev/input/by-id/usb-...-event-kbd``, stable across
ports) and *grabbed*, so the digits typed do not also reach a console login on the Pi's screen.

Key codes, not characters: the kernel reports ``KEY_KP1`` whether or not NumLock is on (NumLock
is interpreted by the console, which a grabbed device never reaches). :data:`KEY_MAP` maps the
keypad, top-row and phone-style (``KEY_NUMERIC_*``) digits; ``*`` / Backspace / Esc clear and
Enter / keypad Enter / ``#`` submit. Only key-down events count (value 1): the kernel's autorepeat
(value 2) of a held key is not a second press. Other keys are counted and ignored.

Unplugged (the read fails with ENODEV) or missing at start: the failure is logged and counted
(``stats``), ``health`` says ``disconnected``, and the device is reopened every
``reopen_interval_s`` until it is back; a half-typed entry then times out as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from evdev import InputDevice, ecodes

from locker.settings import UsbKeypadSettings

log = logging.getLogger(__name__)

KEY_DOWN = 1

KEY_MAP: dict[int, str] = {
    **{getattr(ecodes, f"KEY_{d}"): str(d) for d in range(10)},
    **{getattr(ecodes, f"KEY_KP{d}"): str(d) for d in range(10)},
    **{getattr(ecodes, f"KEY_NUMERIC_{d}"): str(d) for d in range(10)},
    ecodes.KEY_KPASTERISK: "*",
    ecodes.KEY_NUMERIC_STAR: "*",
    ecodes.KEY_BACKSPACE: "*",
    ecodes.KEY_ESC: "*",
    ecodes.KEY_KPENTER: "#",
    ecodes.KEY_ENTER: "#",
    ecodes.KEY_NUMERIC_POUND: "#",
}


class Event(Protocol):
    """What is read of an :class:`evdev.InputEvent`."""

    type: int
    code: int
    value: int


class EventDevice(Protocol):
    """The part of :class:`evdev.InputDevice` the keypad uses."""

    def async_read_loop(self) -> AsyncIterator[Event]: ...

    def grab(self) -> None: ...

    def close(self) -> None: ...


Opener = Callable[[str], EventDevice]


def open_evdev(path: str) -> EventDevice:
    """Open an input device. Raises OSError (FileNotFoundError when unplugged, ENOTTY for a file
    that is no input device, PermissionError without the ``input`` group)."""
    return InputDevice(path)


@dataclass
class UsbKeypadStats:
    keys: int = 0
    ignored: int = 0
    """Key-down events of keys that are not on a code keypad."""
    opens: int = 0
    failures: int = 0
    """Failed opens plus lost devices."""
    last_error: str = ""


class KeyMap:
    """Turns evdev events into keypad keys: key-down of a mapped key → its legend, else None."""

    def __init__(self, mapping: dict[int, str] = KEY_MAP) -> None:
        self._map = dict(mapping)

    def key(self, event: Event, stats: UsbKeypadStats) -> str | None:
        if event.type != ecodes.EV_KEY or event.value != KEY_DOWN:
            return None  # EV_SYN, EV_MSC scan codes, LEDs, key-up, autorepeat
        key = self._map.get(event.code)
        if key is None:
            stats.ignored += 1
            log.debug("keypad: key code %d ignored", event.code)
        return key


class UsbKeypad:
    """The keypad protocol of :mod:`locker.keypad` on an evdev device; survives replugging."""

    def __init__(
        self,
        *,
        settings: UsbKeypadSettings,
        opener: Opener = open_evdev,
        key_map: KeyMap | None = None,
    ) -> None:
        self._settings = settings
        self._open = opener
        self._map = key_map or KeyMap()
        self.stats = UsbKeypadStats()
        self.health: Literal["starting", "ok", "disconnected"] = "starting"

    def _lost(self, message: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = message
        if self.health != "disconnected":
            log.warning(
                "USB keypad: %s; retrying every %gs", message, self._settings.reopen_interval_s
            )
        self.health = "disconnected"

    async def keys(self) -> AsyncIterator[str]:
        path = self._settings.device
        while True:
            try:
                device = self._open(path)
            except OSError as err:
                self._lost(f"cannot open {path}: {err}")
                await asyncio.sleep(self._settings.reopen_interval_s)
                continue
            try:
                if self._settings.grab:
                    device.grab()  # EBUSY: another program holds it
                self.stats.opens += 1
                if self.health == "disconnected":
                    log.warning("USB keypad %s is back", path)
                self.health = "ok"
                async for event in device.async_read_loop():
                    key = self._map.key(event, self.stats)
                    if key is not None:
                        self.stats.keys += 1
                        yield key
                self._lost(f"{path} ended")
            except OSError as err:  # ENODEV: unplugged
                self._lost(f"{path} lost: {err}")
            finally:
                with contextlib.suppress(OSError):
                    device.close()
            await asyncio.sleep(self._settings.reopen_interval_s)
