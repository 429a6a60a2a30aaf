"""A simulated van held up at its stops (``route_dwell_s``): the demo's way of making one van
really fall behind its plan."""

from __future__ import annotations

from edge.gnss.sim import VanMotion


def _seconds_standing_at(motion: VanMotion, target: tuple[float, float]) -> int:
    """Drive until the van reaches ``target``, then count the seconds it stands there."""
    for _ in range(5_000):
        motion.step(1.0)
        if abs(motion.x - target[0]) < 1 and abs(motion.y - target[1]) < 1:
            break
    else:
        raise AssertionError("the van never reached its stop")
    standing = 0
    while abs(motion.x - target[0]) < 1 and abs(motion.y - target[1]) < 1:
        motion.step(1.0)
        standing += 1
    return standing


def test_a_held_up_van_stands_at_each_stop_as_long_as_it_is_told() -> None:
    stop = (300.0, 200.0)
    held = VanMotion(seed=3, habits=False)
    held.follow([stop], dwell_s=420.0)
    assert 420 <= _seconds_standing_at(held, stop) <= 425


def test_an_ordinary_van_stands_a_minute_or_so() -> None:
    stop = (300.0, 200.0)
    usual = VanMotion(seed=3, habits=False)
    usual.follow([stop])
    assert 40 <= _seconds_standing_at(usual, stop) <= 95
