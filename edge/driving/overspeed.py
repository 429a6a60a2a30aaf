"""Overspeed: faster than the fleet's limit for at least ``min_duration_s``.

An episode starts at the first sample above ``limit_mps`` and ends at the first sample below
``limit_mps - hysteresis_mps`` (so hovering around the limit is one episode, not a dozen), or at the
last sample before a gap of more than ``max_gap_s``. The event is sent when the episode ends, because
only then are its peak speed and duration known. A GNSS speed spike is one sample: shorter than any
sensible ``min_duration_s``, so it is not an event.
"""

from __future__ import annotations

from collections import Counter

from edge.driving.events import DrivingEvent, r
from edge.driving.settings import OverspeedSettings


class Overspeed:
    """Pure: feed ``(t, speed)`` samples of one source in time order, get events back."""

    def __init__(self, *, settings: OverspeedSettings, max_gap_s: float, source: str) -> None:
        self._s = settings
        self._max_gap = max_gap_s
        self.source = source
        self._start: float | None = None
        self._peak = 0.0
        self._last_t: float | None = None
        self.counters: Counter[str] = Counter()

    @property
    def over(self) -> bool:
        """Whether an episode is open (the van is above the limit, within the hysteresis)."""
        return self._start is not None

    def offer(self, *, t: float, speed_mps: float) -> list[DrivingEvent]:
        s, last = self._s, self._last_t
        out: list[DrivingEvent] = []
        if last is not None and t <= last:
            if t == last:
                self.counters["duplicate"] += 1
                return out
            self.counters["clock_back"] += 1
            self._start, last = None, None
        if last is not None and t - last > self._max_gap:
            out += self._close(last)
        self._last_t = t
        if self._start is None:
            if speed_mps > s.limit_mps:
                self._start, self._peak = t, speed_mps
        elif speed_mps >= s.limit_mps - s.hysteresis_mps:
            self._peak = max(self._peak, speed_mps)
        else:
            out += self._close(t)
        return out

    def _close(self, end: float) -> list[DrivingEvent]:
        start, self._start = self._start, None
        if start is None or end - start < self._s.min_duration_s:
            return []
        self.counters["overspeed"] += 1
        return [
            DrivingEvent(
                kind="overspeed",
                t=start,
                evidence={
                    "peak_mps": r(self._peak),
                    "duration_s": r(end - start),
                    "limit_mps": self._s.limit_mps,
                    "hysteresis_mps": self._s.hysteresis_mps,
                    "min_duration_s": self._s.min_duration_s,
                    "source": self.source,
                },
            )
        ]
