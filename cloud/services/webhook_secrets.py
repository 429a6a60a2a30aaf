"""Webhook secrets sealed at rest with AES-256-GCM under a key that lives only in the settings.

The hub signs every delivery with the subscription's secret, so it must get the secret back:
a one-way hash (as for API keys and codes) cannot sign. Two ways keep a database dump from
yielding working secrets: derive each secret from a master key (HMAC of the subscription id,
nothing stored), or store it encrypted. We encrypt, because derivation cannot keep what exists:
clients may bring their own secret (``POST /webhooks`` takes one), and the rows written before
this change hold secrets receivers already check; a derived secret would silently replace both.

The key is ``webhook_secret_key`` from the settings, or, when that is unset, one derived from
``code_master_secret`` with HKDF-SHA256 under its own label (so the two uses never share a key).
Each sealed value is ``v1:<key id>:<base64url(nonce | ciphertext | tag)>`` with a fresh 96-bit
nonce, and the subscription id as associated data: a sealed secret copied onto another row does
not open. The key id (8 hex of SHA-256 of the key) makes "sealed under another key" a clear error
rather than a bad MAC.

``cryptography`` (pinned) because it is the maintained binding to OpenSSL's AEADs; the standard
library has no authenticated cipher.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cloud.services.errors import WebhookSecretError

VERSION = "v1"
NONCE_BYTES = 12
_LABEL = b"lastmile webhook secrets v1"


def derive_key(material: str) -> bytes:
    """A 256-bit AES key from a settings secret (HKDF-SHA256, a label of its own)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        material.encode()
    )


class SecretBox:
    """Seals and opens webhook secrets; holds the key, never writes it anywhere."""

    def __init__(self, *, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"an AES-256 key is 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def seal(self, secret: str, *, subscription_id: uuid.UUID) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), subscription_id.bytes)
        blob = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{VERSION}:{self.key_id}:{blob}"

    def open(self, sealed: str, *, subscription_id: uuid.UUID) -> str:
        """The secret of ``sealed``. Raises :class:`WebhookSecretError` if this key cannot."""
        version, _, rest = sealed.partition(":")
        key_id, _, blob = rest.partition(":")
        if version != VERSION or not blob:
            raise WebhookSecretError(f"subscription {subscription_id}: not a sealed secret")
        if key_id != self.key_id:
            raise WebhookSecretError(
                f"subscription {subscription_id}: sealed under key {key_id}, this hub has "
                f"{self.key_id} (was webhook_secret_key or code_master_secret changed?)"
            )
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], subscription_id.bytes)
        except (InvalidTag, ValueError):
            raise WebhookSecretError(
                f"subscription {subscription_id}: the sealed secret does not open (tampered "
                "with, or copied from another subscription)"
            ) from None
        return plain.decode()


def box_for(*, webhook_secret_key: str | None, code_master_secret: str) -> SecretBox:
    """The box of a hub's settings (see the module text for which key)."""
    return SecretBox(key=derive_key(webhook_secret_key or code_master_secret))
