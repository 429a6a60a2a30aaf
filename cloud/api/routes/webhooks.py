"""``/webhooks``: ops subscribe URLs to parcel events and read each subscription's delivery log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from cloud.api.deps import ContextDep, SessionDep, WebhookManager
from cloud.api.parcel_schemas import (
    AttemptPublic,
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreatedPublic,
    WebhookPublic,
    WebhookSecretRotate,
    WebhooksPublic,
)
from cloud.api.problems import problem_responses
from cloud.services import webhooks as service
from cloud.services.webhook_setup import secret_box, target_policy

router = APIRouter(
    prefix="/webhooks", tags=["webhooks"], responses=problem_responses(401, 403, 422)
)


@router.post("", response_model=WebhookCreatedPublic, status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookCreate, session: SessionDep, context: ContextDep, caller: WebhookManager
) -> WebhookCreatedPublic:
    """Subscribe ``url`` to ``events``. The secret that signs the deliveries is shown only here.

    A URL that is not http(s), carries credentials, or whose host is or resolves to a loopback,
    private, link-local, multicast, reserved or unspecified address is refused (422) unless the
    hub's ``webhook_allow_networks`` lets that network in."""
    sub, secret = service.create_subscription(
        session,
        url=str(body.url),
        events=body.events,
        secret=body.secret,
        now=datetime.now(UTC),
        box=secret_box(context.settings),
        targets=target_policy(context.settings, resolver=context.resolver),
    )
    return WebhookCreatedPublic(**WebhookPublic.model_validate(sub).model_dump(), secret=secret)


@router.post(
    "/{webhook_id}/secret", response_model=WebhookCreatedPublic, responses=problem_responses(404)
)
def rotate_webhook_secret(
    webhook_id: uuid.UUID,
    body: WebhookSecretRotate,
    session: SessionDep,
    context: ContextDep,
    caller: WebhookManager,
) -> WebhookCreatedPublic:
    """Replace the signing secret (given, or generated); the new one is shown only here. Every
    delivery sent from now on, retries included, is signed with it."""
    sub, secret = service.rotate_secret(
        session, webhook_id, secret=body.secret, box=secret_box(context.settings)
    )
    return WebhookCreatedPublic(**WebhookPublic.model_validate(sub).model_dump(), secret=secret)


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
