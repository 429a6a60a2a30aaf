"""Harsh acceleration and harsh braking, from a stream of speed samples of one source.

Each sample goes through a median of three (a single wrong speed is dropped), then a slope over at
least ``window_s``; a run of slopes beyond the threshold is an episode, reported once it ends if it
lasted ``min_duration_s``. Slopes are only judged when the van is (or was, within the slope) faster
than ``min_speed_mps``. Gaps, clock steps and implausible slopes: see
:class:`~edge.driving.filters.EpisodeDetector`.

With a bus that reports speed on change (a deadband), the end of an episode is known at the next
update: at once when the van brakes to a stop, else within the signal's heartbeat interval.
"""

from __future__ import annotations

from edge.driving.events import DrivingEvent, r
from edge.driving.filters import Episode, EpisodeDetector, Rate, Sample
from edge.driving.settings import HarshSettings


class HarshLongitudinal(EpisodeDetector):
    """Pure: feed ``(t, speed)`` samples in time order, get events back. One per speed source."""

    def __init__(
        self,
        *,
        settings: HarshSettings,
        max_gap_s: float,
        max_plausible_mps2: float,
        source: str,
    ) -> None:
        super().__init__(
            window_s=settings.window_s,
            min_duration_s=settings.min_duration_s,
            max_gap_s=max_gap_s,
            max_plausible=max_plausible_mps2,
        )
        self._s = settings
        self.source = source

    def offer(self, *, t: float, speed_mps: float) -> list[DrivingEvent]:
        take, out = self._advance(t)
        if take:
            out += self._process(Sample(t, speed_mps))
        return out

    def _measure(self, rate: Rate) -> float:
        return rate.value

    def _judge(self, rate: Rate, value: float) -> str | None:
        s = self._s
        if max(rate.x0, rate.x1) < s.min_speed_mps:
            return None
        if value <= s.brake_mps2:
            return "harsh_braking"
        if value >= s.accel_mps2:
            return "harsh_acceleration"
        return None

    def _event(self, ep: Episode) -> DrivingEvent:
        s = self._s
        threshold = s.brake_mps2 if ep.kind == "harsh_braking" else s.accel_mps2
        return DrivingEvent(
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
