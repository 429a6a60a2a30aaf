"""``POST /auth/revoke``: withdraw an API key or a bearer token now (RFC 7009's revocation).

Any caller may revoke the credential it is using (signing out); only ``ops`` may revoke another
caller's. As RFC 7009 asks, a value that is no key or token of this hub is answered 200 with
``revoked: false`` and the reason, so the endpoint tells nobody which strings are valid keys
without already holding one. A revoked credential is refused from the next request on, and an
open ``/stream`` that uses it is closed at its next re-check (:mod:`cloud.api.stream_guard`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from cloud.api import revocation
from cloud.api.auth import Principal, current_principal
from cloud.api.auth_keys import key_digest
from cloud.api.context import HubContext
from cloud.api.deps import ContextDep, SessionDep
from cloud.api.problems import problem_responses
from cloud.api.revocation import Credential, token_ident
from cloud.api.tokens import looks_like_jwt
from cloud.errors import TokenError
from cloud.settings import Role

router = APIRouter(prefix="/auth", tags=["auth"], responses=problem_responses(401, 403, 422))


class RevokeRequest(BaseModel):
    token: str = Field(
        min_length=1, max_length=4096, description="the API key or bearer token to revoke"
    )


class RevokePublic(BaseModel):
    revoked: bool = Field(description="the credential is revoked now (or was already)")
    kind: Literal["key", "token"] | None
    detail: str


def _identify(context: HubContext, value: str) -> tuple[Credential | None, str]:
    """The credential ``value`` is, or None with why there is nothing to revoke."""
    if looks_like_jwt(value):
        if context.tokens is None:
            return None, "this hub issues no bearer tokens: nothing to revoke"
        try:
            checked = context.tokens.check(value)
        except TokenError as err:
            return None, f"not a live bearer token of this hub ({err.reason}): nothing to revoke"
        ident = token_ident(jti=checked.jti, token=value)
        return Credential(kind="token", ident=ident, expires_at=checked.expires_at), ""
    if context.api_keys.role_of(value) is None:
        return None, "not an API key of this hub: nothing to revoke"
    return Credential(kind="key", ident=key_digest(value)), ""


@router.post("/revoke", response_model=RevokePublic)
def revoke(
    body: RevokeRequest,
    context: ContextDep,
    session: SessionDep,
    caller: Annotated[Principal, Depends(current_principal)],
) -> RevokePublic:
    """Revoke ``token`` (an API key or a bearer token) for every hub process, from now on."""
    target, why_not = _identify(context, body.token)
    if target is None:
        return RevokePublic(revoked=False, kind=None, detail=why_not)
    own = caller.credential is not None and (caller.credential.kind, caller.credential.ident) == (
        target.kind,
        target.ident,
    )
    if not own and caller.role is not Role.OPS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=f"role {caller.role} may revoke only the credential it uses itself",
        )
    who = caller.user or f"{caller.role} key"
    newly = revocation.revoke(session, target, by=who, now=datetime.now(UTC))
    context.revoked_here.add((target.kind, target.ident))
    return RevokePublic(
        revoked=True,
        kind=target.kind,
        detail=f"{target.label} revoked" if newly else f"{target.label} was revoked already",
    )
