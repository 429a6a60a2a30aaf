"""The CAN simulator: a delivery van's drive, played as DBC-encoded frames onto a python-can bus.

With ``interface = "virtual"`` this *is* the CAN backend's simulator: the source opens the same virtual
channel the player writes to, exactly as it would open ``can0`` in a van. Tests and ``bench.edge_can``
use it too, so what they measure is the source against a bus that behaves like a car's: each message at
its own rate, rolling counters and checksums (so payloads change even when values do not), doors that
open only at delivery stops.

The drive: stops of 20-90 s (gear P, a door open for part of it), accelerate at ~1.5 m/s^2 to
30-50 km/h, cruise for 80-400 m, brake at ~2.5 m/s^2, sometimes only to corner speed. Seeded, so a
test gets the same drive every time.
"""

from __future__ import annotations

import heapq
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType

import can
from cantools.database.can import Database

KPH_PER_MPH = 1.609344

DEFAULT_RATES_HZ: Mapping[str, float] = {
    "SPEED": 80.0,
    "WHEEL_SPEEDS": 80.0,
    "POWERTRAIN": 66.0,
    "BRAKE_MODULE": 40.0,
    "GEAR_PACKET": 20.0,
    "SEATS_DOORS": 3.0,
}
"""Roughly the Prius's own rates for the messages the van cares about."""


@dataclass(frozen=True, slots=True)
class DriveState:
    """The van at one instant of the simulated drive."""

    t: float
    speed_kph: float
    gear: int  # DBC GEAR_PACKET.GEAR: 0 P, 3 D
    door_open: bool
    braking: bool
    rpm: float
    distance_m: float


def drive(*, seed: int = 0, duration_s: float, step_s: float = 0.01) -> Iterator[DriveState]:
    """The simulated drive, one state every ``step_s`` simulated seconds."""
    rng = random.Random(seed)
    t = 0.0
    v = 0.0  # m/s
    dist = 0.0
    phase = "stop"
    phase_left = rng.uniform(20, 90) / 4  # start near the end of a stop: the test wants to drive
    door_window = (phase_left * 0.2, phase_left * 0.6)
    target = 0.0
    cruise_left = 0.0
    while t <= duration_s:
        braking = False
        door_open = False
        if phase == "stop":
            v = 0.0
            door_open = door_window[0] <= phase_left <= door_window[1]
            phase_left -= step_s
            if phase_left <= 0:
                phase, target = "accel", rng.uniform(30, 50) / 3.6
        elif phase == "accel":
            v = min(target, v + 1.5 * step_s)
            if v >= target:
                phase, cruise_left = "cruise", rng.uniform(80, 400)
        elif phase == "cruise":
            v = max(0.0, target + 0.3 * math.sin(t / 3))  # a driver holds speed only roughly
            cruise_left -= v * step_s
            if cruise_left <= 0:
                phase = "brake"
                target = 0.0 if rng.random() < 0.6 else 4.0
        else:  # brake
            braking = True
            v = max(target, v - 2.5 * step_s)
            if v <= target:
                if target == 0.0:
                    phase = "stop"
                    phase_left = rng.uniform(20, 90)
                    door_window = (phase_left * 0.2, phase_left * 0.6)
                else:
                    phase, target = "accel", rng.uniform(30, 50) / 3.6
        dist += v * step_s
        rpm = 0.0 if v == 0 else 1000 + 45 * v * 3.6
        yield DriveState(
            t=round(t, 6),
            speed_kph=v * 3.6,
            gear=0 if phase == "stop" else 3,
            door_open=door_open,
            braking=braking,
            rpm=rpm,
            distance_m=dist,
        )
        t += step_s


def toyota_checksum(frame_id: int, data: bytes | bytearray) -> int:
    """Toyota's frame checksum (last byte): id bytes + length + the other data bytes, mod 256."""
    s = (frame_id & 0xFF) + (frame_id >> 8) + len(data) + sum(data[:-1])
    return s & 0xFF


def _signals(name: str, s: DriveState, counter: int) -> dict[str, float]:
    mph = s.speed_kph / KPH_PER_MPH
    if name == "SPEED":
        return {"ENCODER": int(s.distance_m * 10) & 0xFF, "SPEED": mph, "CHECKSUM": 0}
    if name == "WHEEL_SPEEDS":
        return {
            "WHEEL_SPEED_FL": mph,
            "WHEEL_SPEED_FR": mph,
            "WHEEL_SPEED_RL": mph,
            "WHEEL_SPEED_RR": mph,
        }
    if name == "POWERTRAIN":
        return {"ENGINE_RPM": s.rpm, "CHECKSUM": 0}
    if name == "BRAKE_MODULE":
        p = 120 if s.braking or s.speed_kph == 0 else 0
        return {"BRAKE_PRESSURE": p, "BRAKE_POSITION": p, "BRAKE_PRESSED": int(p > 0)}
    if name == "GEAR_PACKET":
        return {"CAR_MOVEMENT": 0, "GEAR": s.gear, "COUNTER": counter & 0xFF, "CHECKSUM": 0}
    if name == "SEATS_DOORS":
        return {
            "DOOR_OPEN_FL": 0,
            "DOOR_OPEN_FR": int(s.door_open),
            "DOOR_OPEN_RL": 0,
            "DOOR_OPEN_RR": 0,
            "SEATBELT_DRIVER_UNLATCHED": int(s.door_open),
        }
    raise ValueError(f"the player does not simulate message {name}")


def drive_frames(
    db: Database,
    *,
    seed: int = 0,
    duration_s: float,
    start_t: float = 0.0,
    rates_hz: Mapping[str, float] = DEFAULT_RATES_HZ,
) -> Iterator[can.Message]:
    """The drive as frames, in time order, timestamped ``start_t`` + simulated seconds."""
    step = 0.0025
    states = drive(seed=seed, duration_s=duration_s, step_s=step)
    messages = {name: db.get_message_by_name(name) for name in rates_hz}
    due: list[tuple[float, str]] = [(0.0, name) for name in sorted(rates_hz)]
    heapq.heapify(due)
    counters = dict.fromkeys(rates_hz, 0)
    state = next(states)
    for state_next in states:
        while due and due[0][0] < state_next.t:
            t, name = heapq.heappop(due)
            heapq.heappush(due, (t + 1.0 / rates_hz[name], name))
            m = messages[name]
            data = bytearray(m.encode(_signals(name, state, counters[name]), strict=False))
            counters[name] += 1
            if any(s.name == "CHECKSUM" for s in m.signals):
                data[-1] = toyota_checksum(m.frame_id, data)
            yield can.Message(
                timestamp=start_t + t,
                arbitration_id=m.frame_id,
                is_extended_id=m.is_extended_frame,
                data=data,
            )
        state = state_next


def play(
    bus: can.BusABC,
    frames: Iterable[can.Message],
    *,
    time_scale: float | None = 1.0,
    stop: threading.Event | None = None,
) -> int:
    """Send ``frames`` on ``bus``, paced by their timestamps (``time_scale`` simulated s per real s;
    ``None`` = as fast as possible). Blocks; returns how many were sent."""
    sent = 0
    origin: float | None = None
    wall0 = time.monotonic()
    for msg in frames:
        if stop is not None and stop.is_set():
            break
        if time_scale is not None:
            if origin is None:
                origin = msg.timestamp
            wait = (msg.timestamp - origin) / time_scale - (time.monotonic() - wall0)
            if wait > 0:
                time.sleep(wait)
        bus.send(msg)
        sent += 1
    return sent


class FramePlayer:
    """Plays frames onto a virtual channel from a background thread. A context manager.

    The player's bus preserves the frames' timestamps, so the receiving source sees simulated time even
    when frames are played faster than real time.
    """

    def __init__(
        self,
        *,
        channel: str,
        frames: Iterable[can.Message],
        time_scale: float | None = 1.0,
    ) -> None:
        self.channel = channel
        self._frames = frames
        self._time_scale = time_scale
        self._stop = threading.Event()
        self._bus: can.BusABC | None = None
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.done = threading.Event()

    def start(self) -> FramePlayer:
        self._bus = can.Bus(interface="virtual", channel=self.channel, preserve_timestamps=True)
        self._thread = threading.Thread(target=self._run, name="can-player", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._bus is not None
        try:
            self.sent = play(self._bus, self._frames, time_scale=self._time_scale, stop=self._stop)
        finally:
            self.done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    def __enter__(self) -> FramePlayer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
