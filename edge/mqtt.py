"""MQTT 5 clients for every program (agents' uplinks, the hub's ingest and dispatch), built one way
from :class:`~edge.settings.MqttSettings`, and two guards against aiomqtt/asyncio pitfalls."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.settings import MqttSettings

T = TypeVar("T")


def make_client(
    *,
    settings: MqttSettings,
    client_id: str,
    manual_ack: bool,
    will: aiomqtt.Will | None = None,
    max_inflight: int | None = None,
) -> aiomqtt.Client:
    """A persistent-session MQTT 5 client.

    Clean start is off and the session outlives a disconnect, so QoS 1 messages published while the
    hub restarts wait at the broker. With ``manual_ack`` the caller must acknowledge every QoS 1
    message itself (``client._client.ack(mid, qos)``) once it is safely stored: aiomqtt would
    otherwise acknowledge on receipt and a crash before the commit would lose the message.
    """
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.session_expiry_s
    tls = (
        ssl.create_default_context(cafile=str(settings.tls_ca_file))
        if settings.tls_ca_file is not None
        else None
    )
    client = aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=client_id,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
        keepalive=settings.keepalive_s,
        tls_context=tls,
        will=will,
        max_inflight_messages=max_inflight,
        timeout=30,
    )
    if max_inflight is not None:
        # aiomqtt warns past 10 pending calls; a publisher with a window expects more.
        client.pending_calls_threshold = max_inflight + 10
    if manual_ack:
        client._client.manual_ack_set(True)
    return client


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was cancelled but carried on regardless.

    On Python 3.11, ``asyncio.wait_for`` (which aiomqtt uses for every acknowledged call: connect,
    subscribe, publish) swallows a cancellation that arrives in the same loop iteration as the
    acknowledgement (CPython gh-86296, fixed in 3.12). The task then runs on although its task group
    waits for it to stop, and the hub hangs on Ctrl-C. Call this after such awaits, and before
    retrying after an MqttError (aiomqtt's disconnect can turn a cancellation into one).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def in_own_task(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` in a task of its own; cancelling the caller still cancels it.

    On Python 3.11 a TaskGroup whose child fails while the group waits in ``__aexit__`` cancels its
    parent task and never withdraws that request (fixed in 3.12). A connection loop that runs its
    session's task group directly would then look cancelled to :func:`raise_if_cancelled` after
    every dropped connection and stop reconnecting. In a task of its own, the leak dies with it.
    """
    return await asyncio.create_task(coro)


@contextlib.asynccontextmanager
async def connected(client: aiomqtt.Client, *, settle_s: float = 2.0) -> AsyncIterator[None]:
    """``async with client``, but safe to cancel while the connection is being made.

    aiomqtt 2.5.1 leaves its socket and background task behind when cancelled inside
    ``__aenter__``; they surface later as "Event loop is closed" errors from ``Client.__del__``. Here
    the connect is shielded for up to ``settle_s`` after a cancellation, so that it can finish and
    be closed properly before the cancellation goes on. Raises what ``async with client`` raises.
    """
    enter = asyncio.ensure_future(client.__aenter__())
    try:
        await asyncio.shield(enter)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(settle_s):
                await enter
                await client.__aexit__(None, None, None)
        raise
    try:
        yield
    except BaseException as exc:
        await client.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    finally:
        _retrieve_disconnect_reason(client)
    await client.__aexit__(None, None, None)


def _retrieve_disconnect_reason(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's disconnect future as seen: when nobody iterated messages at that moment, its
    exception would otherwise be logged at exit as "Future exception was never retrieved"."""
    fut = client._disconnected
    if fut.done() and not fut.cancelled():
        fut.exception()
