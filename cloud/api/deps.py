"""``Annotated`` dependency aliases, defined once and used by every router."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from cloud.api.auth import Permission, Principal, require
from cloud.api.context import HubContext, get_context
from cloud.settings import HubSettings

ContextDep = Annotated[HubContext, Depends(get_context)]


def get_settings(context: ContextDep) -> HubSettings:
    return context.settings


def get_session(context: ContextDep) -> Iterator[Session]:
    with context.session_factory() as session:
        yield session


OutboxNotifier = Callable[[], None]


async def get_outbox_notifier(context: ContextDep) -> OutboxNotifier:
    """A callable that wakes the dispatcher; safe to call from the thread a sync route runs in.

    Async on purpose: it runs on the event loop, so it can capture the loop that owns the event.
    """
    event = context.dispatcher_wakeup
    if event is None:
        return lambda: None
    loop = asyncio.get_running_loop()

    def notify() -> None:
        loop.call_soon_threadsafe(event.set)

    return notify


SettingsDep = Annotated[HubSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
OutboxNotifierDep = Annotated[OutboxNotifier, Depends(get_outbox_notifier)]

FleetReader = Annotated[Principal, Depends(require(Permission.READ_FLEET))]
ParcelReader = Annotated[Principal, Depends(require(Permission.READ_PARCELS))]
ParcelCreator = Annotated[Principal, Depends(require(Permission.CREATE_PARCELS))]
VehicleCommander = Annotated[Principal, Depends(require(Permission.COMMAND_VEHICLES))]
ParcelOperator = Annotated[Principal, Depends(require(Permission.OPERATE_PARCELS))]
LockerOperator = Annotated[Principal, Depends(require(Permission.OPERATE_LOCKERS))]
WebhookManager = Annotated[Principal, Depends(require(Permission.MANAGE_WEBHOOKS))]
DeviceManager = Annotated[Principal, Depends(require(Permission.MANAGE_DEVICES))]
