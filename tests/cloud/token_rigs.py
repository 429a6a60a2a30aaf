"""Users, passwords and hand-made bad tokens for the bearer-token tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from cloud.api.passwords import hash_password
from cloud.api.tokens import AUDIENCE, ISSUER, TokenAuthority
from cloud.settings import Role, UserSettings

JWT_SECRET = "t3st-Jwt-Signing-Key-4b8d1f7a9c2e6053-ab12"
PASSWORDS: dict[Role, str] = {
    Role.VIEWER: "viewer pass 51f0",
    Role.INTEGRATION: "integration pass 77c2",
    Role.OPS: "ops pass 9d4e",
}
FAST = {"n": 2**12}  # cheap hashes keep the tests quick; the cost is read from each hash


def users() -> dict[str, UserSettings]:
    return {
        f"{role.value}-user": UserSettings(
            role=role, password_hash=hash_password(PASSWORDS[role], **FAST)
        )
        for role in Role
    }


def expired_token(role: Role) -> str:
    """Signed with the right key, by an authority whose clock says two hours ago."""
    past = TokenAuthority(
        secret=JWT_SECRET,
        users=users(),
        ttl=timedelta(minutes=15),
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    )
    issued = past.sign_in(username=f"{role.value}-user", password=PASSWORDS[role])
    assert issued is not None
    return issued.access_token


def forged_token(role: Role, **claims: object) -> str:
    """Well-formed claims, signed with another key."""
    now = datetime.now(UTC)
    body = {
        "sub": f"{role.value}-user",
        "role": role.value,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": ISSUER,
        "aud": AUDIENCE,
        **claims,
    }
    return jwt.encode(body, "an-attackers-own-key-0123456789abcdef", algorithm="HS256")
