"""Ignition on/off inferred from motion, for a van with no vehicle bus to read RPM from.

With CAN or OBD-II the agent takes ignition from the engine speed (:class:`edge.agent.SignalEvents`);
this is the fallback, and every event it makes says ``inferred: true``. The ignition is taken as on
once good fixes have stayed faster than ``on_above_mps`` for ``on_after_s`` (a van does not drive
with the engine off; a stationary receiver's speed noise stays well below 3 m/s, and fixes of poor
quality never reach here), and as off once the van has stood slower than ``off_below_mps`` for
``off_after_s`` (longer than a delivery stop). Both are stamped at the start of the motion or the
stand. It starts as off, like :class:`~edge.agent.SignalEvents`, so a van that boots while driving
reports ``ignition_on`` once.
"""

from __future__ import annotations

from edge.driving.events import DrivingEvent, r
from edge.driving.settings import IgnitionSettings
from protocol.messages import Evidence


class MotionIgnition:
    """Pure: feed good fixes' ``(t, speed)`` in time order, get events back."""

    def __init__(self, *, settings: IgnitionSettings) -> None:
        self._s = settings
        self.on = False
        self._since: float | None = None  # start of the motion (when off) or of the stand (when on)
        self._peak = 0.0

    def offer(self, *, t: float, speed_mps: float) -> list[DrivingEvent]:
        s = self._s
        if not self.on:
            if speed_mps <= s.on_above_mps:
                self._since = None
                return []
            if self._since is None or t < self._since:  # < : the clock stepped back
                self._since, self._peak = t, speed_mps
            self._peak = max(self._peak, speed_mps)
            if t - self._since < s.on_after_s:
                return []
            since, self._since, self.on = self._since, None, True
            evidence: Evidence = {
                "inferred": True,
                "speed_mps": r(self._peak),
                "threshold_mps": s.on_above_mps,
                "after_s": s.on_after_s,
            }
            return [DrivingEvent(kind="ignition_on", t=since, evidence=evidence)]
        if speed_mps >= s.off_below_mps:
            self._since = None
            return []
        if self._since is None or t < self._since:
            self._since = t
        if t - self._since < s.off_after_s:
            return []
        since, self._since, self.on = self._since, None, False
        evidence = {
            "inferred": True,
            "stationary_s": r(t - since, 1),
            "threshold_mps": s.off_below_mps,
            "after_s": s.off_after_s,
        }
        return [DrivingEvent(kind="ignition_off", t=since, evidence=evidence)]
