"""The hub's composition root: the one place that builds the database, ingest, dispatcher and API.

Everything runs in one ``asyncio.TaskGroup``; cancelling :func:`run_hub` stops all of it (the API
finishes the requests in flight, MQTT sessions disconnect, unacknowledged messages stay at the
broker for next time) and disposes of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta

import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.dashboard.live import LiveFeed, LiveHub, late_stop_update
from cloud.db import make_engine, make_session_factory, migrate
from cloud.dispatch import OutboundDispatcher
from cloud.errors import HubError
from cloud.flows import ParcelFlows
from cloud.ingest import IngestWorker
from cloud.kpi_job import KpiMaterialiser
from cloud.retention import (
    REVOCATION_GRACE,
    IngestedMessagePruner,
    PositionPruner,
    RevocationPruner,
)
from cloud.services.policy import code_secrets, flow_policy
from cloud.services.route_alerts import LateStopWatcher
from cloud.services.webhook_setup import secret_box, target_policy
from cloud.settings import HubSettings
from cloud.webhooks import WebhookSender

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to its caller and reports when it is listening."""

    def __init__(self, config: uvicorn.Config, *, started: asyncio.Event | None) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn installs SIGINT/SIGTERM handlers here; Ctrl-C belongs to whoever runs the hub.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            # uvicorn exits the process when it cannot bind or the app's startup fails; inside a
            # task, SystemExit would tear through the event loop instead of reaching our caller.
            raise HubError(
                f"the API could not start on {self.config.host}:{self.config.port}; "
                "see the log above"
            ) from None
        if self.started and self._started_event is not None:
            self._started_event.set()


async def _serve(server: _Server) -> None:
    """Run uvicorn; on cancellation let it shut down gracefully (it polls ``should_exit``)."""
    task = asyncio.create_task(server.serve(), name="hub-uvicorn")
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await task
        raise
    raise HubError("the API server stopped on its own")


def make_ingest_worker(
    settings: HubSettings, session_factory: sessionmaker[Session], *, client_id: str
) -> IngestWorker:
    return IngestWorker(
        settings=settings.mqtt,
        session_factory=session_factory,
        client_id=client_id,
        group=settings.ingest_group,
        batch_max=settings.ingest_batch_max,
        receive_maximum=settings.ingest_receive_maximum,
    )


def make_parcel_flows(
    settings: HubSettings,
    session_factory: sessionmaker[Session],
    dispatcher: OutboundDispatcher,
) -> ParcelFlows:
    return ParcelFlows(
        session_factory=session_factory,
        policy=flow_policy(settings),
        wake_dispatcher=dispatcher.wake,
        poll_interval_s=settings.flows_poll_s,
    )


def make_webhook_sender(
    settings: HubSettings, session_factory: sessionmaker[Session]
) -> WebhookSender:
    return WebhookSender(
        session_factory=session_factory,
        secrets=code_secrets(settings),
        secret_box=secret_box(settings),
        targets=target_policy(settings),
        max_attempts=settings.webhook_max_attempts,
        backoff_base_s=settings.webhook_backoff_s,
        backoff_max_s=settings.webhook_backoff_max_s,
        timeout_s=settings.webhook_timeout_s,
    )


async def run_ingest(settings: HubSettings, *, client_id: str | None = None) -> None:
    """Run one ingest worker, alone in its process, until cancelled (``lastmile hub ingest``).

    Several such processes, each with its own ``client_id``, share the ingest subscription and
    split the load; the broker keeps each one's session, so a worker killed mid-batch gets its
    unacknowledged messages back when it reconnects under the same id. Migrates first.
    """
    await asyncio.to_thread(migrate, settings.database_url, webhook_secret_box=secret_box(settings))
    engine = make_engine(settings.database_url)
    try:
        worker = make_ingest_worker(
            settings,
            make_session_factory(engine),
            client_id=client_id or f"{settings.client_id}-ingest",
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(worker.run(), name="hub-ingest")
    finally:
        engine.dispose()
        log.info("ingest worker stopped")


async def run_hub(settings: HubSettings, *, started: asyncio.Event | None = None) -> None:
    """Migrate, then run ingest, the outbox dispatcher and the API until cancelled.

    ``started`` is set once the API accepts connections. Raises :class:`HubError` if the API
    cannot start; migrations errors propagate as raised by Alembic/SQLAlchemy.
    """
    await asyncio.to_thread(migrate, settings.database_url, webhook_secret_box=secret_box(settings))
    engine = make_engine(settings.database_url)
    try:
        session_factory = make_session_factory(engine)
        wakeup = asyncio.Event()
        ingest = make_ingest_worker(
            settings, session_factory, client_id=f"{settings.client_id}-ingest"
        )
        dispatcher = OutboundDispatcher(
            settings=settings.mqtt,
            session_factory=session_factory,
            client_id=f"{settings.client_id}-dispatch",
            wakeup=wakeup,
        )
        live = LiveHub()
        live_feed = LiveFeed(
            settings=settings.mqtt, client_id=f"{settings.client_id}-live", hub=live
        )
        app = create_app(
            settings=settings,
            session_factory=session_factory,
            dispatcher_wakeup=wakeup,
            live=live,
        )
        await asyncio.to_thread(app.state.plan_runner.recover)  # jobs of a previous run
        config = uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        api_up = asyncio.Event()
        server = _Server(config, started=api_up)
        try:
            async with asyncio.TaskGroup() as tg:
                # The API first: if its port is taken the hub fails before it has touched the
                # broker, rather than tearing down half-made MQTT sessions.
                api = tg.create_task(_serve(server), name="hub-api")
                up = asyncio.create_task(api_up.wait())
                try:
                    await asyncio.wait((api, up), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    up.cancel()
                if api.done():
                    return  # its HubError leaves through the task group
                tg.create_task(ingest.run(), name="hub-ingest")
                tg.create_task(dispatcher.run(), name="hub-dispatch")
                tg.create_task(
                    make_parcel_flows(settings, session_factory, dispatcher).run(),
                    name="hub-parcel-flows",
                )
                tg.create_task(
                    make_webhook_sender(settings, session_factory).run(), name="hub-webhooks"
                )
                tg.create_task(live_feed.run(), name="hub-live")
                if started is not None:
                    started.set()
                if settings.retention_days is not None:
                    pruner = PositionPruner(
                        session_factory=session_factory,
                        retention=timedelta(days=settings.retention_days),
                        interval_s=settings.prune_interval_s,
                        chunk=settings.prune_chunk,
                    )
                    tg.create_task(pruner.run(), name="hub-prune")
                forget = IngestedMessagePruner(
                    session_factory=session_factory,
                    retention=timedelta(days=settings.ingested_retention_days),
                    interval_s=settings.prune_interval_s,
                    chunk=settings.prune_chunk,
                )
                tg.create_task(forget.run(), name="hub-prune-ingested")
                revocations = RevocationPruner(
                    session_factory=session_factory,
                    retention=REVOCATION_GRACE,
                    interval_s=settings.prune_interval_s,
                    chunk=settings.prune_chunk,
                )
                tg.create_task(revocations.run(), name="hub-prune-revocations")
                late = LateStopWatcher(
                    session_factory=session_factory,
                    interval_s=settings.late_stop_check_s,
                    publish=lambda alert: live.publish(late_stop_update(alert)),
                )
                tg.create_task(late.run(), name="hub-late-stops")
                kpis = KpiMaterialiser(
                    session_factory=session_factory,
                    fleet=settings.fleet,
                    rules=settings.trips,
                    interval_s=settings.kpi_interval_s,
                    lookback_days=settings.kpi_lookback_days,
                )
                tg.create_task(kpis.run(), name="hub-kpis")
        except* HubError as group:
            raise group.exceptions[0] from None  # callers catch HubError, not a group of one
    finally:
        engine.dispose()
        log.info("hub stopped")
