"""Webhooks against a real HTTP receiver on loopback: signed deliveries, filters, exponential
backoff, a delivery log, a give-up after the last attempt, and a queue that outlives the sender."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.models import WebhookDelivery
from cloud.services.codes import CodeSecrets
from cloud.services.webhook_setup import secret_box, target_policy
from cloud.services.webhook_targets import Resolver
from cloud.services.webhooks import backoff_delay, matches, sign, verify
from cloud.settings import Role
from cloud.webhooks import WebhookSender
from tests.cloud.helpers import LOOPBACK_NETWORKS, MASTER_SECRET, auth, eventually, hub_settings
from tests.cloud.webhook_receiver import receiving

SECRET = "whsec_unit-test-7d41a9c0b2"
SECRETS = CodeSecrets(master_secret=MASTER_SECRET.encode(), digits=8)


def _sender(
    session_factory: sessionmaker[Session],
    *,
    resolver: Resolver | None = None,
    allow: list[str] = LOOPBACK_NETWORKS,
    **kw: object,
) -> WebhookSender:
    settings = hub_settings(database_url="sqlite://", webhook_allow_networks=allow)
    return WebhookSender(
        session_factory=session_factory,
        secrets=SECRETS,
        secret_box=secret_box(settings),
        targets=target_policy(settings, resolver=resolver),
        poll_interval_s=0.05,
        backoff_base_s=0.2,
        backoff_max_s=0.4,
        **kw,  # type: ignore[arg-type]
    )


def test_the_signature_covers_timestamp_and_body_and_goes_stale() -> None:
    body = b'{"id":"1"}'
    now = int(time.time())
    header = sign(SECRET, body, timestamp=now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert verify(SECRET, body, header)
    assert not verify(SECRET, body + b" ", header)
    assert not verify("whsec_other", body, header)
    assert not verify(SECRET, body, header.replace(f"t={now}", f"t={now + 1}"))
    assert not verify(SECRET, body, sign(SECRET, body, timestamp=now - 301))
    assert not verify(SECRET, body, "garbage")
    assert matches(["parcel.*"], "parcel.deposited")
    assert matches(["*"], "anything") and matches(["parcel.picked_up"], "parcel.picked_up")
    assert not matches(["parcel.picked_up"], "parcel.deposited")
    assert [backoff_delay(n, base_s=2, max_s=60).total_seconds() for n in (1, 2, 3, 6, 9)] == [
        2,
        4,
        8,
        60,
        60,
    ]


def test_deliveries_are_retried_logged_given_up_and_survive_a_restart(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )
    ops = auth(Role.OPS)

    async def story() -> tuple[dict[str, Any], dict[str, Any], int, list[str]]:
        with receiving(SECRET) as receiver:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://hub"
            ) as api:
                everything = (
                    await api.post(
                        "/api/v1/webhooks",
                        json={"url": receiver.url, "events": ["*"], "secret": SECRET},
                        headers=ops,
                    )
                ).json()
                # a second subscription wants only deliveries, and its receiver is down for good
                dead = (
                    await api.post(
                        "/api/v1/webhooks",
                        json={"url": "http://127.0.0.1:9/none", "events": ["parcel.delivered"]},
                        headers=ops,
                    )
                ).json()
                assert dead["secret"].startswith("whsec_")
                receiver.fail_next = 1
                await api.post(
                    "/api/v1/parcels",
                    json={"address": "Dam 1", "lat": 1.0, "lon": 2.0},
                    headers=auth(Role.INTEGRATION),
                )
                # the first sender fails once, then "the hub stops" before the retry is due
                first = _sender(session_factory, max_attempts=3)
                async with httpx.AsyncClient() as client:
                    assert await first.send_due(client) == 1
                assert first.stats.failed_attempts == 1
                # a new sender (a restarted hub) finds the stored delivery and completes it
                second = _sender(session_factory, max_attempts=3)
                task = asyncio.create_task(second.run())
                try:
                    await eventually(
                        lambda: second.stats.delivered == 1, timeout=10, what="redelivery"
                    )
                finally:
                    task.cancel()
                types = [r.json["type"] for r in receiver.accepted()]
                log = (
                    await api.get(f"/api/v1/webhooks/{everything['id']}/deliveries", headers=ops)
                ).json()
                dead_log = (
                    await api.get(f"/api/v1/webhooks/{dead['id']}/deliveries", headers=ops)
                ).json()
                return log, dead_log, len(receiver.received), types

    log, dead_log, received, types = asyncio.run(story())
    assert types == ["parcel.created"]
    assert received == 2  # one 500, one 200
    (delivery,) = log["data"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert [a["status_code"] for a in delivery["log"]] == [500, 200]
    assert delivery["log"][0]["error"] == "HTTP 500"
    assert dead_log["count"] == 0  # its filter did not match parcel.created


def test_a_receiver_that_never_answers_is_given_up_after_the_last_attempt(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    app = create_app(
        settings=hub_settings(database_url=database_url), session_factory=session_factory
    )

    async def story() -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://hub"
        ) as api:
            hook = (
                await api.post(
                    "/api/v1/webhooks",
                    json={"url": "http://127.0.0.1:9/closed-port"},
                    headers=auth(Role.OPS),
                )
            ).json()
            await api.post(
                "/api/v1/parcels",
                json={"address": "Dam 1", "lat": 1.0, "lon": 2.0},
                headers=auth(Role.OPS),
            )
            sender = _sender(session_factory, max_attempts=3)
            task = asyncio.create_task(sender.run())
            try:
                await eventually(lambda: sender.stats.gave_up == 1, timeout=15, what="give up")
            finally:
                task.cancel()
            return dict(
                (
                    await api.get(
                        f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(Role.OPS)
                    )
                ).json()
            )

    log = asyncio.run(story())
    (delivery,) = log["data"]
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 3
    assert all(a["status_code"] is None and "ConnectError" in a["error"] for a in delivery["log"])
    gaps = [
        datetime.fromisoformat(b["at"]) - datetime.fromisoformat(a["at"])
        for a, b in zip(delivery["log"], delivery["log"][1:], strict=False)
    ]
    assert gaps[0] >= timedelta(seconds=0.2) and gaps[1] >= timedelta(seconds=0.4)  # backoff
    with session_factory() as session:
        row = session.scalars(select(WebhookDelivery)).one()
        assert row.next_attempt_at <= datetime.now(UTC)
