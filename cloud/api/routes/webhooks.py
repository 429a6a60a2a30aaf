"""``/webhooks``: ops subscribe URLs to parcel events and read each subscription's delivery log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from cloud.api.deps import SessionDep, WebhookManager
from cloud.api.parcel_schemas import (
    AttemptPublic,
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreatedPublic,
    WebhookPublic,
    WebhooksPublic,
)
from cloud.api.problems import problem_responses
from cloud.services import webhooks as service

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], responses=problem_responses(401, 403, 422)
)


@router.post("", response_model=WebhookCreatedPublic, status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookCreate, session: SessionDep, caller: WebhookManager
) -> WebhookCreatedPublic:
    """Subscribe ``url`` to ``events``. The secret that signs the deliveries is shown only here."""
    sub = service.create_subscription(
        session, url=str(body.url), events=body.events, secret=body.secret, now=datetime.now(UTC)
    )
    return WebhookCreatedPublic(**WebhookPublic.model_validate(sub).model_dump(), secret=sub.secret)


@router.get("", response_model=WebhooksPublic)
def read_webhooks(session: SessionDep, caller: WebhookManager) -> WebhooksPublic:
    data = [WebhookPublic.model_validate(s) for s in service.list_subscriptions(session)]
    return WebhooksPublic(data=data, count=len(data))


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=problem_responses(404))
def read_webhook(
    webhook_id: uuid.UUID, session: SessionDep, caller: WebhookManager
) -> WebhookPublic:
    return WebhookPublic.model_validate(service.get_subscription(session, webhook_id))


@router.delete("/{webhook_id}", response_model=WebhookPublic, responses=problem_responses(404))
def deactivate_webhook(
    webhook_id: uuid.UUID, session: SessionDep, caller: WebhookManager
) -> WebhookPublic:
    """Stop queueing events for it; deliveries already queued still go, its log stays."""
    return WebhookPublic.model_validate(service.deactivate(session, webhook_id))


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveriesPublic, responses=problem_responses(404)
)
def read_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    caller: WebhookManager,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> DeliveriesPublic:
    """The delivery log, oldest first: each delivery with its attempts, status codes and errors."""
    logs, total = service.deliveries(session, webhook_id, limit=limit, offset=offset)
    data = [
        DeliveryPublic(
            id=d.delivery.id,
            event_id=d.delivery.event_id,
            event_type=d.delivery.event_type,
            status=d.delivery.status,
            attempts=d.delivery.attempts,
            next_attempt_at=d.delivery.next_attempt_at,
            created_at=d.delivery.created_at,
            delivered_at=d.delivery.delivered_at,
            last_status_code=d.delivery.last_status_code,
            last_error=d.delivery.last_error,
            log=[AttemptPublic.model_validate(a) for a in d.attempts],
        )
        for d in logs
    ]
    return DeliveriesPublic(data=data, count=total)
