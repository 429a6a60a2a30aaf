"""The USB keypad over evdev.

This sandbox has no ``/dev/uinput`` (no uinput module in its kernel, ``mknod`` gives ENODEV) and no
``/dev/input`` at all, so no real input device can be made here. What is real: python-evdev's own
``InputEvent`` objects, in the sequences the kernel emits for a USB HID keypad (EV_MSC scan code,
EV_KEY, EV_SYN per key; autorepeat as value 2; NumLock's LED), fed through the mapping and the
reconnect logic; and python-evdev's real ``InputDevice`` opening paths that are not keypads. The
unplug/replug story uses a scripted device standing in for ``InputDevice`` (same three methods).
"""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
from evdev import InputEvent, ecodes
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.settings import MqttSettings
from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import CodeEntry
from locker.keypad_usb import KEY_MAP, EventDevice, KeyMap, UsbKeypad, UsbKeypadStats
from locker.settings import UsbKeypadSettings
from protocol.codec import decode
from protocol.messages import DeviceStatus
from protocol.topics import Channel, locker_topic
from tests.locker.story import Listener, listening, running, settings_for, until

SETTINGS = UsbKeypadSettings(device="/dev/input/by-id/usb-keypad-event-kbd", reopen_interval_s=0.01)
T = 1_700_000_000


def _press(code: int, *, t: int = 0, repeats: int = 0) -> list[InputEvent]:
    """What the kernel reports for one key of a USB HID keypad, down (+ autorepeat) and up."""
    scan = 0x70000 + code
    down = [
        InputEvent(T + t, 0, ecodes.EV_MSC, ecodes.MSC_SCAN, scan),
        InputEvent(T + t, 0, ecodes.EV_KEY, code, 1),
        InputEvent(T + t, 0, ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
    ]
    held = [InputEvent(T + t, 250_000, ecodes.EV_KEY, code, 2) for _ in range(repeats)]
    up = [
        InputEvent(T + t, 500_000, ecodes.EV_MSC, ecodes.MSC_SCAN, scan),
        InputEvent(T + t, 500_000, ecodes.EV_KEY, code, 0),
        InputEvent(T + t, 500_000, ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
    ]
    return down + held + up


def _typed(codes: list[int]) -> list[InputEvent]:
    return [e for i, c in enumerate(codes) for e in _press(c, t=i)]


def _keys(events: list[InputEvent]) -> list[str]:
    stats = UsbKeypadStats()
    keymap = KeyMap()
    return [k for k in (keymap.key(e, stats) for e in events) if k is not None]


def test_keypad_codes_map_to_digits_star_and_hash() -> None:
    kp = [getattr(ecodes, f"KEY_KP{d}") for d in (4, 8, 1, 5)]
    assert _keys(_typed([*kp, ecodes.KEY_KPENTER])) == ["4", "8", "1", "5", "#"]
    assert _keys(_typed([ecodes.KEY_KPASTERISK, ecodes.KEY_BACKSPACE, ecodes.KEY_ESC])) == ["*"] * 3
    phone = [ecodes.KEY_NUMERIC_7, ecodes.KEY_NUMERIC_STAR, ecodes.KEY_NUMERIC_POUND]
    assert _keys(_typed(phone)) == ["7", "*", "#"]
    assert _keys(_typed([ecodes.KEY_1, ecodes.KEY_0, ecodes.KEY_ENTER])) == ["1", "0", "#"]


def test_a_held_key_autorepeats_in_the_kernel_but_counts_once() -> None:
    assert _keys(_press(ecodes.KEY_KP9, repeats=12)) == ["9"]


def test_other_keys_and_events_are_ignored_and_counted() -> None:
    stats = UsbKeypadStats()
    keymap = KeyMap()
    events = [
        InputEvent(T, 0, ecodes.EV_LED, ecodes.LED_NUML, 1),  # NumLock's light
        *_press(ecodes.KEY_NUMLOCK),
        *_press(ecodes.KEY_KPPLUS),
        *_press(ecodes.KEY_KPSLASH),
        *_press(ecodes.KEY_KP3),
    ]
    assert [k for k in (keymap.key(e, stats) for e in events) if k] == ["3"]
    assert stats.ignored == 3


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([ecodes.EV_SYN, ecodes.EV_KEY, ecodes.EV_MSC, ecodes.EV_LED, 0x1F]),
            st.integers(min_value=0, max_value=0x2FF),
            st.integers(min_value=-(2**31), max_value=2**31 - 1),
        ),
        max_size=60,
    )
)
def test_garbage_events_yield_only_keypad_keys(raw: list[tuple[int, int, int]]) -> None:
    """Whatever a device sends (unknown types, codes past KEY_MAX, odd values), only a key-down
    of a mapped key is a key."""
    events = [InputEvent(T, 0, t, c, v) for t, c, v in raw]
    expected = [KEY_MAP[c] for t, c, v in raw if t == ecodes.EV_KEY and v == 1 and c in KEY_MAP]
    assert _keys(events) == expected


class ScriptedDevice:
    """Plays recorded events, then fails the read like an unplugged device (ENODEV)."""

    def __init__(self, events: list[InputEvent], *, unplug: bool) -> None:
        self._events = events
        self._unplug = unplug
        self.grabbed = False
        self.closed = False

    async def _read(self) -> AsyncIterator[InputEvent]:
        for event in self._events:
            await asyncio.sleep(0)
            yield event
        if self._unplug:
            raise OSError(errno.ENODEV, "No such device")
        await asyncio.Event().wait()  # plugged in: waits for more keys

    def async_read_loop(self) -> AsyncIterator[InputEvent]:
        return self._read()

    def grab(self) -> None:
        self.grabbed = True

    def close(self) -> None:
        self.closed = True


def test_an_unplugged_keypad_is_reported_and_recovered_when_plugged_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = ScriptedDevice(_typed([ecodes.KEY_KP1, ecodes.KEY_KP2]), unplug=True)
    second = ScriptedDevice(_typed([ecodes.KEY_KP3, ecodes.KEY_KP4, ecodes.KEY_KPENTER]),
                            unplug=False)  # fmt: skip
    script: Iterator[EventDevice | OSError] = iter(
        [
            FileNotFoundError(errno.ENOENT, "No such file or directory"),  # not plugged in yet
            first,
            FileNotFoundError(errno.ENOENT, "No such file or directory"),  # unplugged...
            FileNotFoundError(errno.ENOENT, "No such file or directory"),
            second,  # ... and back
        ]
    )
    health: list[str] = []

    def opener(path: str) -> EventDevice:
        assert path == SETTINGS.device
        health.append(pad.health)
        step = next(script)
        if isinstance(step, OSError):
            raise step
        return step

    pad = UsbKeypad(settings=SETTINGS, opener=opener)

    async def story() -> list[str]:
        entry = CodeEntry(pad, max_len=12, timeout_s=30)
        async with asyncio.timeout(10):
            async for code in entry.codes():
                return [code]
        return []

    # The half-typed "12" is not lost by the unplug: the entry rules carry it, and "34#" completes
    # it (the inactivity timeout, not the unplug, is what clears a half-typed code).
    assert asyncio.run(story()) == ["1234"]
    assert first.grabbed and first.closed and second.grabbed
    assert pad.stats.opens == 2 and pad.stats.failures == 4
    assert health == ["starting", "disconnected", "disconnected", "disconnected", "disconnected"]
    assert pad.stats.last_error.startswith(f"cannot open {SETTINGS.device}: [Errno 2]")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"USB keypad: cannot open {SETTINGS.device}: [Errno 2] No such file or directory; "
        "retrying every 0.01s",
        f"USB keypad {SETTINGS.device} is back",
        f"USB keypad: {SETTINGS.device} lost: [Errno 19] No such device; retrying every 0.01s",
        f"USB keypad {SETTINGS.device} is back",
    ]
    assert pad.health == "ok"
    assert pad.stats.keys == 5


@pytest.mark.parametrize(
    ("path", "error"),
    [("/dev/input/by-id/no-such-keypad", "No such file"), ("/dev/null", "ioctl")],
)
def test_the_real_evdev_opener_reports_what_is_no_keypad(path: str, error: str) -> None:
    """python-evdev's InputDevice on a missing path and on a file that is no input device."""
    pad = UsbKeypad(settings=UsbKeypadSettings(device=path, reopen_interval_s=0.01))

    async def story() -> None:
        keys = aiter(pad.keys())
        read = asyncio.ensure_future(anext(keys))
        while pad.stats.failures < 3:
            await asyncio.sleep(0.01)
        read.cancel()

    asyncio.run(story())
    assert pad.health == "disconnected"
    assert error in pad.stats.last_error
    assert pad.stats.opens == 0


def test_evdev_is_imported_only_for_a_usb_keypad(tmp_path) -> None:
    code = (
        "import sys; import locker.app, locker.cli, locker.keypad_matrix; "
        "print('evdev' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_config_selects_the_usb_keypad(tmp_path, factory: MockLockerFactory) -> None:
    settings = settings_for(tmp_path, keypad="usb", keypad_usb={"device": "/dev/input/event3"})
    with open_locker(settings, pin_factory=factory) as agent:
        assert isinstance(agent._keypad, UsbKeypad)
    with pytest.raises(ValidationError, match="needs a \\[keypad_usb\\] table"):
        settings_for(tmp_path, keypad="usb")


class Socket:
    """A USB socket a keypad is plugged into and pulled out of, during the story."""

    def __init__(self) -> None:
        self.plugged = True
        self._pulled = asyncio.Event()

    def open(self, path: str) -> EventDevice:
        if not self.plugged:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self._pulled = asyncio.Event()
        return PluggedDevice(self._pulled)

    def pull(self) -> None:
        self.plugged = False
        self._pulled.set()


class PluggedDevice(ScriptedDevice):
    def __init__(self, pulled: asyncio.Event) -> None:
        super().__init__([], unplug=True)
        self._pulled = pulled

    async def _read(self) -> AsyncIterator[InputEvent]:
        await self._pulled.wait()
        raise OSError(errno.ENODEV, "No such device")
        yield  # an async generator


def test_the_hub_sees_the_keypad_unplugged_and_back_in_the_locker_status(
    tmp_path, factory: MockLockerFactory, mqtt_settings: MqttSettings
) -> None:
    usb = Socket()
    pad = UsbKeypad(settings=SETTINGS, opener=usb.open)
    settings = settings_for(tmp_path, mqtt_settings, keypad="usb",
                            keypad_usb={"device": SETTINGS.device})  # fmt: skip

    def states(listener: Listener) -> list[str]:
        return [decode(p, DeviceStatus).health.get("keypad_state", "") for p in listener.payloads]

    async def story() -> list[str]:
        status = locker_topic("L1", Channel.STATUS)
        async with listening(mqtt_settings, status) as hub:
            with open_locker(settings, pin_factory=factory, keypad=pad) as agent:
                async with running(agent):
                    await until(lambda: pad.health == "ok", what="keypad open")
                    usb.pull()
                    await until(lambda: "disconnected" in states(hub), what="reported unplugged")
                    usb.plugged = True
                    await until(lambda: states(hub)[-1] == "ok", what="reported back")
        return states(hub)

    seen = asyncio.run(story())
    seen = [s for s in seen if s != "starting"]  # a status sent before the first open
    changes = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert changes == ["ok", "disconnected", "ok"], seen
