"""``/stream``: live device updates as server-sent events, for the dashboard.

Authenticated like every route (``Authorization: Bearer``): the page reads it with ``fetch`` and a
``ReadableStream`` rather than ``EventSource``, which cannot send headers, so no key ever travels
in a URL. A comment line every ``KEEPALIVE_S`` lets both ends notice a dead connection. The
credential is re-checked while the stream is open (:mod:`cloud.api.stream_guard`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from cloud.api.deps import ContextDep, FleetReader
from cloud.api.problems import problem_responses
from cloud.api.stream_guard import StreamGuard
from cloud.dashboard.live import LiveHub

KEEPALIVE_S = 15.0
RETRY_MS = 2000

router = APIRouter(prefix="/stream", tags=["live"], responses=problem_responses(401, 403, 503))


def _closed(reason: str) -> str:
    return f"event: closed\ndata: {json.dumps({'reason': reason})}\n\n"


async def event_stream(live: LiveHub, guard: StreamGuard) -> AsyncIterator[str]:
    """The event stream; ends with an ``event: closed`` naming the reason when the caller's key
    or token is revoked or expires (the page signs in again rather than reconnecting)."""
    loop = asyncio.get_running_loop()
    with live.subscribe() as subscription:
        yield f"retry: {RETRY_MS}\nevent: hello\ndata: {{}}\n\n"
        last_sent = loop.time()
        while True:
            if (reason := await guard.reason()) is not None:
                yield _closed(reason)
                return
            until_keepalive = last_sent + KEEPALIVE_S - loop.time()
            try:
                async with asyncio.timeout(guard.wait_s(at_most=until_keepalive)):
                    update = await subscription.next()
            except TimeoutError:
                if loop.time() >= last_sent + KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    last_sent = loop.time()
                continue
            if update is None:
                return  # the hub is stopping; the page reconnects after RETRY_MS
            if (reason := guard.expired()) is not None:  # before every send, without I/O
                yield _closed(reason)
                return
            data = json.dumps(update.data, separators=(",", ":"))
            yield f"event: {update.kind}\ndata: {data}\n\n"
            last_sent = loop.time()


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream(context: ContextDep, caller: FleetReader) -> StreamingResponse:
    """Events ``hello`` (once), then ``telemetry``, ``vehicle_event``, ``locker_event``,
    ``status``, each with a JSON body, as the devices publish them; ``closed`` with a
    ``reason`` when the caller's key or token is revoked (re-checked every
    ``stream_recheck_s``) or expires, after which the stream ends."""
    if context.live is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this hub runs no live feed")
    guard = StreamGuard(
        credential=caller.credential,
        session_factory=context.session_factory,
        recheck_s=context.settings.stream_recheck_s,
        revoked_here=context.revoked_here,
    )
    return StreamingResponse(
        event_stream(context.live, guard),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
