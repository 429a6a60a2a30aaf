"""Revoked API keys and bearer tokens: what the settings or a signature alone cannot take back.

An API key is configured by its digest, and a JWT is valid until it expires; neither can be
withdrawn at once without a list of the refused ones. ``revoked_credentials`` is that list, in the
database so every hub process sees it. Every request checks it (one primary-key lookup), and an
open ``/stream`` re-checks it every ``stream_recheck_s`` while it runs
(:mod:`cloud.api.stream_guard`), so a credential revoked during a stream stops it.

A key is named by its SHA-256 digest and a token by its ``jti``: neither is a secret, so the
table holds nothing that authenticates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from cloud.models import RevokedCredential

CredentialKind = Literal["key", "token"]


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request authenticated with: an API key (by digest) or a bearer token (by ``jti``)."""

    kind: CredentialKind
    ident: str
    expires_at: datetime | None = None  # tokens only; API keys do not expire

    @property
    def label(self) -> str:
        return "API key" if self.kind == "key" else "bearer token"


def token_ident(*, jti: str | None, token: str) -> str:
    """A token's name in the list: its ``jti``, or for one without, the digest of the token."""
    return jti if jti else hashlib.sha256(token.encode()).hexdigest()


def revoked_at(session: Session, credential: Credential) -> datetime | None:
    """When ``credential`` was revoked, or None if it was not."""
    row = session.get(RevokedCredential, (credential.kind, credential.ident))
    return None if row is None else row.revoked_at


def check(session_factory: sessionmaker[Session], credential: Credential) -> datetime | None:
    """:func:`revoked_at` in a session of its own (for callers on a worker thread)."""
    with session_factory() as session:
        return revoked_at(session, credential)


def revoke(session: Session, credential: Credential, *, by: str, now: datetime) -> bool:
    """Add ``credential`` to the list; commit. False if it was there already."""
    if session.get(RevokedCredential, (credential.kind, credential.ident)) is not None:
        return False
    session.add(
        RevokedCredential(
            kind=credential.kind,
            ident=credential.ident,
            revoked_at=now,
            expires_at=credential.expires_at,
            revoked_by=by[:100],
        )
    )
    session.commit()
    return True
