"""Signed remote commands from the hub to a device, e.g. ``open_compartment``.

A :class:`Command` carries an HMAC-SHA256 ``signature`` under the device's command key
(:func:`derive_command_key`, its own label, so a leaked code or courier key signs nothing) over a
canonical serialisation of every other field. :func:`verify_command` checks, in this order, that
the command is for this device, that the signature holds, that it is inside its validity window and
that its nonce is new, and raises one precise :class:`CommandError` subclass otherwise. The nonce
is recorded only after everything else passed, so forged traffic cannot fill the nonce store.

Canonical form (what a hub in another language must reproduce): the JSON object of all fields but
``signature``, keys sorted, no whitespace, UTF-8; datetimes as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``;
UUIDs in lowercase hyphenated form; lists (a route's stops) in order, absent optional fields as
``null``. Routes (:mod:`protocol.routes`) reuse :func:`signature_of` and :func:`check_signed`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol
from uuid import UUID, uuid4

from pydantic import AwareDatetime, Field, StringConstraints

from protocol.codes import derive_key
from protocol.errors import ProtocolError
from protocol.messages import DeviceId, Message
from protocol.topics import DeviceKind

MAX_LIFETIME = timedelta(hours=1)
"""Longest ``expires_at - issued_at`` a device accepts: nonces are kept until expiry, so bounded."""
MAX_CLOCK_SKEW = timedelta(seconds=60)
"""How far ``issued_at`` may lie in the device's future before the command is refused."""

CommandName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ArgValue = str | int | bool | float


_COMMAND_KEY_LABELS: dict[DeviceKind, str] = {
    DeviceKind.LOCKER: "device-command-key",
    DeviceKind.VEHICLE: "vehicle-command-key",
}
"""One label per kind of device, so a van and a locker that share an id never share a key. The
locker's label predates vehicles and stays as it was: existing locker keys remain valid."""


def derive_command_key(
    master_secret: bytes, device_id: str, *, kind: DeviceKind = DeviceKind.LOCKER
) -> bytes:
    """The key that signs commands for ``device_id`` of ``kind``."""
    return derive_key(master_secret, _COMMAND_KEY_LABELS[kind], device_id)


class Command(Message):
    """One remote command. Build and sign it with :func:`sign_command`."""

    type: Literal["command"] = "command"
    command_id: UUID
    device_id: DeviceId
    name: CommandName
    args: dict[str, ArgValue] = Field(default_factory=dict)
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    nonce: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


# -- errors ---------------------------------------------------------------------------------------


class CommandError(ProtocolError):
    """A command was refused. ``reason`` is the short word a device puts in its ack."""

    reason = "refused"

    def __init__(self, command_id: UUID, detail: str, *, what: str = "command") -> None:
        """``what`` names the kind of signed message (``route`` reuses these checks)."""
        super().__init__(f"{what} {command_id} refused ({self.reason}): {detail}")
        self.command_id = command_id
        self.detail = detail


class WrongDevice(CommandError):
    reason = "wrong_device"


class BadSignature(CommandError):
    reason = "bad_signature"


class CommandExpired(CommandError):
    reason = "expired"


class CommandNotYetValid(CommandError):
    """Issued too far in the future, or valid for longer than :data:`MAX_LIFETIME`."""

    reason = "not_yet_valid"


class CommandReplayed(CommandError):
    reason = "replayed"


# -- signing --------------------------------------------------------------------------------------


class NonceStore(Protocol):
    """Remembers nonces until their command expires."""

    def remember(self, nonce: str, *, expires_at: datetime) -> bool:
        """Record ``nonce``; False if it was already known (a replay)."""
        ...


class MemoryNonces:
    """A :class:`NonceStore` in memory, for the hub's tests and tools; a device persists its own."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}

    def remember(self, nonce: str, *, expires_at: datetime) -> bool:
        if nonce in self._seen:
            return False
        self._seen[nonce] = expires_at
        return True


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # a route's stops
        return [_canonical_value(v) for v in value]
    return value


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The bytes that are signed: every field but ``signature``, in canonical JSON."""
    body = {k: _canonical_value(v) for k, v in fields.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature_of(key: bytes, fields: dict[str, Any]) -> str:
    """HMAC-SHA256 hex of :func:`canonical_bytes` of ``fields``: the one MAC of every signed
    message (commands, routes); each kind is kept apart by its own key label and ``type``."""
    return hmac.new(key, canonical_bytes(fields), hashlib.sha256).hexdigest()


def sign_command(
    *,
    key: bytes,
    device_id: str,
    name: str,
    args: dict[str, ArgValue] | None = None,
    issued_at: datetime,
    ttl: timedelta = timedelta(minutes=5),
    command_id: UUID | None = None,
    nonce: str | None = None,
) -> Command:
    """A signed command for ``device_id`` valid from ``issued_at`` for ``ttl``."""
    if len(key) < 16:
        raise ValueError("the command key must be at least 16 bytes")
    unsigned = Command(
        command_id=command_id or uuid4(),
        device_id=device_id,
        name=name,
        args=args or {},
        issued_at=issued_at,
        expires_at=issued_at + ttl,
        nonce=nonce or secrets.token_hex(16),
        signature="0" * 64,
    )
    fields = unsigned.model_dump()
    return unsigned.model_copy(update={"signature": signature_of(key, fields)})


class SignedMessage(Protocol):
    """What :func:`check_signed` reads of a signed message (a :class:`Command`, a route)."""

    @property
    def device_id(self) -> str: ...

    @property
    def issued_at(self) -> datetime: ...

    @property
    def expires_at(self) -> datetime: ...

    @property
    def signature(self) -> str: ...

    def model_dump(self) -> dict[str, Any]: ...


def check_signed(
    message: SignedMessage,
    *,
    ident: UUID,
    key: bytes,
    device_id: str,
    now: datetime,
    max_skew: timedelta,
    max_lifetime: timedelta,
    what: str = "command",
) -> None:
    """The checks every signed message passes, in this order: addressed to this device, signature
    (constant time), not issued in the future, valid no longer than ``max_lifetime``, not expired.

    Raises :class:`WrongDevice`, :class:`BadSignature`, :class:`CommandNotYetValid` or
    :class:`CommandExpired`, each carrying ``ident`` (the id the device's ack will name)."""
    if message.device_id != device_id:
        raise WrongDevice(
            ident, f"addressed to {message.device_id!r}, this is {device_id!r}", what=what
        )
    expected = signature_of(key, message.model_dump())
    if not hmac.compare_digest(expected, message.signature):
        raise BadSignature(ident, f"signature does not match the {what} key", what=what)
    if message.issued_at > now + max_skew:
        raise CommandNotYetValid(
            ident, f"issued at {_utc(message.issued_at)}, now {_utc(now)}", what=what
        )
    if message.expires_at - message.issued_at > max_lifetime:
        raise CommandNotYetValid(ident, f"valid for longer than {max_lifetime}", what=what)
    if message.expires_at <= now:
        raise CommandExpired(
            ident, f"expired at {_utc(message.expires_at)}, now {_utc(now)}", what=what
        )


def verify_command(
    command: Command,
    *,
    key: bytes,
    device_id: str,
    now: datetime,
    nonces: NonceStore,
    max_skew: timedelta = MAX_CLOCK_SKEW,
) -> Command:
    """Return ``command`` if this device may carry it out now; record its nonce.

    Raises :class:`WrongDevice`, :class:`BadSignature`, :class:`CommandNotYetValid`,
    :class:`CommandExpired` or :class:`CommandReplayed` (checked in that order).
    """
    check_signed(
        command,
        ident=command.command_id,
        key=key,
        device_id=device_id,
        now=now,
        max_skew=max_skew,
        max_lifetime=MAX_LIFETIME,
    )
    cid = command.command_id
    if not nonces.remember(command.nonce, expires_at=command.expires_at):
        raise CommandReplayed(cid, f"nonce {command.nonce} was used before")
    return command


def command_id_of(payload: bytes) -> UUID | None:
    """The ``command_id`` of a payload that is not a valid :class:`Command`, if it has a readable
    one, so that a device can still say which command it refused as malformed. Never raises."""
    return uuid_field_of(payload, "command_id")


def uuid_field_of(payload: bytes, name: str) -> UUID | None:
    """The UUID in top-level field ``name`` of a JSON object payload, if readable. Never raises."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    raw = body.get(name)
    if not isinstance(raw, str):
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None
