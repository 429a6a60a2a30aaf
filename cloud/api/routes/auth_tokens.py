"""``POST /auth/token``: the OAuth2 password flow, trading a user's name and password for a JWT.

The one route besides ``/healthz`` that needs no credentials: it is where credentials come from.
Sync on purpose: checking a scrypt hash takes a few hundred milliseconds of CPU, which FastAPI
then spends in its thread pool rather than on the event loop.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from cloud.api.deps import ContextDep
from cloud.api.problems import problem_responses

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenPublic(BaseModel):
    access_token: str = Field(description="send as 'Authorization: Bearer <access_token>'")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the OAuth2 token type, no secret)
    expires_in: int = Field(description="seconds until the token expires")


@router.post("/token", response_model=TokenPublic, responses=problem_responses(401, 422))
def issue_token(
    context: ContextDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenPublic:
    """A bearer token for a configured user (``users`` in the hub's settings)."""
    if context.tokens is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="no users are configured on this hub: sign-in is off, use an API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    issued = context.tokens.sign_in(username=form.username, password=form.password)
    if issued is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="incorrect user name or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return TokenPublic(access_token=issued.access_token, expires_in=issued.expires_in)
