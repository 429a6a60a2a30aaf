"""The noise handling the rate detectors share: a spike filter, a windowed slope, and an episode.

Why these three and not a low-pass filter: a low-pass filter lowers the peak of a short hard brake,
and the peak is the evidence. A median of three passes a ramp (a real deceleration) unchanged but
removes a single wrong sample (a receiver's one-off speed or course glitch); the slope over at least
``window_s`` keeps fine-grained CAN quantisation from looking like jerks; the episode's minimum
duration drops what is left (a pothole, a bump).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    x: float
    aux: float = 0.0  # carried along (the speed, when ``x`` is a heading)


@dataclass(frozen=True, slots=True)
class Rate:
    """The slope of ``x`` over ``[t0, t1]``; ``aux`` is the mean of the carried value at both ends."""

    t0: float
    t1: float
    value: float
    aux: float
    x0: float
    x1: float


class Median3:
    """Median of the last three samples, stamped with the middle one's time (one sample of delay)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf: deque[Sample] = deque(maxlen=3)

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, s: Sample) -> Sample | None:
        self._buf.append(s)
        if len(self._buf) < 3:
            return None
        a, b, c = self._buf
        x = sorted((a.x, b.x, c.x))[1]
        aux = sorted((a.aux, b.aux, c.aux))[1]
        return Sample(b.t, x, aux)


class Slope:
    """The rate of change from the latest sample at least ``window_s`` older to the newest."""

    __slots__ = ("_buf", "_window")

    def __init__(self, *, window_s: float) -> None:
        self._window = window_s
        self._buf: deque[Sample] = deque()

    def reset(self) -> None:
        self._buf.clear()

    def feed(self, s: Sample) -> Rate | None:
        buf = self._buf
        buf.append(s)
        while len(buf) >= 2 and s.t - buf[1].t >= self._window:
            buf.popleft()
        old = buf[0]
        span = s.t - old.t
        if span < self._window:
            return None
        return Rate(old.t, s.t, (s.x - old.x) / span, (s.aux + old.aux) / 2, old.x, s.x)


@dataclass(slots=True)
class Episode:
    """A run of rates beyond a threshold, all of one ``kind``.

    ``start`` is clamped to at most ``first_span_cap_s`` before the first rate's end: a bus that
    reports speed only on change is silent while the speed holds, and that silence is not part of
    the manoeuvre.
    """

    kind: str
    start: float
    end: float
    peak: float
    x_start: float
    x_end: float
    aux_peak: float

    @classmethod
    def begin(cls, kind: str, rate: Rate, *, first_span_cap_s: float) -> Episode:
        start = max(rate.t0, rate.t1 - first_span_cap_s)
        return cls(kind, start, rate.t1, rate.value, rate.x0, rate.x1, rate.aux)

    def extend(self, rate: Rate) -> None:
        self.end = rate.t1
        self.x_end = rate.x1
        if abs(rate.value) > abs(self.peak):
            self.peak = rate.value
            self.aux_peak = rate.aux

    @property
    def duration(self) -> float:
        return self.end - self.start
