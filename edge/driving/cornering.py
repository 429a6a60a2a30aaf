"""Harsh cornering: lateral acceleration a = v * omega, with omega the rate of change of the course.

The course comes from the receiver (Doppler-derived, good to a degree or two at driving speed), not
from bearings between positions (metres of position noise are tens of degrees over one second).
Below ``min_speed_mps`` a receiver's course wanders freely (walking pace, a parked van) and carries
no yaw information, so slower fixes end any episode and restart the filters.

Heading noise handling: headings are unwrapped (359 -> 1 is +2 degrees, not -358), a median of three
drops a single wrong course, the slope spans at least ``window_s``, the sign must hold for the whole
episode (left or right), and the lateral acceleration must hold for ``min_duration_s``.
"""

from __future__ import annotations

import math
from collections import Counter

from edge.driving.events import DrivingEvent, r
from edge.driving.filters import Episode, Median3, Rate, Sample, Slope
from edge.driving.settings import CorneringSettings

FIRST_SPAN_CAP_S = 1.0


def wrap180(deg: float) -> float:
    """``deg`` folded into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


class HarshCornering:
    """Pure: feed ``(t, heading, speed)`` fixes in time order, get events back."""

    def __init__(
        self, *, settings: CorneringSettings, max_gap_s: float, max_plausible_mps2: float
    ) -> None:
        self._s = settings
        self._max_gap = max_gap_s
        self._max_plausible = max_plausible_mps2
        self._median = Median3()
        self._slope = Slope(window_s=settings.window_s)
        self._episode: Episode | None = None
        self._last_t: float | None = None
        self._raw: float | None = None  # the last raw course, to unwrap the next one against
        self._unwrapped = 0.0
        self.counters: Counter[str] = Counter()

    def offer(self, *, t: float, heading_deg: float | None, speed_mps: float) -> list[DrivingEvent]:
        out: list[DrivingEvent] = []
        last = self._last_t
        if last is not None and t <= last:
            if t == last:
                self.counters["duplicate"] += 1
                return out
            self.counters["clock_back"] += 1
            self._episode, last = None, None
            self._reset()
        self._last_t = t
        gap = last is not None and t - last > self._max_gap
        if gap or heading_deg is None or speed_mps < self._s.min_speed_mps:
            out += self._close()
            self._reset()
            if heading_deg is None or speed_mps < self._s.min_speed_mps:
                return out
        assert heading_deg is not None
        if self._raw is None:
            self._unwrapped = heading_deg
        else:
            self._unwrapped += wrap180(heading_deg - self._raw)
        self._raw = heading_deg
        m = self._median.feed(Sample(t, self._unwrapped, speed_mps))
        if m is None:
            return out
        rate = self._slope.feed(m)
        if rate is None:
            return out
        # rate.value is the yaw rate in deg/s (positive: turning right, as courses grow clockwise)
        lateral = rate.aux * math.radians(rate.value)
        if abs(lateral) > self._max_plausible:
            self.counters["implausible"] += 1
            self._episode = None
            self._reset()
            return out
        kind: str | None = None
        if abs(lateral) >= self._s.lateral_mps2:
            kind = "right" if lateral > 0 else "left"
        lat_rate = Rate(rate.t0, rate.t1, lateral, rate.aux, rate.x0, rate.x1)
        ep = self._episode
        if ep is not None and ep.kind == kind:
            ep.extend(lat_rate)
            return out
        out += self._close()
        if kind is not None:
            self._episode = Episode.begin(kind, lat_rate, first_span_cap_s=FIRST_SPAN_CAP_S)
        return out

    def _reset(self) -> None:
        self._median.reset()
        self._slope.reset()
        self._raw = None

    def _close(self) -> list[DrivingEvent]:
        ep, self._episode = self._episode, None
        if ep is None or ep.duration < self._s.min_duration_s:
            return []
        self.counters["harsh_cornering"] += 1
        return [
            DrivingEvent(
                kind="harsh_cornering",
                t=ep.start,
                evidence={
                    "peak_mps2": r(abs(ep.peak)),
                    "direction": ep.kind,
                    "duration_s": r(ep.duration),
                    "speed_mps": r(ep.aux_peak),
                    "heading_change_deg": r(ep.x_end - ep.x_start, 1),
                    "threshold_mps2": self._s.lateral_mps2,
                    "min_duration_s": self._s.min_duration_s,
                    "source": "gnss",
                },
            )
        ]
