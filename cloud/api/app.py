"""The FastAPI application, built by :func:`create_app` from what the composition root hands it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.auth_keys import ApiKeys
from cloud.api.context import HubContext
from cloud.api.problems import install_problem_handlers
from cloud.api.routes import (
    compartments,
    events,
    locker_commands,
    lockers,
    me,
    parcels,
    plans,
    stream,
    tracking,
    vehicle_commands,
    vehicles,
    webhooks,
)
from cloud.api.routes.auth_tokens import router as auth_router
from cloud.api.routes.devices import router as devices_router
from cloud.api.routes.kpis import router as kpis_router
from cloud.api.routes.revocations import router as revocations_router
from cloud.api.routes.sites import router as sites_router
from cloud.api.routes.trips import router as trips_router
from cloud.api.schemas import Health
from cloud.api.tokens import token_authority
from cloud.dashboard.live import LiveHub
from cloud.dashboard.pages import MapConfig, mount_dashboard
from cloud.services.plan_jobs import PlanRunner
from cloud.services.webhook_targets import Resolver, SystemResolver
from cloud.settings import HubSettings

API_PREFIX = "/api/v1"


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """Liveness only: answers while the process serves HTTP, without touching the database."""
        return Health()

    return router


def create_app(
    *,
    settings: HubSettings,
    session_factory: sessionmaker[Session],
    dispatcher_wakeup: asyncio.Event | None = None,
    live: LiveHub | None = None,
    resolver: Resolver | None = None,
) -> FastAPI:
    """The API over ``session_factory``; ``dispatcher_wakeup`` is set after each outbox write.

    Nothing is built at import time, so tests make as many apps as they like, each on its own
    database. ``live`` feeds ``/api/v1/stream``; without it the stream answers 503. ``resolver``
    resolves webhook hosts for the SSRF guard (the system's by default).
    """
    app = FastAPI(
        title="Lastmile hub",
        summary="Fleet positions, parcel lockers and pickup codes.",
        version="0.1.0",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.hub = HubContext(
        settings=settings,
        session_factory=session_factory,
        api_keys=ApiKeys(settings.api_keys),
        dispatcher_wakeup=dispatcher_wakeup,
        tokens=token_authority(settings),
        live=live,
        resolver=resolver or SystemResolver(),
    )
    app.state.plan_runner = PlanRunner(session_factory=session_factory)
    install_problem_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(_health_router())
    api.include_router(vehicles.router)
    api.include_router(vehicle_commands.router)
    api.include_router(lockers.router)
    api.include_router(parcels.router)
    api.include_router(trips_router)
    api.include_router(auth_router)
    api.include_router(locker_commands.router)
    api.include_router(webhooks.router)
    api.include_router(me.router)
    api.include_router(events.router)
    api.include_router(compartments.router)
    api.include_router(stream.router)
    api.include_router(kpis_router)
    api.include_router(devices_router)
    api.include_router(plans.router)
    api.include_router(sites_router)
    api.include_router(revocations_router)
    app.include_router(api)
    app.include_router(tracking.router)  # outside /api/v1: the token is the credential
    mount_dashboard(
        app,
        map_config=MapConfig(
            tile_url=settings.map_tile_url,
            tile_attribution=settings.map_tile_attribution,
            locker_sites=settings.map_locker_sites,
        ),
    )
    return app
