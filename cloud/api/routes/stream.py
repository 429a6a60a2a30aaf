"""``/stream``: live device updates as server-sent events, for the dashboard.

Authenticated like every route (``Authorization: Bearer``): the page reads it with ``fetch`` and a
``ReadableStream`` rather than ``EventSource``, which cannot send headers, so no key ever travels
in a URL. A comment line every ``KEEPALIVE_S`` lets both ends notice a dead connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import StreamingResponse

from cloud.api.deps import ContextDep, FleetReader
from cloud.api.problems import problem_responses
from cloud.dashboard.live import LiveHub

KEEPALIVE_S = 15.0
RETRY_MS = 2000

router = APIRouter(prefix="/stream", tags=["live"], responses=problem_responses(401, 403, 503))


async def _events(live: LiveHub) -> AsyncIterator[str]:
    with live.subscribe() as subscription:
        yield f"retry: {RETRY_MS}\nevent: hello\ndata: {{}}\n\n"
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    update = await subscription.next()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if update is None:
                return  # the hub is stopping; the page reconnects after RETRY_MS
            data = json.dumps(update.data, separators=(",", ":"))
            yield f"event: {update.kind}\ndata: {data}\n\n"


@router.get(
    "",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def stream(context: ContextDep, caller: FleetReader) -> StreamingResponse:
    """Events ``hello`` (once), then ``telemetry``, ``vehicle_event``, ``locker_event``,
    ``status``, each with a JSON body, as the devices publish them."""
    if context.live is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this hub runs no live feed")
    return StreamingResponse(
        _events(context.live),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
