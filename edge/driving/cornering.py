"""Harsh cornering: lateral acceleration a = v * omega, with omega the rate of change of the course.

The course comes from the receiver (Doppler-derived, good to a degree or two at driving speed), not
from bearings between positions (metres of position noise are tens of degrees over one second).
Below ``min_speed_mps`` a receiver's course wanders freely (walking pace, a parked van) and carries
no yaw information, so slower fixes end any episode and restart the filters.

Heading noise handling: headings are unwrapped (359 -> 1 is +2 degrees, not -358), a median of three
drops a single wrong course, the slope spans at least ``window_s``, the sign must hold for the whole
episode (left or right), and the lateral acceleration must hold for ``min_duration_s``. Gaps, clock
steps and implausible values: see :class:`~edge.driving.filters.EpisodeDetector`.
"""

from __future__ import annotations

import math

from edge.driving.events import DrivingEvent, r
from edge.driving.filters import Episode, EpisodeDetector, Rate, Sample
from edge.driving.settings import CorneringSettings


def wrap180(deg: float) -> float:
    """``deg`` folded into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


class HarshCornering(EpisodeDetector):
    """Pure: feed ``(t, heading, speed)`` fixes in time order, get events back."""

    def __init__(
        self, *, settings: CorneringSettings, max_gap_s: float, max_plausible_mps2: float
    ) -> None:
        super().__init__(
            window_s=settings.window_s,
            min_duration_s=settings.min_duration_s,
            max_gap_s=max_gap_s,
            max_plausible=max_plausible_mps2,
        )
        self._s = settings
        self._raw: float | None = None  # the last raw course, to unwrap the next one against
        self._unwrapped = 0.0

    def offer(self, *, t: float, heading_deg: float | None, speed_mps: float) -> list[DrivingEvent]:
        take, out = self._advance(t)
        if not take:
            return out
        if heading_deg is None or speed_mps < self._s.min_speed_mps:
            return out + self._interrupt()
        if self._raw is None:
            self._unwrapped = heading_deg
        else:
            self._unwrapped += wrap180(heading_deg - self._raw)
        self._raw = heading_deg
        return out + self._process(Sample(t, self._unwrapped, speed_mps))

    def _reset(self) -> None:
        super()._reset()
        self._raw = None

    def _measure(self, rate: Rate) -> float:
        # rate.value is the yaw rate in deg/s (positive: turning right, as courses grow clockwise)
        return rate.aux * math.radians(rate.value)

    def _judge(self, rate: Rate, value: float) -> str | None:
        if abs(value) < self._s.lateral_mps2:
            return None
        return "right" if value > 0 else "left"

    def _event(self, ep: Episode) -> DrivingEvent:
        return DrivingEvent(
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
