"""CPU per CAN frame through the real CAN source, against cantools' decode alone.

A player thread plays a simulated drive (DBC-encoded, each message at its car rate, with counters and
checksums) onto a python-can virtual bus; the :class:`edge.can.CanSource` receives, decodes, applies
deadbands and queues the updates, and a consumer task drains them. ``us_per_frame`` is process CPU
time (all threads, player's ``send`` included) per frame the source handled. Also measured in the same
run: cantools ``decode_message(..., decode_choices=False)`` alone over the same frames, and the
alternative receive path (python-can ``Notifier`` + ``AsyncBufferedReader`` feeding the same decoder in
the event loop).

    python -m bench.edge_can [--seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path

import can

from edge.can import CanSettings, CanSource, SignalSpec
from edge.can.decoder import SignalDecoder, load_dbc
from edge.can.player import FramePlayer, drive_frames

DBC = Path(__file__).parents[1] / "tests" / "data" / "can" / "toyota_prius_2010_pt.dbc"
SIGNALS = [
    SignalSpec(name="SPEED", message="SPEED", deadband=0.3, max_interval_s=10),
    *(SignalSpec(name=f"WHEEL_SPEED_{w}", deadband=0.3) for w in ("FL", "FR", "RL", "RR")),
    SignalSpec(name="ENGINE_RPM", deadband=50),
    SignalSpec(name="BRAKE_PRESSED"),
    SignalSpec(name="GEAR"),
    SignalSpec(name="DOOR_OPEN_FR"),
]


async def _through_source(frames: list[can.Message]) -> tuple[float, int, dict[str, int | str]]:
    settings = CanSettings(interface="virtual", channel="bench-src", dbc_file=DBC, signals=SIGNALS)
    source = CanSource(settings=settings)
    updates = 0

    async def consume() -> None:
        nonlocal updates
        async for _ in source.updates():
            updates += 1

    task = asyncio.create_task(consume())
    while source.health != "ok":  # noqa: ASYNC110 - state set by the source, no event to await
        await asyncio.sleep(0.01)
    stats = source.stats.decoder
    t0 = time.process_time()
    with FramePlayer(channel=settings.channel, frames=frames, time_scale=None) as player:
        deadline = time.monotonic() + 120

        # Counters written by the player and reader threads: poll them.
        def busy() -> bool:
            return not player.done.is_set() or stats.frames < player.sent

        while busy() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        cpu = time.process_time() - t0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return cpu, stats.frames, source.stats.as_dict()


async def _through_notifier(frames: list[can.Message]) -> tuple[float, int]:
    """The road not taken: python-can's Notifier waking the event loop for every frame."""
    db = load_dbc(str(DBC))
    dec = SignalDecoder(db=db, signals=SIGNALS)
    bus = can.Bus(
        interface="virtual",
        channel="bench-notifier",
        can_filters=[f.as_python_can() for f in dec.filters],
    )
    reader = can.AsyncBufferedReader()
    notifier = can.Notifier(bus, [reader], timeout=0.1, loop=asyncio.get_running_loop())
    queue: asyncio.Queue[object] = asyncio.Queue()
    t0 = time.process_time()
    with FramePlayer(channel="bench-notifier", frames=frames, time_scale=None):
        n = 0
        while n < len(frames):
            msg = await reader.get_message()
            n += 1
            for u in dec.feed(msg) or ():
                queue.put_nowait(u)
        cpu = time.process_time() - t0
    notifier.stop()
    bus.shutdown()
    return cpu, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="simulated drive length")
    args = parser.parse_args()
    db = load_dbc(str(DBC))
    frames = list(drive_frames(db, seed=1, duration_s=args.seconds, start_t=time.time()))
    print(f"drive of {args.seconds:.0f} s: {len(frames)} frames", flush=True)

    t0 = time.process_time()
    for msg in frames:
        db.decode_message(msg.arbitration_id, bytes(msg.data), decode_choices=False)
    cantools_us = (time.process_time() - t0) / len(frames) * 1e6
    print(f"cantools decode_message alone: {cantools_us:.2f} us/frame", flush=True)

    t0 = time.process_time()
    sink = can.Bus(interface="virtual", channel="bench-send-only", preserve_timestamps=True)
    for msg in frames:
        sink.send(msg)
    send_us = (time.process_time() - t0) / len(frames) * 1e6
    sink.shutdown()
    print(f"player send alone (no receiver): {send_us:.2f} us/frame", flush=True)

    cpu, handled, stats = asyncio.run(_through_source(frames))
    us = cpu / handled * 1e6
    print(
        f"CanSource (reader thread): {us:.2f} us/frame over {handled} frames; {stats}", flush=True
    )

    ncpu, nframes = asyncio.run(_through_notifier(frames))
    notifier_us = ncpu / nframes * 1e6
    print(f"Notifier + AsyncBufferedReader: {notifier_us:.2f} us/frame", flush=True)

    print(
        json.dumps(
            {
                "us_per_frame": round(us, 2),
                "cantools_decode_us": round(cantools_us, 2),
                "frames": handled,
                "player_send_us": round(send_us, 2),
                "notifier_us_per_frame": round(notifier_us, 2),
                "decoded": stats["decoded"],
                "unchanged": stats["unchanged"],
                "updates": stats["updates"],
            }
        )
    )


if __name__ == "__main__":
    main()
