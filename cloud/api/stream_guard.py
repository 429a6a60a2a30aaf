"""Keeps an open ``/stream`` honest about its credential: a stream outlives the request that
authenticated it, so a key or token revoked or expired meanwhile must end it, not feed it for
hours.

Two checks, by cost. Before every event sent, without I/O: expiry, known from the token itself
(and the wait for the next event never outlasts it), and the revocations this process made
(``revoked_here``). Every ``recheck_s`` (``stream_recheck_s`` in the settings), on a worker
thread: the database, which holds the revocations of every hub process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from cloud.api import revocation
from cloud.api.revocation import Credential


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StreamGuard:
    """Why the stream must close now (``reason``), or None; see the module text."""

    credential: Credential | None
    session_factory: sessionmaker[Session]
    recheck_s: float
    revoked_here: set[tuple[str, str]] = field(default_factory=set)
    clock: Callable[[], datetime] = utcnow
    _next_check: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if self.recheck_s <= 0:
            raise ValueError(f"recheck_s must be positive, got {self.recheck_s}")
        self._next_check = asyncio.get_running_loop().time() + self.recheck_s

    def expired(self) -> str | None:
        """Cheap: no I/O. The reason if the credential has expired, or this process revoked it."""
        c = self.credential
        if c is None:
            return None
        if (c.kind, c.ident) in self.revoked_here:
            return f"the {c.label} was revoked"
        if c.expires_at is None or self.clock() < c.expires_at:
            return None
        return f"the {c.label} expired at {c.expires_at.isoformat()}; sign in again"

    def wait_s(self, *, at_most: float) -> float:
        """How long the stream may wait for its next event before a check is due."""
        loop = asyncio.get_running_loop()
        wait = min(at_most, self._next_check - loop.time())
        c = self.credential
        if c is not None and c.expires_at is not None:
            wait = min(wait, (c.expires_at - self.clock()).total_seconds())
        return max(wait, 0.0)

    async def reason(self) -> str | None:
        """Why the stream must close now: expired, or (when a re-check is due) revoked."""
        if (expired := self.expired()) is not None:
            return expired
        loop = asyncio.get_running_loop()
        c = self.credential
        if c is None or loop.time() < self._next_check:
            return None
        self._next_check = loop.time() + self.recheck_s
        when = await asyncio.to_thread(revocation.check, self.session_factory, c)
        if when is None:
            return None
        return f"the {c.label} was revoked at {when.isoformat()}"
