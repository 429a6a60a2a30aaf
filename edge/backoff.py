"""Reconnect delays: exponential with jitter, so a fleet that lost its broker does not return in step."""

from __future__ import annotations

import random


class Backoff:
    """Equal-jitter exponential backoff: delay n is uniform in [b/2, b] with b = min(max, min * 2^n)."""

    def __init__(self, *, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"need 0 < minimum <= maximum, got {minimum} and {maximum}")
        self._min = minimum
        self._max = maximum
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        base = min(self._max, self._min * 2.0**self._attempt)
        self._attempt += 1
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self._attempt = 0
