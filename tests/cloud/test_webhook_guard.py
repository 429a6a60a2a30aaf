"""The webhook SSRF guard and sealed secrets, against a real receiver on loopback.

The guard refuses internal addresses at creation (a precise 422) and again at delivery, where the
sender connects to the address it checked: a name rebound to 127.0.0.1 after creation is refused
and counted, and a name only our resolver knows is still delivered (so the request went to the
pinned address, never to a second lookup). Secrets are sealed at rest, shown once, rotated through
the API, and migration 0009 seals the plaintext rows older hubs wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.db import UtcDateTime, alembic_config, make_engine, make_session_factory, migrate
from cloud.models import WebhookSubscription
from cloud.services.codes import CodeSecrets
from cloud.services.errors import WebhookSecretError, WebhookTargetError
from cloud.services.webhook_secrets import SecretBox, derive_key
from cloud.services.webhook_setup import secret_box, target_policy
from cloud.services.webhook_targets import StaticResolver, SystemResolver, TargetPolicy
from cloud.settings import Role
from cloud.webhooks import WebhookSender
from tests.cloud.helpers import LOOPBACK_NETWORKS, MASTER_SECRET, auth, hub_settings
from tests.cloud.webhook_receiver import receiving

SECRET = "whsec_guard-test-51c0e8a2f9"
PUBLIC = "93.184.216.34"

REFUSED = [
    ("ftp://hooks.example/x", "scheme 'ftp' is not allowed"),
    ("http://user:pw@hooks.example/x", "credentials in the URL are not allowed"),
    ("http://127.0.0.1:8000/x", "127.0.0.1 is a loopback address"),
    ("http://[::1]/x", "::1 is a loopback address"),
    ("http://10.1.2.3/", "10.1.2.3 is a private address"),
    ("http://172.16.0.1/", "172.16.0.1 is a private address"),
    ("http://192.168.1.1/", "192.168.1.1 is a private address"),
    ("http://[fd00::1]/", "fd00::1 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://224.0.0.1/", "224.0.0.1 is a multicast address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
    ("http://[::]/", ":: is an unspecified address"),
    ("http://100.64.0.1/", "100.64.0.1 is not a globally routable address"),
    ("http://[::ffff:127.0.0.1]/", "127.0.0.1 is a loopback address (inside IPv6 ::ffff:7f00:1)"),
    ("http://[::ffff:10.0.0.1]/", "10.0.0.1 is a private address (inside IPv6 ::ffff:a00:1)"),
    ("http://[2002:a00:1::]/", "10.0.0.1 is a private address (inside IPv6 2002:a00:1::)"),
    ("http://mixed.example/", "'mixed.example' resolves to 10.0.0.5 is a private address"),
    ("http://nowhere.example/", "host 'nowhere.example' does not resolve"),
    ("http://hooks.example:99999/", "not a valid URL"),
]


def _resolver() -> StaticResolver:
    return StaticResolver(names={"hooks.example": [PUBLIC], "mixed.example": [PUBLIC, "10.0.0.5"]})


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_the_guard_refuses_what_is_not_a_public_http_endpoint(url: str, reason: str) -> None:
    policy = TargetPolicy.build(resolver=_resolver())
    with pytest.raises(WebhookTargetError) as caught:
        policy.check(url)
    assert reason in caught.value.reason, caught.value.reason


def test_the_guard_passes_public_hosts_and_only_the_networks_let_in() -> None:
    policy = TargetPolicy.build(resolver=_resolver())
    target = policy.check("https://hooks.example/x?y=1")
    assert (str(target.address), target.port, target.host_header) == (PUBLIC, 443, "hooks.example")
    assert str(target.pinned_url()) == f"https://{PUBLIC}/x?y=1"
    let_in = TargetPolicy.build(resolver=_resolver(), allowed_networks=LOOPBACK_NETWORKS)
    assert str(let_in.check("http://[::ffff:127.0.0.1]:81/").address) == "::ffff:7f00:1"
    assert str(let_in.check("http://[::1]:81/").pinned_url()) == "http://[::1]:81/"
    with pytest.raises(WebhookTargetError, match="private"):
        let_in.check("http://10.0.0.1/")  # loopback let in, private networks still not


@pytest.mark.parametrize("url", ["http://localhost:8000/", "http://2130706433/"])
def test_the_system_resolver_sees_through_names_and_numeric_hosts(url: str) -> None:
    with pytest.raises(WebhookTargetError, match=r"127\.0\.0\.1 is a loopback address"):
        TargetPolicy.build(resolver=SystemResolver()).check(url)


def _sender(
    session_factory: sessionmaker[Session], *, resolver: StaticResolver, allow: list[str]
) -> WebhookSender:
    settings = hub_settings(database_url="sqlite://", webhook_allow_networks=allow)
    return WebhookSender(
        session_factory=session_factory,
        secrets=CodeSecrets(master_secret=MASTER_SECRET.encode(), digits=8),
        secret_box=secret_box(settings),
        targets=target_policy(settings, resolver=resolver),
        poll_interval_s=0.05,
    )


def _api(
    session_factory: sessionmaker[Session],
    database_url: str,
    *,
    resolver: StaticResolver,
    allow: list[str],
) -> httpx.AsyncClient:
    settings = hub_settings(database_url=database_url, webhook_allow_networks=allow)
    app = create_app(settings=settings, session_factory=session_factory, resolver=resolver)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


async def _parcel(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/v1/parcels",
        json={"address": "Dam 1", "lat": 1.0, "lon": 2.0},
        headers=auth(Role.INTEGRATION),
    )
    assert r.status_code == 201, r.text


def test_an_internal_url_is_refused_at_creation_with_a_problem_and_nothing_stored(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    async def story() -> tuple[httpx.Response, int]:
        async with _api(session_factory, database_url, resolver=_resolver(), allow=[]) as api:
            refused = await api.post(
                "/api/v1/webhooks",
                json={"url": "http://169.254.169.254/latest/meta-data"},
                headers=auth(Role.OPS),
            )
            listed = (await api.get("/api/v1/webhooks", headers=auth(Role.OPS))).json()
            return refused, int(listed["count"])

    refused, count = asyncio.run(story())
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["detail"] == (
        "webhook URL refused: 169.254.169.254 is a link-local address; "
        "the hub does not call into private networks"
    )
    assert problem["errors"][0]["loc"] == ["body", "url"]
    assert count == 0


def test_a_name_rebound_to_loopback_after_creation_is_refused_at_delivery_and_counted(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    resolver = StaticResolver(names={"hooks.test": [PUBLIC]})

    async def story() -> tuple[dict[str, Any], WebhookSender, int]:
        with receiving(SECRET) as receiver:
            port = httpx.URL(receiver.url).port
            async with _api(session_factory, database_url, resolver=resolver, allow=[]) as api:
                hook = (
                    await api.post(
                        "/api/v1/webhooks",
                        json={"url": f"http://hooks.test:{port}/hooks", "secret": SECRET},
                        headers=auth(Role.OPS),
                    )
                ).json()
                await _parcel(api)
                resolver.names["hooks.test"] = ["127.0.0.1"]  # the attacker's DNS rebinds
                sender = _sender(session_factory, resolver=resolver, allow=[])
                async with httpx.AsyncClient() as client:
                    assert await sender.send_due(client) == 1
                log = (
                    await api.get(
                        f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(Role.OPS)
                    )
                ).json()
                return log, sender, len(receiver.received)

    log, sender, received = asyncio.run(story())
    assert received == 0  # the receiver on loopback never saw a request
    assert sender.stats.refused == 1 and sender.stats.delivered == 0
    (delivery,) = log["data"]
    assert delivery["status"] == "pending"  # retried later: the name may be put right
    (attempt,) = delivery["log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused: 'hooks.test' resolves to 127.0.0.1 is a loopback address; "
        "the hub does not call into private networks"
    )


def test_the_sender_connects_to_the_address_it_checked_and_keeps_the_name(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    """``receiver.test`` exists only in our resolver: the OS cannot resolve it, so a delivery
    proves the connection went to the pinned address, with the name kept in ``Host``."""
    resolver = StaticResolver(names={"receiver.test": ["127.0.0.1"]})

    async def story() -> tuple[list[Any], WebhookSender, int | None]:
        with receiving(SECRET) as receiver:
            port = httpx.URL(receiver.url).port
            async with _api(
                session_factory, database_url, resolver=resolver, allow=LOOPBACK_NETWORKS
            ) as api:
                r = await api.post(
                    "/api/v1/webhooks",
                    json={"url": f"http://receiver.test:{port}/hooks", "secret": SECRET},
                    headers=auth(Role.OPS),
                )
                assert r.status_code == 201, r.text
                await _parcel(api)
                sender = _sender(session_factory, resolver=resolver, allow=LOOPBACK_NETWORKS)
                task = asyncio.create_task(sender.run())
                try:
                    async with asyncio.timeout(15):
                        while sender.stats.delivered < 1:
                            await asyncio.sleep(0.05)
                finally:
                    task.cancel()
                return receiver.accepted(), sender, port

    accepted, sender, port = asyncio.run(story())
    (got,) = accepted
    assert got.headers["host"] == f"receiver.test:{port}"
    assert got.json["type"] == "parcel.created"
    assert sender.stats.delivered == 1 and sender.stats.refused == 0


def test_the_secret_is_sealed_at_rest_shown_once_and_rotated_through_the_api(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    resolver = StaticResolver()

    async def story() -> tuple[dict[str, Any], dict[str, Any], str, list[Any]]:
        async with _api(
            session_factory, database_url, resolver=resolver, allow=LOOPBACK_NETWORKS
        ) as api:
            with receiving(SECRET) as old_receiver:
                created = (
                    await api.post(
                        "/api/v1/webhooks",
                        json={"url": old_receiver.url, "secret": SECRET},
                        headers=auth(Role.OPS),
                    )
                ).json()
            shown = await api.get(f"/api/v1/webhooks/{created['id']}", headers=auth(Role.OPS))
            rotated = (
                await api.post(
                    f"/api/v1/webhooks/{created['id']}/secret", json={}, headers=auth(Role.OPS)
                )
            ).json()
            # The receiver moves to a fresh port with the new secret; re-subscribe it there.
            with receiving(rotated["secret"]) as receiver:
                with session_factory() as session, session.begin():
                    row = session.get(WebhookSubscription, uuid.UUID(created["id"]))
                    assert row is not None
                    row.url = receiver.url
                await _parcel(api)
                sender = _sender(session_factory, resolver=resolver, allow=LOOPBACK_NETWORKS)
                async with httpx.AsyncClient() as client:
                    assert await sender.send_due(client) == 1
                return created, shown.json(), rotated["secret"], receiver.accepted()

    created, shown, new_secret, accepted = asyncio.run(story())
    assert created["secret"] == SECRET and "secret" not in shown
    assert new_secret.startswith("whsec_") and new_secret != SECRET
    assert len(accepted) == 1  # signed with the rotated secret (the receiver checks it itself)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            dumped = " ".join(
                str(v)
                for row in conn.execute(sa.text("SELECT * FROM webhook_subscriptions"))
                for v in row
            )
    finally:
        engine.dispose()
    assert SECRET not in dumped and new_secret not in dumped and "v1:" in dumped


def test_a_sealed_secret_opens_only_with_its_key_and_on_its_own_row() -> None:
    box = SecretBox(key=derive_key(MASTER_SECRET))
    a, b = uuid.uuid4(), uuid.uuid4()
    sealed = box.seal(SECRET, subscription_id=a)
    assert box.open(sealed, subscription_id=a) == SECRET
    assert box.seal(SECRET, subscription_id=a) != sealed  # a fresh nonce every time
    with pytest.raises(WebhookSecretError, match="copied from another subscription"):
        box.open(sealed, subscription_id=b)
    with pytest.raises(WebhookSecretError, match="sealed under key"):
        SecretBox(key=derive_key("another-key-" + MASTER_SECRET)).open(sealed, subscription_id=a)
    tampered = sealed[:-2] + ("AA" if sealed[-2:] != "AA" else "BB")
    with pytest.raises(WebhookSecretError, match="does not open"):
        box.open(tampered, subscription_id=a)


def test_migration_0009_seals_the_plaintext_secrets_older_hubs_stored(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0007")
            old = sa.table(  # the table as 0007 left it, secret in clear
                "webhook_subscriptions",
                sa.column("id", sa.Uuid()),
                sa.column("url", sa.String()),
                sa.column("secret", sa.String()),
                sa.column("events", sa.JSON()),
                sa.column("active", sa.Boolean()),
                sa.column("created_at", UtcDateTime()),
            )
            conn.execute(
                old.insert().values(
                    id=HOOK_ID,
                    url="https://hooks.example/x",
                    secret=SECRET,
                    events=["*"],
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
        with pytest.raises(RuntimeError, match="1 webhook subscriptions hold plaintext secrets"):
            migrate(database_url)  # no key: refused, and nothing changed
        box = secret_box(hub_settings(database_url=database_url))
        migrate(database_url, webhook_secret_box=box)
        with make_session_factory(engine)() as session:
            row = session.get(WebhookSubscription, HOOK_ID)
            assert row is not None
            assert box.open(row.secret_sealed, subscription_id=HOOK_ID) == SECRET
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("webhook_subscriptions")}
        assert "secret" not in columns
    finally:
        engine.dispose()


HOOK_ID = uuid.UUID("4f9e3b1c-2d7a-4c55-9e61-0b8a7f3d2c10")
