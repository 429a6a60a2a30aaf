"""Bearer tokens: signing in, what a token carries, every way one is refused, and the settings
that refuse to start with a guessable key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.app import create_app
from cloud.api.passwords import hash_password, verify_password
from cloud.settings import Role, UserSettings
from tests.cloud.helpers import hub_settings
from tests.cloud.token_rigs import FAST, JWT_SECRET, PASSWORDS, forged_token, users

TOKEN = "/api/v1/auth/token"
LOCKERS = "/api/v1/lockers"
ROOT = Path(__file__).resolve().parents[2]


def _client(
    database_url: str, session_factory: sessionmaker[Session], **settings: object
) -> httpx.AsyncClient:
    app = create_app(
        settings=hub_settings(database_url=database_url, **settings),
        session_factory=session_factory,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def _sign_in(api: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return asyncio.run(api.post(TOKEN, data={"username": user, "password": password}))


@pytest.fixture
def api(session_factory: sessionmaker[Session], database_url: str) -> httpx.AsyncClient:
    return _client(
        database_url, session_factory, users=users(), jwt_secret=JWT_SECRET, token_ttl_s=600
    )


def test_a_user_signs_in_and_the_token_names_them_expires_and_works(api: httpx.AsyncClient) -> None:
    signed_in = _sign_in(api, "viewer-user", PASSWORDS[Role.VIEWER])
    assert signed_in.status_code == 200, signed_in.text
    body = signed_in.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 600)
    claims = jwt.decode(
        body["access_token"], JWT_SECRET, algorithms=["HS256"], audience="lastmile-api"
    )
    assert (claims["sub"], claims["role"], claims["iss"]) == (
        "viewer-user",
        "viewer",
        "lastmile-hub",
    )
    assert claims["exp"] - claims["iat"] == 600
    lockers = asyncio.run(
        api.get(LOCKERS, headers={"Authorization": f"Bearer {body['access_token']}"})
    )
    assert lockers.status_code == 200


def test_a_wrong_password_and_an_unknown_user_look_the_same(api: httpx.AsyncClient) -> None:
    wrong = _sign_in(api, "ops-user", "not the password")
    nobody = _sign_in(api, "nobody", PASSWORDS[Role.OPS])
    for r in (wrong, nobody):
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"] == "incorrect user name or password"
    missing = asyncio.run(api.post(TOKEN, data={"username": "ops-user"}))
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "password"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (forged_token(Role.OPS), "the token's signature does not match this hub's key"),
        ("a.b.c", "the token is not a well-formed JWT"),
        (
            jwt.encode({"sub": "ops-user"}, JWT_SECRET, algorithm="HS256"),
            "the token has no 'exp' claim",
        ),
        (
            jwt.encode(
                {"sub": "ops-user", "exp": 4102444800, "iat": 1, "iss": "lastmile-hub", "aud": "x"},
                JWT_SECRET,
                algorithm="HS256",
            ),
            "the token was not issued by this hub for its API",
        ),
        (
            # alg "none": unsigned claims must never pass for signed ones
            jwt.encode(
                {
                    "sub": "ops-user",
                    "exp": 4102444800,
                    "iat": 1,
                    "iss": "lastmile-hub",
                    "aud": "lastmile-api",
                },
                None,
                algorithm="none",
            ),
            "the token is not signed with HS256",
        ),
    ],
)
def test_a_refused_token_is_401_with_the_precise_reason(
    api: httpx.AsyncClient, token: str, reason: str
) -> None:
    r = asyncio.run(api.get(LOCKERS, headers={"Authorization": f"Bearer {token}"}))
    assert r.status_code == 401
    assert r.json()["detail"] == f"invalid bearer token: {reason}"
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_the_role_comes_from_the_settings_now_not_from_the_token(
    session_factory: sessionmaker[Session], database_url: str
) -> None:
    before = _client(database_url, session_factory, users=users(), jwt_secret=JWT_SECRET)
    token = _sign_in(before, "ops-user", PASSWORDS[Role.OPS]).json()["access_token"]
    demoted = {
        **users(),
        "ops-user": UserSettings(role=Role.INTEGRATION, password_hash=hash_password("x", **FAST)),
    }
    removed = {k: v for k, v in users().items() if k != "ops-user"}
    headers = {"Authorization": f"Bearer {token}"}
    now_integration = _client(database_url, session_factory, users=demoted, jwt_secret=JWT_SECRET)
    now_gone = _client(database_url, session_factory, users=removed, jwt_secret=JWT_SECRET)
    keys_only = _client(database_url, session_factory)

    assert asyncio.run(now_integration.get(LOCKERS, headers=headers)).status_code == 403
    gone = asyncio.run(now_gone.get(LOCKERS, headers=headers))
    assert (gone.status_code, gone.json()["detail"]) == (
        401,
        "invalid bearer token: the token's user 'ops-user' no longer exists",
    )
    off = asyncio.run(keys_only.get(LOCKERS, headers=headers))
    assert off.status_code == 401 and "bearer tokens are not enabled" in off.json()["detail"]
    no_sign_in = _sign_in(keys_only, "ops-user", PASSWORDS[Role.OPS])
    assert (
        no_sign_in.status_code == 401 and "no users are configured" in no_sign_in.json()["detail"]
    )


def test_settings_refuse_tokens_without_a_real_secret() -> None:
    with pytest.raises(ValidationError, match="users are configured but jwt_secret is not"):
        hub_settings(database_url="sqlite://", users=users())
    with pytest.raises(ValidationError, match="jwt_secret looks like a placeholder"):
        hub_settings(database_url="sqlite://", users=users(), jwt_secret="changeme-" * 5)
    with pytest.raises(ValidationError, match="at least 32 characters"):
        hub_settings(database_url="sqlite://", users=users(), jwt_secret="short")
    dev = hub_settings(
        database_url="sqlite://", users=users(), jwt_secret="changeme", environment="development"
    )
    assert dev.jwt_secret is not None
    with pytest.raises(ValidationError, match="password_hash"):
        UserSettings(role=Role.OPS, password_hash="plain-text-password")


def test_password_hashes_are_salted_scrypt_and_checked_in_constant_time() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second  # salted
    assert first.startswith("scrypt$131072$8$1$")  # OWASP's cost by default
    assert "correct horse" not in first
    assert verify_password("correct horse", first)
    assert not verify_password("correct hors", first)
    assert not verify_password("correct horse", "scrypt$garbage")
    assert not verify_password("correct horse", first.replace("scrypt", "bcrypt"))
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def _hash_password_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "hub", "hash-password"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )


def test_the_cli_hashes_a_password_from_stdin_that_the_hub_accepts() -> None:
    done = _hash_password_cli("a piped password\n")
    assert done.returncode == 0, done.stderr
    encoded = done.stdout.strip()
    assert verify_password("a piped password", encoded)
    assert UserSettings(role=Role.VIEWER, password_hash=encoded).role is Role.VIEWER
    empty = _hash_password_cli("\n")
    assert (empty.returncode, empty.stderr.strip()) == (2, "lastmile: the password is empty")
