"""The noise handling the rate detectors share: a spike filter, a windowed slope, and an episode.

Why these three and not a low-pass filter: a low-pass filter lowers the peak of a short hard brake,
and the peak is the evidence. A median of three passes a ramp (a real deceleration) unchanged but
removes a single wrong sample (a receiver's one-off speed or course glitch); the slope over at least
``window_s`` keeps fine-grained CAN quantisation from looking like jerks; the episode's minimum
duration drops what is left (a pothole, a bump).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter, deque
from dataclasses import dataclass

from edge.driving.events import DrivingEvent

FIRST_SPAN_CAP_S = 1.0
"""At most this much of an episode's first slope counts towards its duration (see :class:`Episode`)."""


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

    ``start`` is clamped to at most :data:`FIRST_SPAN_CAP_S` before the first rate's end: a bus that
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
    def begin(cls, kind: str, rate: Rate) -> Episode:
        start = max(rate.t0, rate.t1 - FIRST_SPAN_CAP_S)
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


class EpisodeDetector(ABC):
    """The shape both rate detectors share (template method): a time guard, then median, slope,
    plausibility and episodes; subclasses say what a rate measures, which kind of episode a value
    is, and what the event says.

    Time guard: a repeated timestamp is dropped; a timestamp that steps back (a receiver restart, a
    replayed log) drops the open episode and starts afresh rather than ignoring every sample until the
    clock catches up; a silence longer than ``max_gap_s`` closes the episode and restarts the filters.
    A value beyond ``max_plausible`` is a glitch: the episode it is part of is dropped.
    """

    def __init__(
        self, *, window_s: float, min_duration_s: float, max_gap_s: float, max_plausible: float
    ) -> None:
        self._min_duration = min_duration_s
        self._max_gap = max_gap_s
        self._max_plausible = max_plausible
        self._median = Median3()
        self._slope = Slope(window_s=window_s)
        self._episode: Episode | None = None
        self._last_t: float | None = None
        self.counters: Counter[str] = Counter()

    @abstractmethod
    def _measure(self, rate: Rate) -> float:
        """The quantity judged (an acceleration, in m/s^2) from the slope of the samples."""

    @abstractmethod
    def _judge(self, rate: Rate, value: float) -> str | None:
        """The episode kind ``value`` belongs to, or ``None`` for unremarkable."""

    @abstractmethod
    def _event(self, ep: Episode) -> DrivingEvent:
        """The event for a finished episode that lasted long enough."""

    def _advance(self, t: float) -> tuple[bool, list[DrivingEvent]]:
        """Apply the time guard to a sample at ``t``: whether to take it, and what it closed."""
        last = self._last_t
        if last is not None and t <= last:
            if t == last:
                self.counters["duplicate"] += 1
                return False, []
            self.counters["clock_back"] += 1
            self._episode, last = None, None
            self._reset()
        self._last_t = t
        if last is not None and t - last > self._max_gap:
            return True, self._interrupt()
        return True, []

    def _interrupt(self) -> list[DrivingEvent]:
        """Nothing can be judged now (a gap, a fix too slow to have a course): close and restart."""
        out = self._close()
        self._reset()
        return out

    def _process(self, sample: Sample) -> list[DrivingEvent]:
        m = self._median.feed(sample)
        rate = None if m is None else self._slope.feed(m)
        if rate is None:
            return []
        value = self._measure(rate)
        if abs(value) > self._max_plausible:
            self.counters["implausible"] += 1
            self._episode = None  # contaminated: not evidence of anything
            self._reset()
            return []
        rate = Rate(rate.t0, rate.t1, value, rate.aux, rate.x0, rate.x1)
        kind = self._judge(rate, value)
        ep = self._episode
        if ep is not None and ep.kind == kind:
            ep.extend(rate)
            return []
        out = self._close()
        if kind is not None:
            self._episode = Episode.begin(kind, rate)
        return out

    def _reset(self) -> None:
        self._median.reset()
        self._slope.reset()

    def _close(self) -> list[DrivingEvent]:
        ep, self._episode = self._episode, None
        if ep is None or ep.duration < self._min_duration:
            return []
        event = self._event(ep)
        self.counters[event.kind] += 1
        return [event]
