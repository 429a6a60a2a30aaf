"""The outbox's bounds: what goes first when it is full or old, and that every drop is counted."""

from __future__ import annotations

from pathlib import Path

from edge.outbox import Outbox, OutboxLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _limits(**kw: object) -> OutboxLimits:
    base: dict[str, object] = {"max_rows": None, "max_bytes": None, "max_age_s": None, "slack": 0}
    return OutboxLimits(**{**base, **kw})


def test_over_the_row_bound_the_oldest_positions_go_and_events_stay(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=_limits(max_rows=5))
    box.put("evt", b"e1", priority=1)
    for i in range(4):
        box.put("pos", f"p{i}".encode())
    assert len(box) == 5 and box.drops() == {}
    box.put("evt", b"e2", priority=1)
    box.put("pos", b"p4")
    assert [e.payload for e in box.peek(10)] == [b"e1", b"e2", b"p2", b"p3", b"p4"]
    assert box.drops() == {"rows": 2}
    assert box.drops_by_priority() == {("rows", 0): 2}


def test_a_box_full_of_events_drops_the_new_position_then_the_oldest_event(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=_limits(max_rows=3))
    for i in range(3):
        box.put("evt", f"e{i}".encode(), priority=1)
    box.put("pos", b"p0")  # the lowest priority row is the new one
    assert [e.payload for e in box.peek(10)] == [b"e0", b"e1", b"e2"]
    box.put("evt", b"e3", priority=1)  # no position left: the oldest event goes
    assert [e.payload for e in box.peek(10)] == [b"e1", b"e2", b"e3"]
    assert box.drops_by_priority() == {("rows", 0): 1, ("rows", 1): 1}


def test_the_byte_bound_and_its_hysteresis(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=_limits(max_bytes=10_000, slack=0.2))
    for _ in range(10):
        box.put("pos", b"x" * 1000)
    assert box.depth() == (10, 10_000) and box.drops() == {}
    box.put("pos", b"y" * 1000)  # 11,000 > 10,000: drop down to 8,000
    assert box.depth() == (8, 8_000)
    assert box.drops() == {"bytes": 3}
    assert box.peek(1)[0].payload == b"x" * 1000 and box.peek(10)[-1].payload == b"y" * 1000


def test_rows_older_than_the_age_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    clock = Clock()
    box = Outbox(tmp_path / "o.db", limits=_limits(max_age_s=3600, age_check_s=1), clock=clock)
    box.put("pos", b"old")
    box.put("evt", b"old-event", priority=1)
    clock.now += 1800
    box.put("pos", b"newer")
    clock.now += 2000  # the first two are 3,800 s old now, the third 2,000 s
    box.put("pos", b"newest")
    assert [e.payload for e in box.peek(10)] == [b"newer", b"newest"]
    assert box.drops_by_priority() == {("age", 0): 1, ("age", 1): 1}
    clock.now += 3000
    assert box.expire() == 1  # the explicit check, between puts
    assert [e.payload for e in box.peek(10)] == [b"newest"]
    assert box.drops() == {"age": 3}


def test_depth_and_drop_counters_survive_a_reopen_and_follow_acks(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", limits=_limits(max_rows=2))
    seqs = [box.put("pos", b"abc") for _ in range(3)]
    box.ack(seqs[-1:])
    assert box.depth() == (1, 3)
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.depth() == (1, 3) and len(again) == 1
    assert again.drops() == {"rows": 1}


def test_a_file_from_before_the_bounds_gets_its_depth_counted_on_open(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "o.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,"
        " payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL,"
        " priority INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);"
        "INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES ('t', x'0102', 1, 0, 0);"
    )
    db.commit()
    db.close()
    box = Outbox(path)
    assert box.depth() == (1, 2)
    box.put("t", b"xyz")
    assert box.depth() == (2, 5)


def test_the_defaults_bound_everything(tmp_path: Path) -> None:
    limits = OutboxLimits()
    assert limits.max_rows and limits.max_bytes and limits.max_age_s
    box = Outbox(tmp_path / "o.db")
    assert box.limits is None  # a locker's outbox stays unbounded unless asked
