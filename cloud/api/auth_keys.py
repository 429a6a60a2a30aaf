"""API keys: the hub knows only their SHA-256 digests, and compares them in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from cloud.settings import Role


def key_digest(key: str) -> str:
    """The SHA-256 hex digest under which a key is configured (``api_keys`` in the settings)."""
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Resolves a presented key to its role without revealing, through timing, which digest matched.

    API keys are long random strings, so a plain (unsalted, fast) hash is enough: there is no
    dictionary to attack, unlike passwords.
    """

    def __init__(self, digests: Mapping[str, Role]) -> None:
        self._digests = tuple((d.lower().encode(), Role(r)) for d, r in digests.items())

    def role_of(self, key: str) -> Role | None:
        presented = key_digest(key).encode()
        found: Role | None = None
        for digest, role in self._digests:  # no early exit: every digest is compared
            if hmac.compare_digest(presented, digest):
                found = role
        return found
