"""OAuth2 bearer tokens: JWTs signed with HS256, issued to configured users, checked per request.

PyJWT (pinned) because it does one thing, JWS/JWT with a small API, and checks ``exp``, ``iat``,
``aud`` and ``iss`` itself; joserfc or Authlib would bring JWE/JWK machinery the hub does not use.
HS256 because the hub both issues and checks its tokens: no key pair to distribute.

A token names its user (``sub``); the user's role is read from the settings on every request, not
from the token, so removing a user or changing their role takes effect at once, not after the
token expires. The ``role`` claim is informative only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from cloud.api.passwords import DUMMY_HASH, verify_password
from cloud.errors import TokenError
from cloud.settings import HubSettings, Role, UserSettings

ALGORITHM = "HS256"
ISSUER = "lastmile-hub"
AUDIENCE = "lastmile-api"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class CheckedToken:
    user: str
    role: Role
    jti: str | None
    expires_at: datetime


class TokenAuthority:
    """Signs in users (:meth:`sign_in`) and checks their tokens (:meth:`role_of`)."""

    def __init__(
        self,
        *,
        secret: str,
        users: Mapping[str, UserSettings],
        ttl: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"ttl must be positive, got {ttl}")
        self._secret = secret
        self._users = dict(users)
        self._ttl = ttl
        self._clock = clock

    def sign_in(self, *, username: str, password: str) -> IssuedToken | None:
        """A token for a user whose password matches, else None (no hint which part was wrong)."""
        user = self._users.get(username)
        matches = verify_password(password, user.password_hash if user else DUMMY_HASH)
        if user is None or not matches:
            return None
        now = self._clock()
        claims = {
            "sub": username,
            "role": user.role.value,
            "iat": now,
            "exp": now + self._ttl,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        return IssuedToken(access_token=token, expires_in=int(self._ttl.total_seconds()))

    def role_of(self, token: str) -> tuple[str, Role]:
        """The user a token names and their current role. Raises TokenError with the reason."""
        checked = self.check(token)
        return checked.user, checked.role

    def check(self, token: str) -> CheckedToken:
        """:meth:`role_of`, with the token's ``jti`` and expiry (to revoke it, to end a stream
        when it expires). Raises TokenError with the reason."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError(
                "the token has expired; ask POST /api/v1/auth/token for a new one"
            ) from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not match this hub's key") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(f"the token is not signed with {ALGORITHM}") from None
        except jwt.MissingRequiredClaimError as err:
            raise TokenError(f"the token has no '{err.claim}' claim") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError):
            raise TokenError("the token was not issued by this hub for its API") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet (issued in the future)") from None
        except jwt.DecodeError:
            raise TokenError("the token is not a well-formed JWT") from None
        except jwt.InvalidTokenError as err:
            raise TokenError(f"the token is not valid: {err}") from None
        subject = str(claims["sub"])
        user = self._users.get(subject)
        if user is None:
            raise TokenError(f"the token's user {subject!r} no longer exists")
        jti = claims.get("jti")
        return CheckedToken(
            user=subject,
            role=user.role,
            jti=str(jti) if jti else None,
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )


def looks_like_jwt(credential: str) -> bool:
    """JWTs are three base64url parts joined by dots; API keys (token_urlsafe) have no dots."""
    return credential.count(".") == 2


def token_authority(settings: HubSettings) -> TokenAuthority | None:
    """The settings' authority, or None when no users are configured (API keys only)."""
    if not settings.users or settings.jwt_secret is None:
        return None
    return TokenAuthority(
        secret=settings.jwt_secret.get_secret_value(),
        users=settings.users,
        ttl=timedelta(seconds=settings.token_ttl_s),
    )
