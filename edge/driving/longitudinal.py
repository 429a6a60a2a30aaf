"""Harsh acceleration and harsh braking, from a stream of speed samples of one source.

Each sample goes through a median of three (a single wrong speed is dropped), then a slope over at
least ``window_s``; a run of slopes beyond the threshold is an episode, reported once it ends if it
lasted ``min_duration_s``. Slopes are only judged when the van is (or was, within the slope) faster
than ``min_speed_mps``, and a silence longer than ``max_gap_s`` ends the episode and restarts the
filters, so two stretches of driving are never stitched together across a gap. A slope no van can
produce (beyond ``max_plausible_mps2``) is a glitch: the episode it is part of is dropped and counted.
"""

from __future__ import annotations

from collections import Counter

from edge.driving.events import DrivingEvent, r
from edge.driving.filters import Episode, Median3, Rate, Sample, Slope
from edge.driving.settings import HarshSettings

FIRST_SPAN_CAP_S = 1.0


class HarshLongitudinal:
    """Pure: feed ``(t, speed)`` samples in time order, get events back. One per speed source."""

    def __init__(
        self,
        *,
        settings: HarshSettings,
        max_gap_s: float,
        max_plausible_mps2: float,
        source: str,
    ) -> None:
        self._s = settings
        self._max_gap = max_gap_s
        self._max_plausible = max_plausible_mps2
        self.source = source
        self._median = Median3()
        self._slope = Slope(window_s=settings.window_s)
        self._episode: Episode | None = None
        self._last_t: float | None = None
        self.counters: Counter[str] = Counter()

    def offer(self, *, t: float, speed_mps: float) -> list[DrivingEvent]:
        out: list[DrivingEvent] = []
        last = self._last_t
        if last is not None and t <= last:
            if t == last:
                self.counters["duplicate"] += 1
                return out
            self.counters["clock_back"] += 1  # a receiver restart, a replayed log: start afresh
            self._episode, last = None, None
            self._reset()
        if last is not None and t - last > self._max_gap:
            out += self._close()
            self._reset()
        self._last_t = t
        m = self._median.feed(Sample(t, speed_mps))
        if m is None:
            return out
        rate = self._slope.feed(m)
        if rate is None:
            return out
        if abs(rate.value) > self._max_plausible:
            self.counters["implausible"] += 1
            self._episode = None  # contaminated: not evidence of anything
            self._reset()
            return out
        kind = self._judge(rate)
        ep = self._episode
        if ep is not None and ep.kind == kind:
            ep.extend(rate)
            return out
        out += self._close()
        if kind is not None:
            self._episode = Episode.begin(kind, rate, first_span_cap_s=FIRST_SPAN_CAP_S)
        return out

    def _judge(self, rate: Rate) -> str | None:
        s = self._s
        if max(rate.x0, rate.x1) < s.min_speed_mps:
            return None
        if rate.value <= s.brake_mps2:
            return "harsh_braking"
        if rate.value >= s.accel_mps2:
            return "harsh_acceleration"
        return None

    def _reset(self) -> None:
        self._median.reset()
        self._slope.reset()

    def _close(self) -> list[DrivingEvent]:
        ep, self._episode = self._episode, None
        if ep is None or ep.duration < self._s.min_duration_s:
            return []
        s = self._s
        self.counters[ep.kind] += 1
        threshold = s.brake_mps2 if ep.kind == "harsh_braking" else s.accel_mps2
        return [
            DrivingEvent(
                kind=ep.kind,
                t=ep.start,
                evidence={
                    "peak_mps2": r(ep.peak),
                    "duration_s": r(ep.duration),
                    "speed_from_mps": r(ep.x_start),
                    "speed_to_mps": r(ep.x_end),
                    "threshold_mps2": threshold,
                    "min_duration_s": s.min_duration_s,
                    "source": self.source,
                },
            )
        ]
