import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from edge.errors import MessageTooLargeError, OutboxError
from edge.outbox import Outbox


def test_messages_drain_in_order_and_leave_only_when_acked(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    seqs = [box.put("t", f"m{i}".encode()) for i in range(5)]
    assert seqs == sorted(seqs)
    first = box.peek(3)
    assert [e.payload for e in first] == [b"m0", b"m1", b"m2"]
    assert len(box) == 5  # peeking removes nothing
    box.ack(e.seq for e in first)
    assert [e.payload for e in box.peek(10)] == [b"m3", b"m4"]


def test_higher_priority_drains_first_then_in_order(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("pos", b"p1")
    box.put("evt", b"e1", priority=1)
    box.put("pos", b"p2")
    assert [e.payload for e in box.peek(10)] == [b"e1", b"p1", b"p2"]


def test_the_payload_can_embed_its_own_sequence_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    seq = box.put("t", lambda s: f"seq={s}".encode())
    assert box.peek(1)[0].payload == f"seq={seq}".encode()


def test_sequence_numbers_never_repeat_after_acks_and_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    a = box.put("t", b"x")
    box.ack([a])
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.put("t", b"y") > a


def _writer(path: str, n: int) -> None:
    box = Outbox(path)
    for i in range(n):
        box.put("t", str(i).encode())
    os.kill(os.getpid(), signal.SIGSTOP)  # wait here until killed


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "o.db")
    proc = multiprocessing.get_context("spawn").Process(target=_writer, args=(path, 500))
    proc.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.pid and Path(f"/proc/{proc.pid}/stat").read_text().split()[2] == "T":
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    box = Outbox(path)
    assert [int(e.payload) for e in box.peek(1000)] == list(range(500))


def test_an_unwritable_location_is_a_loud_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(blocker / "o.db")


def test_a_message_the_broker_would_refuse_for_its_size_is_not_queued(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_payload_bytes=1000)
    with pytest.raises(MessageTooLargeError, match="1001 bytes, over the 1000-byte limit"):
        box.put("fleet/v/telemetry", lambda seq: b"x" * 1001)
    assert len(box) == 0
    box.put("fleet/v/telemetry", b"x" * 1000)
    assert len(box) == 1
