"""Brute force at the keypad: the schedule, its survival of a power cut, and the bound it buys."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from locker.app import open_locker
from locker.hardware import MockLockerFactory
from locker.keypad import SimKeypad
from locker.lockout import Lockout, LockoutPolicy
from protocol.codes import CODE_DIGITS
from tests.locker.story import (
    T0,
    FakeClock,
    grant,
    offline,
    queued_events,
    relay_history,
    settings_for,
    shut_doors,
    until,
)

COMPARTMENTS = 12
LIVE_GRANTS_PER_COMPARTMENT = 3
COURIER_SKEW_STEPS = 2  # the setting's default: 2·2+1 courier codes are live at any moment
LIVE_CODES = COMPARTMENTS * LIVE_GRANTS_PER_COMPARTMENT + 2 * COURIER_SKEW_STEPS + 1


def test_five_free_failures_then_thirty_seconds_doubling_to_an_hour() -> None:
    policy = LockoutPolicy()
    assert [policy.lockout_s(n) for n in range(1, 14)] == [
        0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 960, 1920, 3600,
    ]  # fmt: skip
    assert policy.lockout_s(1000) == 3600


def test_a_locked_keypad_stays_locked_across_a_power_cut(tmp_path) -> None:
    path = tmp_path / "L1-lockout.db"
    with Lockout(path) as lockout:
        for _ in range(6):
            state = lockout.record_failure(now=T0)
        assert state.failures == 6 and state.locked_until == T0 + timedelta(seconds=30)
    with Lockout(path) as lockout:  # the attacker pulled the plug and put it back
        assert lockout.is_locked(now=T0 + timedelta(seconds=29))
        assert not lockout.is_locked(now=T0 + timedelta(seconds=30))
        state = lockout.record_failure(now=T0 + timedelta(seconds=30))
        assert (state.failures, state.locked_until) == (7, T0 + timedelta(seconds=90))


def test_only_a_spent_single_use_grant_or_a_quiet_day_forgives(tmp_path) -> None:
    with Lockout(tmp_path / "lockout.db") as lockout:
        for _ in range(4):
            lockout.record_failure(now=T0)
        lockout.record_success(now=T0, resets=False)  # a courier code or a multi-use grant
        assert lockout.state().failures == 4
        lockout.record_success(now=T0, resets=True)  # a parcel's own single-use code
        assert lockout.state().failures == 0
        for _ in range(4):
            lockout.record_failure(now=T0)
        later = T0 + timedelta(days=1)
        assert lockout.record_failure(now=later).failures == 1


def attempts_per_day(policy: LockoutPolicy, tmp_path) -> int:  # type: ignore[no-untyped-def]
    """An attacker who types a wrong code the instant the keypad listens, for one day."""
    clock = FakeClock()
    end = T0 + timedelta(days=1)
    attempts = 0
    with Lockout(tmp_path / "attack.db", policy=policy) as lockout:
        while clock.now < end:
            state = lockout.state()
            if state.locked(clock.now):
                assert state.locked_until is not None
                clock.now = state.locked_until
                continue
            lockout.record_failure(now=clock.now)
            attempts += 1
    return attempts


def test_a_day_of_brute_force_stays_below_one_in_ten_thousand(tmp_path) -> None:
    attempts = attempts_per_day(LockoutPolicy(), tmp_path)
    assert attempts == 35  # as derived in locker/lockout.py
    probability = attempts * LIVE_CODES / 10**CODE_DIGITS
    assert probability <= 1e-4, f"P = {probability:.2e} per locker-day"


def test_the_agent_ignores_the_keypad_while_locked_out_and_says_so(
    tmp_path, factory: MockLockerFactory
) -> None:
    clock = FakeClock()

    async def story() -> None:
        keypad = SimKeypad()
        with open_locker(
            settings_for(tmp_path), pin_factory=factory, keypad=keypad, clock=clock
        ) as agent:
            agent._grants.add(grant("48151623", compartment=2, now=T0), now=T0)
            shut_doors(factory)
            async with offline(agent):
                keypad.press("11111111#" * 6)
                await until(lambda: agent.stats.lockouts == 1, what="locked out")
                keypad.press("48151623#")  # the right code, but nobody is listening
                await until(lambda: agent.stats.codes_ignored == 1, what="entry ignored")
                assert relay_history(factory, 2) == [False]
                clock.advance(30)
                keypad.press("48151623#")
                await until(lambda: factory.pin(1002).state, what="relay 2 energized")

    asyncio.run(story())
    events = queued_events(tmp_path)
    assert [e.kind for e in events] == ["code_rejected"] * 6 + [
        "keypad_lockout",
        "code_accepted",
        "unlocked",
    ]
    lockout = events[6]
    assert (lockout.failures, lockout.until) == (6, T0 + timedelta(seconds=30))


def test_a_restart_does_not_lift_the_lockout(tmp_path, factory: MockLockerFactory) -> None:
    clock = FakeClock()
    settings = settings_for(tmp_path)

    async def attack() -> None:
        keypad = SimKeypad()
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=clock) as agent:
            async with offline(agent):
                keypad.press("22222222#" * 6)
                await until(lambda: agent.stats.lockouts == 1)

    async def after_power_cut() -> None:
        keypad = SimKeypad()
        with open_locker(settings, pin_factory=factory, keypad=keypad, clock=clock) as agent:
            async with offline(agent):
                keypad.press("33333333#")
                await until(lambda: agent.stats.codes_ignored == 1)
                assert agent.stats.codes_rejected == 0

    asyncio.run(attack())
    factory.reset()
    asyncio.run(after_power_cut())
