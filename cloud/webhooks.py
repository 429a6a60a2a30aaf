"""The webhook sender: works the stored queue of deliveries, signs, posts, retries with backoff.

Deliveries come from ``webhook_deliveries`` (queued with the change they report), so a hub restart
loses none; a delivery in flight when the hub dies is sent again (receivers drop repeats by the
event ``id``). A 2xx answer is success; anything else, or no answer, is retried after
``base * 2**(attempts-1)`` seconds (capped) until ``max_attempts``, then the delivery is
``failed``. Every attempt is logged in ``webhook_attempts``.

Before every attempt the URL goes through the SSRF guard again (:mod:`cloud.services.webhook_targets`):
the host is resolved once, each address checked, and the request goes to that checked address
(the URL's host replaced by the IP, ``Host`` and TLS SNI/certificate check kept on the name), so a
name rebound to 127.0.0.1 after creation is refused, not called. A refused attempt is logged
("refused: ...") and counted (``stats.refused``), then retried like any failure: the receiver's DNS
may be put right. Redirects are never followed (a 3xx is a failure), proxies from the environment
are ignored, and connections are not reused (a pooled TLS connection to one IP must not carry a
request for another name).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud.models import ParcelGrant, WebhookAttempt, WebhookDelivery, WebhookSubscription
from cloud.services.codes import CodeSecrets, code_for_grant
from cloud.services.errors import WebhookSecretError, WebhookTargetError
from cloud.services.webhook_secrets import SecretBox
from cloud.services.webhook_targets import Target, TargetPolicy
from cloud.services.webhooks import SIGNATURE_HEADER, DeliveryStatus, backoff_delay, sign

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    url: str
    secret: str | None  # None: it would not open (error says why)
    error: str
    body: bytes
    event_type: str
    event_id: str
    attempts: int


@dataclass
class SenderStats:
    delivered: int = 0
    failed_attempts: int = 0
    gave_up: int = 0
    refused: int = 0  # attempts the SSRF guard stopped


class WebhookSender:
    """Run :meth:`run` in the hub's task group; :meth:`send_due` makes one pass."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        secrets: CodeSecrets,
        secret_box: SecretBox,
        targets: TargetPolicy,
        max_attempts: int = 8,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 600.0,
        timeout_s: float = 5.0,
        poll_interval_s: float = 0.5,
        batch_max: int = 50,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self._session_factory = session_factory
        self._secrets = secrets
        self._box = secret_box
        self._targets = targets
        self._max_attempts = max_attempts
        self._base = backoff_base_s
        self._max = backoff_max_s
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s
        self._batch_max = batch_max
        self._clock = clock
        self._transport = transport
        self.stats = SenderStats()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            timeout=self._timeout_s,
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client:
            while True:
                try:
                    sent = await self.send_due(client)
                except SQLAlchemyError as err:
                    log.error("webhook sender could not read or update its queue (%s)", err)
                    sent = 0
                if sent < self._batch_max:
                    await asyncio.sleep(self._poll_interval_s)

    async def send_due(self, client: httpx.AsyncClient) -> int:
        due = await asyncio.to_thread(self._due)
        if due:
            await asyncio.gather(*(self._send(client, d) for d in due))
        return len(due)

    def _due(self) -> list[_Due]:
        now = self._clock()
        with self._session_factory() as session:
            rows = session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(
                    WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id
                )
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(self._batch_max)
            ).all()
            out: list[_Due] = []
            for d, s in rows:
                try:
                    secret: str | None = self._box.open(s.secret_sealed, subscription_id=s.id)
                    error = ""
                except WebhookSecretError as err:
                    secret, error = None, str(err)[:500]
                out.append(
                    _Due(
                        id=d.id,
                        url=s.url,
                        secret=secret,
                        error=error,
                        body=self._body(session, d),
                        event_type=d.event_type,
                        event_id=str(d.event_id),
                        attempts=d.attempts,
                    )
                )
            return out

    def _body(self, session: Session, delivery: WebhookDelivery) -> bytes:
        """The stored payload, plus the code of ``code_grant_id`` derived now (never stored)."""
        if delivery.code_grant_id is None:
            return delivery.payload
        grant = session.get(ParcelGrant, delivery.code_grant_id)
        if grant is None:
            return delivery.payload
        body = json.loads(delivery.payload)
        body["data"]["code"] = {
            "kind": grant.kind,
            "code": code_for_grant(
                self._secrets, locker_id=grant.locker_id, grant_id=grant.grant_id
            ),
            "locker_id": grant.locker_id,
            "compartment": grant.compartment,
            "valid_until": grant.valid_until.isoformat(),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    async def _send(self, client: httpx.AsyncClient, due: _Due) -> None:
        started = time.monotonic()
        status: int | None = None
        error = due.error
        if due.secret is not None:
            try:
                target = await asyncio.to_thread(self._targets.check, due.url)
            except WebhookTargetError as err:
                self.stats.refused += 1
                error = f"refused: {err.reason}"[:500]
                log.warning("webhook %s to %s refused: %s", due.id, due.url, err.reason)
            else:
                status, error = await self._post(client, due, due.secret, target)
        elapsed_ms = (time.monotonic() - started) * 1000
        await asyncio.to_thread(self._record, due, status, error, elapsed_ms)

    async def _post(
        self, client: httpx.AsyncClient, due: _Due, secret: str, target: Target
    ) -> tuple[int | None, str]:
        """POST to the checked address only; the status and an error ("" for a 2xx)."""
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            response = await client.post(
                target.pinned_url(),
                content=due.body,
                headers={
                    "Host": target.host_header,
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, due.body, timestamp=int(time.time())),
                    "Lastmile-Event": due.event_type,
                    "Lastmile-Event-Id": due.event_id,
                },
                extensions=extensions,
            )
        except httpx.HTTPError as err:
            return None, f"{type(err).__name__}: {err}"[:500]
        status = response.status_code
        return status, "" if 200 <= status < 300 else f"HTTP {status}"

    def _record(self, due: _Due, status: int | None, error: str, elapsed_ms: float) -> None:
        now = self._clock()
        with self._session_factory() as session, session.begin():
            delivery = session.get(WebhookDelivery, due.id)
            if delivery is None:
                return
            delivery.attempts += 1
            delivery.last_status_code = status
            delivery.last_error = error
            session.add(
                WebhookAttempt(
                    delivery_id=due.id,
                    at=now,
                    status_code=status,
                    error=error,
                    duration_ms=elapsed_ms,
                )
            )
            if not error:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                self.stats.delivered += 1
            elif delivery.attempts >= self._max_attempts:
                delivery.status = DeliveryStatus.FAILED
                self.stats.gave_up += 1
                log.warning("webhook %s to %s failed for good: %s", due.id, due.url, error)
            else:
                delivery.next_attempt_at = now + backoff_delay(
                    delivery.attempts, base_s=self._base, max_s=self._max
                )
                self.stats.failed_attempts += 1
                log.info("webhook %s to %s failed (%s); retrying", due.id, due.url, error)
