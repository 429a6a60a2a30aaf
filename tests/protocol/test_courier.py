"""Offline courier codes: RFC 6238 with SHA-256, eight digits, a skew window, and a key of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from protocol.codes import derive_courier_key, derive_locker_key
from protocol.courier import hotp, match_step, time_step, totp

RFC_SEED = b"12345678901234567890123456789012"  # RFC 6238 appendix B, the SHA-256 seed
MASTER = b"master secret of the test hub!!!"


@pytest.mark.parametrize(
    ("unix", "code"),
    [
        (59, "46119246"),
        (1111111109, "68084774"),
        (1111111111, "67062674"),
        (1234567890, "91819424"),
        (2000000000, "90698825"),
        (20000000000, "77737706"),
    ],
)
def test_the_rfc_6238_sha256_vectors(unix: int, code: str) -> None:
    assert totp(RFC_SEED, unix, step_s=30) == code


def test_a_code_is_accepted_within_the_skew_and_refused_outside() -> None:
    key = derive_courier_key(MASTER, "L1")
    now = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
    step = time_step(now, step_s=60)
    for drift in (-2, -1, 0, 1, 2):  # the courier's phone runs up to two minutes off
        code = hotp(key, step + drift)
        assert match_step(key, code, at=now, step_s=60, skew_steps=2) == step + drift
    for drift in (-3, 3):
        code = hotp(key, step + drift)
        assert match_step(key, code, at=now, step_s=60, skew_steps=2) is None
    assert match_step(key, totp(key, now - timedelta(minutes=1)), at=now, skew_steps=0) is None


def test_the_courier_key_is_not_the_code_key_and_differs_per_locker() -> None:
    assert derive_courier_key(MASTER, "L1") != derive_locker_key(MASTER, "L1")
    assert derive_courier_key(MASTER, "L1") != derive_courier_key(MASTER, "L2")


def test_codes_are_eight_digits_with_leading_zeros_kept() -> None:
    key = derive_courier_key(MASTER, "L1")
    codes = [hotp(key, n) for n in range(2000)]
    assert all(len(c) == 8 and c.isdigit() for c in codes)
    assert any(c.startswith("0") for c in codes)


def test_nonsense_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="step_s"):
        time_step(0, step_s=0)
    with pytest.raises(ValueError, match="negative"):
        hotp(b"k" * 32, -1)
