"""The GPIO matrix keypad as hardware stories on gpiozero mock pins: a held key joins its row and
column lines, so the column follows the row low while the scan drives that row; bounce, glitches
and phantom keys on the lines."""

from __future__ import annotations

import asyncio
import random
from contextlib import closing
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.settings import load_settings
from locker.app import open_locker
from locker.errors import HardwareInitError
from locker.hardware import MockLockerFactory
from locker.keypad import CodeEntry
from locker.keypad_matrix import MatrixKeypad, MatrixScanner, MockKeyMatrix
from locker.settings import LockerSettings, MatrixKeypadSettings
from protocol.codes import hash_code
from tests.locker.story import T0, FakeClock, grant, offline, relay_history, settings_for, until

ROOT = Path(__file__).resolve().parents[2]
ROWS = [4, 7, 8, 9]  # the wiring of firmware_configs/locker/locker.toml
COLS = [10, 11, 20, 18]
DEBOUNCE = 4


def _pad(factory: MockLockerFactory, cols: list[int] = COLS) -> tuple[MockKeyMatrix, MatrixKeypad]:
    matrix = MockKeyMatrix(factory=factory, rows=ROWS, cols=cols)
    settings = MatrixKeypadSettings(rows=ROWS, cols=cols, debounce_scans=DEBOUNCE)
    return matrix, MatrixKeypad(settings=settings, pin_factory=factory)


def _polls(pad: MatrixKeypad, n: int) -> list[str]:
    return [k for k in (pad.poll() for _ in range(n)) if k is not None]


def test_a_column_pulled_low_while_its_row_is_driven_is_that_key(
    factory: MockLockerFactory,
) -> None:
    matrix, pad = _pad(factory)
    with closing(pad):
        assert pad.scan() == set()
        matrix.hold("6")  # row 2, column 3
        assert pad.scan() == {"6"}
        # Column 3 followed row 2 low while the scan drove it, and the pull-up took it back high
        # once the row floated again (an input, not driven high).
        col3 = factory.pin(COLS[2])
        assert [s.state for s in col3.states][-4:] == [False, True, False, True]
        assert all(factory.pin(r).function == "input" for r in ROWS)
        matrix.release("6")
        assert pad.scan() == set()


def test_one_press_is_one_key_however_long_it_is_held(factory: MockLockerFactory) -> None:
    matrix, pad = _pad(factory)
    with closing(pad):
        matrix.hold("5")
        assert _polls(pad, DEBOUNCE - 1) == []  # not yet: still within the debounce
        assert _polls(pad, 1) == ["5"]
        assert _polls(pad, 50) == []  # held: no repeat
        matrix.release("5")
        assert _polls(pad, DEBOUNCE) == []
        matrix.hold("5")
        assert _polls(pad, DEBOUNCE) == ["5"]  # pressed again: a second key


def test_while_idle_every_row_is_held_low_and_a_press_starts_row_scans(
    factory: MockLockerFactory,
) -> None:
    matrix, pad = _pad(factory)
    rows = [factory.pin(r) for r in ROWS]
    with closing(pad):
        assert _polls(pad, 3) == []
        assert all(r.function == "output" and not r.state for r in rows)  # one column read a poll
        matrix.hold("0")
        assert _polls(pad, DEBOUNCE) == ["0"]
        assert all(r.function == "input" for r in rows)  # row by row while a key is down
        matrix.release("0")
        assert _polls(pad, DEBOUNCE) == []
        assert all(r.function == "output" for r in rows)  # quiet again: back to watching
        matrix.hold("#")
        assert _polls(pad, DEBOUNCE) == ["#"]


def test_contact_bounce_and_glitches_yield_nothing_or_one_key(factory: MockLockerFactory) -> None:
    matrix, pad = _pad(factory)
    rnd = random.Random(7)
    with closing(pad):
        for _ in range(200):  # a noisy line: never closed for DEBOUNCE scans in a row
            if rnd.random() < 0.5:
                matrix.hold("8")
            else:
                matrix.release("8")
            if pad.poll() is not None:
                break
            matrix.release("8")
            assert pad.poll() is None
        assert pad.stats.keys == 0
        # A bouncy press that ends held: exactly one key, then bouncy release: none.
        got = []
        for state in [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1]:
            matrix.hold("8") if state else matrix.release("8")
            got += _polls(pad, 1)
        for state in [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]:
            matrix.hold("8") if state else matrix.release("8")
            got += _polls(pad, 1)
        assert got == ["8"]


def test_a_column_pin_glitching_low_on_its_own_is_ignored(factory: MockLockerFactory) -> None:
    """Garbage on a column line itself (an induced spike): low for one scan, then high again."""
    _, pad = _pad(factory)
    col = factory.pin(COLS[0])
    with closing(pad):
        for _ in range(20):
            col.drive_low()  # every key of the column reads closed: 1, 4, 7, *
            assert pad.poll() is None
            col.drive_high()
            assert pad.poll() is None
        assert pad.stats.keys == 0


def test_three_keys_at_a_rectangle_show_a_phantom_and_are_all_ignored(
    factory: MockLockerFactory,
) -> None:
    matrix, pad = _pad(factory)
    with closing(pad):
        matrix.hold("1", "2", "4")
        assert pad.scan() == {"1", "2", "4", "5"}  # 5 is the phantom: no diodes in a membrane
        assert _polls(pad, 20) == []
        matrix.release("2")
        assert _polls(pad, 20) == []  # still blocked until every key is up
        matrix.release()
        assert _polls(pad, 20) == []
        matrix.hold("9")
        assert _polls(pad, DEBOUNCE) == ["9"]
    assert pad.stats.ambiguous == 1


def test_two_keys_landing_in_one_scan_are_ambiguous_but_rollover_counts() -> None:
    scanner = MatrixScanner(debounce_scans=2)
    keys = [scanner.feed(raw) for raw in [{"1", "2"}, {"1", "2"}, set(), set()]]
    assert keys == [None] * 4 and scanner.stats.ambiguous == 1
    rollover = [{"1"}, {"1"}, {"1", "2"}, {"1", "2"}, {"2"}, {"2"}, set(), set()]
    assert [k for k in map(scanner.feed, rollover) if k] == ["1", "2"]


def test_a_3x4_pad_has_star_zero_hash_on_its_bottom_row(factory: MockLockerFactory) -> None:
    matrix, pad = _pad(factory, cols=COLS[:3])
    with closing(pad):
        got = []
        for key in "*0#3":
            matrix.hold(key)
            got += _polls(pad, DEBOUNCE)
            matrix.release(key)
            got += _polls(pad, DEBOUNCE)
        assert got == ["*", "0", "#", "3"]
    with pytest.raises(Exception, match="no key 'A'"):
        matrix.hold("A")


def test_pins_in_use_are_an_init_error_and_close_frees_them(factory: MockLockerFactory) -> None:
    _, pad = _pad(factory)
    settings = MatrixKeypadSettings(rows=ROWS, cols=COLS)
    with pytest.raises(HardwareInitError, match="cannot claim"):
        MatrixKeypad(settings=settings, pin_factory=factory)
    pad.close()
    MatrixKeypad(settings=settings, pin_factory=factory).close()


def test_the_settings_refuse_a_keypad_on_a_compartment_pin(tmp_path) -> None:
    with pytest.raises(ValidationError, match="needs a \\[keypad_matrix\\] table"):
        settings_for(tmp_path, keypad="matrix")
    with pytest.raises(ValidationError, match="pins used twice: \\[1001\\]"):
        settings_for(tmp_path, keypad="matrix", keypad_matrix={"rows": [1001, 7, 8, 9],
                                                               "cols": COLS})  # fmt: skip
    with pytest.raises(ValidationError, match="keypad pins used twice"):
        MatrixKeypadSettings(rows=[4, 7, 8, 9], cols=[4, 11, 20])


async def _type(matrix: MockKeyMatrix, pad: MatrixKeypad, keys: str) -> None:
    """Press and release each key, waiting for the scan thread to see each edge (no fixed sleeps:
    the machine may be loaded)."""
    for key in keys:
        before = pad.stats.keys
        matrix.hold(key)
        await until(lambda b=before: pad.stats.keys > b, what=f"key {key} down")  # type: ignore[misc]
        matrix.release(key)
        await until(lambda: not pad.held, what=f"key {key} up")


def test_the_scan_thread_feeds_the_entry_rules(factory: MockLockerFactory) -> None:
    matrix, pad = _pad(factory)

    async def story() -> list[str]:
        entry = CodeEntry(pad, max_len=8, timeout_s=30)
        codes: list[str] = []

        async def collect() -> None:
            async for code in entry.codes():
                codes.append(code)

        task = asyncio.create_task(collect())
        await _type(matrix, pad, "12*34A5#")
        await until(lambda: codes == ["345"], what="the code")
        task.cancel()
        return codes

    with closing(pad):
        assert asyncio.run(story()) == ["345"]


def test_a_code_typed_on_the_matrix_opens_its_compartment(
    tmp_path, factory: MockLockerFactory
) -> None:
    matrix = MockKeyMatrix(factory=factory, rows=ROWS, cols=COLS)
    settings = settings_for(tmp_path, keypad="matrix", keypad_matrix={"rows": ROWS, "cols": COLS})

    async def story() -> None:
        with open_locker(settings, pin_factory=factory, clock=FakeClock()) as agent:
            agent._grants.add(grant("2468", compartment=2, now=T0), now=T0)
            pad = agent._keypad
            assert isinstance(pad, MatrixKeypad)
            async with offline(agent):
                await until(lambda: pad._thread is not None, what="scanning")
                await _type(matrix, pad, "2468#")
                await until(lambda: relay_history(factory, 2) == [False, True], what="relay 2")

    asyncio.run(story())
    assert factory.pin(ROWS[0]).function == "input"  # released on exit


def test_a_pin_that_fails_mid_scan_ends_the_keys_and_says_so(
    factory: MockLockerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPIO read failing (a chip gone, a driver error): the keypad reports ``failed`` and its key
    stream ends, so the agent marks it gone and keeps serving the doors."""
    _, pad = _pad(factory)

    def broken() -> bool:
        raise OSError(5, "Input/output error")

    async def story() -> list[str]:
        got: list[str] = []
        async with asyncio.timeout(10):
            keys = pad.keys()
            monkeypatch.setattr(factory.pin(COLS[1]), "_get_state", broken)
            async for key in keys:
                got.append(key)
        return got

    with closing(pad):
        assert asyncio.run(story()) == []
        assert pad.health == "failed"


def test_the_shipped_locker_wiring_claims_its_pins_without_a_clash(
    tmp_path, factory: MockLockerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """firmware_configs/locker/locker.toml on mock pins of the same Pi header: every relay, door,
    parcel sensor and keypad line is claimed once, and a code typed on its keypad opens a door."""
    monkeypatch.setenv("LASTMILE_STATE_DIR", str(tmp_path))
    shipped = load_settings(LockerSettings, ROOT / "firmware_configs/locker/locker.toml")
    assert shipped.keypad == "matrix" and shipped.keypad_matrix is not None
    wiring = shipped.keypad_matrix
    matrix = MockKeyMatrix(factory=factory, rows=wiring.rows, cols=wiring.cols)

    async def story() -> None:
        with open_locker(shipped, pin_factory=factory, clock=FakeClock()) as agent:
            g = grant("97531", compartment=5, locker_id=shipped.device_id, now=T0)
            # Hashed with this locker's own code key, as the hub would.
            g = g.model_copy(update={"code_hash": hash_code(shipped.locker_key(), "97531")})
            agent._grants.add(g, now=T0)
            pad = agent._keypad
            assert isinstance(pad, MatrixKeypad)
            relay = factory.pin(shipped.pins[4].relay)
            for c in shipped.pins:
                factory.pin(c.door).drive_low()  # every door shut
            async with offline(agent):
                await until(lambda: pad._thread is not None, what="scanning")
                await _type(matrix, pad, "97531#")
                await until(lambda: bool(relay.state), what="compartment 5's relay")

    asyncio.run(story())
