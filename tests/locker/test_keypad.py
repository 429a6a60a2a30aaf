"""Entry rules on a simulated keypad: digits add up, * clears, # submits, silence and excess spoil."""

from __future__ import annotations

import asyncio
import io
import threading

import pytest

from locker.errors import KeypadError
from locker.keypad import CodeEntry, SimKeypad, StdinKeypad


async def _codes(entry: CodeEntry, n: int, *, timeout: float = 5.0) -> list[str]:
    out: list[str] = []
    async with asyncio.timeout(timeout):
        async for code in entry.codes():
            out.append(code)
            if len(out) == n:
                break
    return out


def test_hash_submits_and_star_clears() -> None:
    async def story() -> list[str]:
        pad = SimKeypad()
        pad.press("12*3456#")  # a slip, cleared, then the code
        pad.press("#")  # an empty entry submits nothing
        pad.press("7A8B#")  # letter keys are ignored
        return await _codes(CodeEntry(pad, max_len=12, timeout_s=5), 2)

    assert asyncio.run(story()) == ["3456", "78"]


def test_an_entry_longer_than_the_maximum_is_discarded_not_cut_short() -> None:
    async def story() -> list[str]:
        pad = SimKeypad()
        pad.press("1234567" + "#")
        pad.press("12345678" + "#")  # one too many for max_len 7
        pad.press("42#")
        return await _codes(CodeEntry(pad, max_len=7, timeout_s=5), 2)

    assert asyncio.run(story()) == ["1234567", "42"]


def test_a_pause_clears_a_half_typed_code() -> None:
    async def story() -> list[str]:
        pad = SimKeypad()
        entry = CodeEntry(pad, max_len=12, timeout_s=0.05)
        got = asyncio.create_task(_codes(entry, 1))
        pad.press("99")  # someone starts typing and walks away
        await asyncio.sleep(0.3)  # the pause under test: several timeouts long
        pad.press("12#")  # the next person types their code
        return await got

    assert asyncio.run(story()) == ["12"]


def test_a_pause_between_entries_does_not_lose_keys() -> None:
    async def story() -> list[str]:
        pad = SimKeypad()
        entry = CodeEntry(pad, max_len=12, timeout_s=0.02)
        got = asyncio.create_task(_codes(entry, 2))
        pad.press("1#")
        await asyncio.sleep(0.1)
        pad.press("2#")
        return await got

    assert asyncio.run(story()) == ["1", "2"]


def test_keys_may_be_pressed_from_another_thread() -> None:
    async def story() -> list[str]:
        pad = SimKeypad()
        got = asyncio.create_task(_codes(CodeEntry(pad, max_len=12, timeout_s=5), 1))
        await asyncio.sleep(0)  # let the entry start listening
        thread = threading.Thread(target=pad.press, args=("8675309#",))
        thread.start()
        result = await got
        thread.join()
        return result

    assert asyncio.run(story()) == ["8675309"]


def test_a_key_the_pad_does_not_have_is_refused() -> None:
    pad = SimKeypad()
    with pytest.raises(KeypadError, match="x"):
        pad.press("12x#")


def test_stdin_lines_are_codes_with_an_implied_hash() -> None:
    async def story() -> list[str]:
        pad = StdinKeypad(stream=io.StringIO("1234\n\n  5678# \n9*10\n"))
        return await _codes(CodeEntry(pad, max_len=12, timeout_s=5), 3)

    assert asyncio.run(story()) == ["1234", "5678", "10"]


def test_stdin_keypad_ends_at_end_of_input() -> None:
    async def story() -> list[str]:
        pad = StdinKeypad(stream=io.StringIO("1\n"))
        return [code async for code in CodeEntry(pad, max_len=12, timeout_s=5).codes()]

    assert asyncio.run(story()) == ["1"]
