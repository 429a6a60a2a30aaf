"""Groups fixes into one message per batch, closed by size or by the age of its first point."""

from __future__ import annotations

from protocol.messages import Position


class Batcher:
    def __init__(self, *, max_points: int, max_age_s: float) -> None:
        self._max_points = max_points
        self._max_age_s = max_age_s
        self._points: list[Position] = []

    def add(self, point: Position) -> list[Position] | None:
        """Add a point; return the finished batch when this point closes one."""
        self._points.append(point)
        age = (point.t - self._points[0].t).total_seconds()
        if len(self._points) >= self._max_points or age >= self._max_age_s:
            return self.flush()
        return None

    def flush(self) -> list[Position] | None:
        if not self._points:
            return None
        out, self._points = self._points, []
        return out
