"""Offline courier codes: RFC 6238 TOTP with HMAC-SHA256, 8 digits, shared by hub and locker.

The hub (or the courier's app) computes the code of the current time step from the locker's courier
key (:func:`protocol.codes.derive_courier_key`); the locker checks it with no network at all. A code
is accepted within ``skew_steps`` steps either side of the locker's clock; the caller makes each
accepted step single-use (the locker persists the steps it accepted).

Standard library only. With ``step_s=30`` and the RFC's SHA-256 seed, :func:`totp` reproduces the
test vectors of RFC 6238 appendix B (see ``tests/protocol/test_courier.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from protocol.codes import CODE_DIGITS

DEFAULT_STEP_S = 60
"""A courier reads the code off a phone and types eight digits on a keypad: 30 s is too short."""


def time_step(at: datetime | float, *, step_s: int = DEFAULT_STEP_S) -> int:
    """The TOTP counter of ``at`` (an aware datetime or POSIX seconds): floor(t / step_s)."""
    if step_s < 1:
        raise ValueError(f"step_s must be at least 1, got {step_s}")
    seconds = at.timestamp() if isinstance(at, datetime) else float(at)
    return int(seconds // step_s)


def hotp(key: bytes, counter: int, *, digits: int = CODE_DIGITS) -> str:
    """RFC 4226 HOTP with HMAC-SHA256 (as RFC 6238 allows): dynamic truncation to ``digits``."""
    if counter < 0:
        raise ValueError("the counter cannot be negative")
    mac = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFF_FFFF
    return f"{value % 10**digits:0{digits}d}"


def totp(key: bytes, at: datetime | float, *, step_s: int = DEFAULT_STEP_S) -> str:
    """The courier code valid at ``at``."""
    return hotp(key, time_step(at, step_s=step_s))


def match_step(
    key: bytes,
    code: str,
    *,
    at: datetime | float,
    step_s: int = DEFAULT_STEP_S,
    skew_steps: int = 1,
) -> int | None:
    """The time step within ``skew_steps`` of ``at`` whose code is ``code``, or None.

    Every candidate is compared (constant time, no early exit), so timing does not tell which step
    matched. The caller must refuse a step it has accepted before (replay).
    """
    if skew_steps < 0:
        raise ValueError("skew_steps cannot be negative")
    now = time_step(at, step_s=step_s)
    found: int | None = None
    for step in range(now - skew_steps, now + skew_steps + 1):
        if step >= 0 and hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    return found
