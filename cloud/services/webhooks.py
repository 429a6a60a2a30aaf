"""Webhook subscriptions, the stored delivery queue, and the signature receivers check.

A delivery is queued (``webhook_deliveries``) in the transaction of the change it reports, so a
notification exists exactly when its change does and survives any restart; the sender loop
(:mod:`cloud.webhooks`) works the queue. The body is JSON; the header
``Lastmile-Signature: t=<unix seconds>,v1=<hex>`` carries HMAC-SHA256 under the subscription's
secret over ``<t>.<body>`` (Stripe's scheme: the timestamp is signed too, so a captured delivery
cannot be replayed later than the receiver's tolerance).

A code (pickup, return, reissued courier) reaches its recipient through this channel, yet is never
stored: the queued row names the grant, and the sender derives the code from the master secret
only while it builds the request (:func:`cloud.services.codes.code_for_grant`).

The secret is stored sealed (:mod:`cloud.services.webhook_secrets`) and the URL is checked
against the SSRF guard (:mod:`cloud.services.webhook_targets`) at creation and at every delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import NotFoundError
from cloud.models import Parcel, WebhookAttempt, WebhookDelivery, WebhookSubscription
from cloud.services.webhook_secrets import SecretBox
from cloud.services.webhook_targets import TargetPolicy

SIGNATURE_HEADER = "Lastmile-Signature"
DEFAULT_TOLERANCE_S = 300


class DeliveryStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The value of :data:`SIGNATURE_HEADER` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """What a receiver does: the header is well formed, fresh, and its MAC matches (constant time)."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, value)
    try:
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=timestamp).partition(",v1=")[2]
    return hmac.compare_digest(expected, given)


def matches(filters: Sequence[str], event_type: str) -> bool:
    """``*`` takes everything, ``parcel.*`` a family, anything else one event type."""
    for f in filters:
        if f == "*" or f == event_type or (f.endswith(".*") and event_type.startswith(f[:-1])):
            return True
    return False


def parcel_summary(parcel: Parcel) -> dict[str, Any]:
    return {
        "id": str(parcel.id),
        "reference": parcel.reference,
        "status": parcel.status,
        "locker_id": parcel.locker_id,
        "compartment": parcel.compartment,
        "attempts": parcel.attempts,
    }


def enqueue_event(
    session: Session,
    *,
    event_type: str,
    parcel: Parcel,
    at: datetime,
    data: dict[str, Any],
    code_grant_id: uuid.UUID | None = None,
) -> int:
    """Queue ``event_type`` for every active subscription that wants it; how many were queued."""
    subscriptions = session.scalars(
        select(WebhookSubscription).where(WebhookSubscription.active.is_(True))
    ).all()
    wanted = [s for s in subscriptions if matches(s.events, event_type)]
    if not wanted:
        return 0
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "type": event_type,
        "created_at": at.isoformat(),
        "data": {"parcel": parcel_summary(parcel), **data},
    }
    payload = json.dumps(body, separators=(",", ":"), default=str).encode()
    for s in wanted:
        session.add(
            WebhookDelivery(
                subscription_id=s.id,
                event_id=event_id,
                event_type=event_type,
                payload=payload,
                code_grant_id=code_grant_id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=at,
                created_at=at,
                delivered_at=None,
                last_status_code=None,
                last_error="",
            )
        )
    return len(wanted)


def backoff_delay(attempts: int, *, base_s: float, max_s: float) -> timedelta:
    """Exponential: ``base_s * 2**(attempts-1)``, at most ``max_s``."""
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))


# -- subscriptions --------------------------------------------------------------------------------


def create_subscription(
    session: Session,
    *,
    url: str,
    events: list[str],
    secret: str | None,
    now: datetime,
    box: SecretBox,
    targets: TargetPolicy,
) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` (checked by ``targets``: raises :class:`WebhookTargetError`); commit.
    Returns the row and the secret in clear, which only this answer ever shows."""
    targets.check(url)
    plain = secret or new_secret()
    sub_id = uuid.uuid4()
    sub = WebhookSubscription(
        id=sub_id,
        url=url,
        secret_sealed=box.seal(plain, subscription_id=sub_id),
        events=events,
        active=True,
        created_at=now,
    )
    session.add(sub)
    session.commit()
    return sub, plain


def rotate_secret(
    session: Session, subscription_id: uuid.UUID, *, secret: str | None, box: SecretBox
) -> tuple[WebhookSubscription, str]:
    """Replace a subscription's secret; commit. Deliveries sent from now on carry the new
    signature, including retries of ones queued before. Returns the row and the new secret."""
    sub = get_subscription(session, subscription_id)
    plain = secret or new_secret()
    sub.secret_sealed = box.seal(plain, subscription_id=sub.id)
    session.commit()
    return sub, plain


def get_subscription(session: Session, subscription_id: uuid.UUID) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        raise NotFoundError("webhook subscription", subscription_id)
    return sub


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(
        session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.created_at))
    )


def deactivate(session: Session, subscription_id: uuid.UUID) -> WebhookSubscription:
    """Stop queueing for a subscription; its log stays readable. Pending deliveries still go."""
    sub = get_subscription(session, subscription_id)
    sub.active = False
    session.commit()
    return sub


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


def deliveries(
    session: Session, subscription_id: uuid.UUID, *, limit: int, offset: int
) -> tuple[list[DeliveryLog], int]:
    get_subscription(session, subscription_id)
    where = WebhookDelivery.subscription_id == subscription_id
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(where)) or 0
    rows = session.scalars(
        select(WebhookDelivery)
        .where(where)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .offset(offset)
    ).all()
    ids = [r.id for r in rows]
    attempts: dict[int, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        for a in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.id)
        ):
            attempts[a.delivery_id].append(a)
    return [DeliveryLog(r, attempts[r.id]) for r in rows], total
