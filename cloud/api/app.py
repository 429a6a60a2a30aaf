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
    lockers,
    me,
    parcel_search,
    parcels,
    stream,
    vehicles,
)
from cloud.api.schemas import Health
from cloud.dashboard.live import LiveHub
from cloud.dashboard.pages import MapConfig, mount_dashboard
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
) -> FastAPI:
    """The API over ``session_factory``; ``dispatcher_wakeup`` is set after each outbox write.

    Nothing is built at import time, so tests make as many apps as they like, each on its own
    database. ``live`` feeds ``/api/v1/stream``; without it the stream answers 503.
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
        live=live,
    )
    install_problem_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(_health_router())
    api.include_router(vehicles.router)
    api.include_router(lockers.router)
    api.include_router(parcels.router)
    api.include_router(me.router)
    api.include_router(events.router)
    api.include_router(compartments.router)
    api.include_router(parcel_search.router)
    api.include_router(stream.router)
    app.include_router(api)
    mount_dashboard(
        app,
        map_config=MapConfig(
            tile_url=settings.map_tile_url,
            tile_attribution=settings.map_tile_attribution,
            locker_sites=settings.map_locker_sites,
        ),
    )
    return app
