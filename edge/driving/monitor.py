"""All driving-event detectors behind one object the agent feeds with fixes and signal updates.

Which speed drives the speed-based detectors (harsh acceleration/braking, overspeed, idling): the
vehicle bus's when it has one (a wheel-speed sensor is exact and fast; GNSS speed lags and is noisy),
else the receiver's. The bus speed counts as present while its last sample is at most
``bus_max_gap_s`` of *GNSS* time old; judging by the fixes keeps this right even when the bus's
timestamps and the receiver's come from different clocks. When the bus falls silent the GNSS
detectors take over; their own gap rule restarts their filters, so nothing is stitched across the
switch. Cornering always uses the receiver: the course is only there.

Fixes are gated on quality before any detector sees them: no speed, HDOP above ``gnss_max_hdop``, or a
2-D fix when ``gnss_min_fix`` is ``3d``. Unknown quality (a receiver that does not say) passes:
unknown is not evidence of bad. Gated fixes and unusable bus samples are counted, never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from edge.driving.cornering import HarshCornering
from edge.driving.events import DrivingEvent
from edge.driving.idling import Idling
from edge.driving.ignition import MotionIgnition
from edge.driving.longitudinal import HarshLongitudinal
from edge.driving.overspeed import Overspeed
from edge.driving.settings import DrivingSettings
from edge.signals import SignalUpdate
from protocol.messages import Position

MPS_PER_UNIT: Mapping[str, float] = {
    "m/s": 1.0,
    "mps": 1.0,
    "kph": 1 / 3.6,
    "km/h": 1 / 3.6,
    "kmh": 1 / 3.6,
    "mph": 0.44704,
}
"""Speed units as DBC files (``"mph"``, ``"km/h"``) and python-OBD (``"kph"``) spell them."""

RPM_SIGNALS = frozenset({"rpm", "engine_rpm"})
"""The names :class:`edge.agent.SignalEvents` takes the engine speed from (any case)."""

MAX_SPEED_MPS = 150.0


class DrivingMonitor:
    """Feed :meth:`offer_fix` and :meth:`offer_signal` in arrival order; each returns the events the
    sample completed, with the last good fix as their position. Pure and synchronous: no clock, no
    I/O, so traces can be replayed through it in tests exactly as the agent would.

    ``infer_ignition``: whether to infer ignition from motion (a van without a vehicle bus). It also
    stops by itself once an engine-speed signal shows up, since then the bus knows better.
    """

    def __init__(self, *, settings: DrivingSettings, infer_ignition: bool) -> None:
        q = settings.quality
        self.settings = settings
        self._q = q
        self._speed_names = frozenset(n.lower() for n in q.speed_signals)
        self._speed_signal: str | None = None
        self.harsh_bus = HarshLongitudinal(
            settings=settings.harsh,
            max_gap_s=q.bus_max_gap_s,
            max_plausible_mps2=q.max_plausible_mps2,
            source="bus",
        )
        self.harsh_gnss = HarshLongitudinal(
            settings=settings.harsh,
            max_gap_s=q.gnss_max_gap_s,
            max_plausible_mps2=q.max_plausible_mps2,
            source="gnss",
        )
        self.cornering = HarshCornering(
            settings=settings.cornering,
            max_gap_s=q.gnss_max_gap_s,
            max_plausible_mps2=q.max_plausible_mps2,
        )
        self.overspeed_bus = Overspeed(
            settings=settings.overspeed, max_gap_s=q.bus_max_gap_s, source="bus"
        )
        self.overspeed_gnss = Overspeed(
            settings=settings.overspeed, max_gap_s=q.gnss_max_gap_s, source="gnss"
        )
        self.idling = Idling(settings=settings.idling)
        self.ignition: MotionIgnition | None = (
            MotionIgnition(settings=settings.ignition)
            if infer_ignition and settings.ignition.infer
            else None
        )
        self.last_fix: Position | None = None
        self._last_fix_t: float | None = None
        self._bus_speed_at_fix_t: float | None = None  # GNSS time when the bus last gave a speed
        self._bus_speed_seen = False
        self.counters: Counter[str] = Counter()

    @property
    def bus_speed_present(self) -> bool:
        """Whether the bus's speed (not the receiver's) drives the speed-based detectors now."""
        if not self._bus_speed_seen:
            return False
        if self._bus_speed_at_fix_t is None or self._last_fix_t is None:
            return True
        return self._last_fix_t - self._bus_speed_at_fix_t <= self._q.bus_max_gap_s

    def offer_fix(self, fix: Position) -> list[DrivingEvent]:
        if not self.settings.enabled:
            return []
        self.counters["fixes"] += 1
        q = self._q
        if fix.speed_mps is None:
            self.counters["fix_no_speed"] += 1
            return []
        if fix.hdop is not None and fix.hdop > q.gnss_max_hdop:
            self.counters["fix_hdop"] += 1
            return []
        if fix.fix == "2d" and q.gnss_min_fix == "3d":
            self.counters["fix_2d"] += 1
            return []
        t, v = fix.t.timestamp(), fix.speed_mps
        self.last_fix = fix
        self._last_fix_t = t
        if self._bus_speed_seen and self._bus_speed_at_fix_t is None:
            self._bus_speed_at_fix_t = t
        events = self.cornering.offer(t=t, heading_deg=fix.heading_deg, speed_mps=v)
        if not self.bus_speed_present:
            events += self.harsh_gnss.offer(t=t, speed_mps=v)
            events += self.overspeed_gnss.offer(t=t, speed_mps=v)
            events += self.idling.offer_speed(t=t, speed_mps=v)
        if self.ignition is not None:
            events += self.ignition.offer(t=t, speed_mps=v)
        return self._placed(events)

    def offer_signal(self, update: SignalUpdate) -> list[DrivingEvent]:
        if not self.settings.enabled:
            return []
        name = update.name.lower()
        if name in RPM_SIGNALS:
            self.ignition = None  # the bus knows the engine: SignalEvents reports ignition
            return self._placed(self.idling.offer_rpm(t=update.t, rpm=update.value))
        if name not in self._speed_names:
            return []
        if self._speed_signal is None:
            self._speed_signal = update.name
        elif update.name != self._speed_signal:
            return []  # one speed source only: interleaving two would look like jerks
        factor = MPS_PER_UNIT.get(update.unit.strip().lower())
        if factor is None:
            self.counters["bus_speed_unit_unknown"] += 1
            return []
        v = update.value * factor
        if not 0.0 <= v <= MAX_SPEED_MPS:
            self.counters["bus_speed_out_of_range"] += 1
            return []
        self._bus_speed_seen = True
        self._bus_speed_at_fix_t = self._last_fix_t
        self.counters["bus_speeds"] += 1
        events = self.harsh_bus.offer(t=update.t, speed_mps=v)
        events += self.overspeed_bus.offer(t=update.t, speed_mps=v)
        events += self.idling.offer_speed(t=update.t, speed_mps=v)
        return self._placed(events)

    def all_counters(self) -> dict[str, int]:
        """Gated samples and events by kind, for the status."""
        out = Counter(self.counters)
        for c in (self.harsh_bus, self.harsh_gnss, self.overspeed_bus, self.overspeed_gnss):
            out.update({f"{c.source}_{k}": v for k, v in c.counters.items()})
        out.update({f"gnss_{k}": v for k, v in self.cornering.counters.items()})
        out.update(self.idling.counters)
        return dict(sorted(out.items()))

    def _placed(self, events: list[DrivingEvent]) -> list[DrivingEvent]:
        if not events:
            return events
        fix = self.last_fix
        out = [DrivingEvent(kind=e.kind, t=e.t, evidence=e.evidence, position=fix) for e in events]
        for e in out:
            self.counters[f"event_{e.kind}"] += 1
        return out
