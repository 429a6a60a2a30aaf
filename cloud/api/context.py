"""What every request may need, built once in ``create_app`` and kept on ``app.state``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.auth_keys import ApiKeys
from cloud.api.tokens import TokenAuthority
from cloud.dashboard.live import LiveHub
from cloud.services.webhook_targets import Resolver, SystemResolver
from cloud.settings import HubSettings


@dataclass(frozen=True, slots=True)
class HubContext:
    settings: HubSettings
    session_factory: sessionmaker[Session]
    api_keys: ApiKeys
    dispatcher_wakeup: asyncio.Event | None
    tokens: TokenAuthority | None = None  # None: no users, API keys only
    live: LiveHub | None = None
    resolver: Resolver = field(default_factory=SystemResolver)  # webhook hosts (SSRF guard)
    # (kind, ident) of credentials this process revoked: open streams check it on every event
    # without I/O; revocations by other processes reach them at the periodic re-check.
    revoked_here: set[tuple[str, str]] = field(default_factory=set)


def get_context(request: Request) -> HubContext:
    context = request.app.state.hub
    if not isinstance(context, HubContext):
        raise RuntimeError("the app was not built by cloud.api.app.create_app")
    return context
