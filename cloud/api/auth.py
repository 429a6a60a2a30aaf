"""Who may do what. A key's role decides; the matrix is data, so it can be read and tested at once.

=============  ======  ===========  ====
permission     viewer  integration  ops
=============  ======  ===========  ====
read fleet     yes     no           yes
read parcels   yes     yes          yes
create parcel  no      yes          yes
command vans   no      no           yes
operate parcel no      no           yes
operate locker no      no           yes
webhooks       no      no           yes
devices        no      no           yes
=============  ======  ===========  ====

``/track/{token}`` takes no key at all: the unguessable token is the credential.

A missing or unknown key is 401 (with ``WWW-Authenticate``); a known key without the permission 403.

``Authorization: Bearer`` carries either an API key or a JWT from ``POST /api/v1/auth/token``
(:mod:`cloud.api.tokens`); a JWT is told apart by its shape, and a refused one is 401 with the reason
(expired, bad signature, ...) and ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
)

from cloud.api import revocation
from cloud.api.auth_keys import key_digest
from cloud.api.context import HubContext, get_context
from cloud.api.revocation import Credential, token_ident
from cloud.api.tokens import looks_like_jwt
from cloud.errors import TokenError
from cloud.settings import Role


class Permission(StrEnum):
    READ_FLEET = "read fleet"
    READ_PARCELS = "read parcels"
    CREATE_PARCELS = "create parcels"
    COMMAND_VEHICLES = "command vehicles"
    OPERATE_PARCELS = "operate parcels"
    OPERATE_LOCKERS = "operate lockers"
    MANAGE_WEBHOOKS = "manage webhooks"
    MANAGE_DEVICES = "manage devices"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPS: frozenset(Permission),
    Role.VIEWER: frozenset({Permission.READ_FLEET, Permission.READ_PARCELS}),
    Role.INTEGRATION: frozenset({Permission.READ_PARCELS, Permission.CREATE_PARCELS}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    user: str | None = None  # who signed in, for a bearer token; None for an API key
    credential: Credential | None = None  # what it authenticated with (revocable)


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key itself")
# Documents the password flow in the OpenAPI (the explorer's "Authorize" can sign in); the token
# itself is read through ``_bearer``.
_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def current_principal(
    context: Annotated[HubContext, Depends(get_context)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
    _oauth2_token: Annotated[str | None, Depends(_oauth2)],
) -> Principal:
    """The caller, from ``Authorization: Bearer`` (API key or JWT) or ``X-API-Key``. Raises 401
    if unknown."""
    if bearer is not None and looks_like_jwt(bearer.credentials):
        principal = _token_principal(context, bearer.credentials)
    else:
        principal = _key_principal(context, bearer.credentials if bearer else header_key)
    await _refuse_revoked(context, principal)
    return principal


def _key_principal(context: HubContext, key: str | None) -> Principal:
    role = context.api_keys.role_of(key) if key else None
    if key is None or role is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a valid API key is required (Authorization: Bearer <key> or X-API-Key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(role=role, credential=Credential(kind="key", ident=key_digest(key)))


async def _refuse_revoked(context: HubContext, principal: Principal) -> None:
    """401 for a key or token in ``revoked_credentials`` (one primary-key lookup per request)."""
    credential = principal.credential
    if credential is None:
        return
    when = await asyncio.to_thread(revocation.check, context.session_factory, credential)
    if when is not None:
        error = "" if credential.kind == "key" else ' error="invalid_token"'
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"this {credential.label} was revoked at {when.isoformat()}",
            headers={"WWW-Authenticate": f"Bearer{error}"},
        )


def _token_principal(context: HubContext, token: str) -> Principal:
    if context.tokens is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="bearer tokens are not enabled on this hub (no users configured); use an API key",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    try:
        checked = context.tokens.check(token)
    except TokenError as err:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"invalid bearer token: {err.reason}",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    credential = Credential(
        kind="token",
        ident=token_ident(jti=checked.jti, token=token),
        expires_at=checked.expires_at,
    )
    return Principal(role=checked.role, user=checked.user, credential=credential)


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through only callers whose role holds ``permission`` (else 403)."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if permission not in PERMISSIONS[principal.role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"role {principal.role} may not {permission}",
            )
        return principal

    return check
