"""Password hashes for the users who sign in for bearer tokens: scrypt from the standard library.

scrypt rather than a fast hash: a leaked settings file must not give the passwords away to a GPU
overnight. The cost defaults to OWASP's recommendation (N = 2^17, r = 8, p = 1: 128 MiB and a few
hundred milliseconds per check), and is stored in each hash, so it can be raised later without
invalidating the hashes already issued. Format: ``scrypt$N$r$p$<salt>$<key>`` (base64url, no
padding). No third-party library: hashlib.scrypt is OpenSSL's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n, dklen=KEY_BYTES
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash of ``password`` for ``users.<name>.password_hash`` in the settings.

    Raises ValueError for an empty password or cost parameters scrypt refuses.
    """
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n=n, r=r, p=p)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (constant-time comparison); False if malformed."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = _scrypt(password, _unb64(salt), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Checked against when the user name is unknown, so that a wrong name costs as long as a wrong
# password and response times do not tell which names exist.
DUMMY_HASH = "scrypt$131072$8$1$GJONiISJ5wGCOJm_qelexA$ujXioXyDbPf2DuqltIF7AVZKG282zu24iddLmjWn1gI"
