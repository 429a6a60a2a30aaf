"""Locker codes of a parcel -- courier, pickup, return: issue, resend, revoke, expire.

The hub keeps each code only as the keyed hash the locker checks (``parcel_grants.code_hash``).
The code itself is *derived* from the master secret and the grant id (:func:`code_for_grant`), so
the hub can hand it out exactly where it must -- the API response that issued it, the webhook that
notifies the recipient -- without ever writing it down. Whoever holds the master secret could
already recover any code from its hash (10^8 HMACs), so deriving adds no exposure.

Grants travel to the locker through the transactional outbox. A revocation is a signed
``revoke_grant`` command (per-locker command key, expiry, nonce) through the same outbox.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ConflictError
from cloud.models import OutboundMessage, Parcel, ParcelGrant
from cloud.services.commands import send_command
from cloud.services.lifecycle import record
from protocol.codec import encode
from protocol.codes import derive_key, derive_locker_key, hash_code
from protocol.commands import MAX_LIFETIME
from protocol.messages import Grant, GrantKind
from protocol.topics import Channel, locker_topic

log = logging.getLogger(__name__)


class GrantState:
    ACTIVE = "active"
    USED = "used"
    REVOKED = "revoked"
    EXPIRED = "expired"
    JAMMED = "jammed"


@dataclass(frozen=True, slots=True)
class CodeSecrets:
    """What issuing codes needs from the settings."""

    master_secret: bytes
    digits: int


@dataclass(frozen=True, slots=True)
class IssuedCode:
    grant: ParcelGrant
    code: str


def code_for_grant(secrets: CodeSecrets, *, locker_id: str, grant_id: uuid.UUID) -> str:
    """The code of ``grant_id``: a PRF of the grant id under a key of its own label."""
    key = derive_key(secrets.master_secret, "hub-code-seed", locker_id)
    value = int.from_bytes(hmac.new(key, grant_id.bytes, hashlib.sha256).digest()[:8], "big")
    return f"{value % 10**secrets.digits:0{secrets.digits}d}"


def active_grants(session: Session, parcel: Parcel, kind: str | None = None) -> list[ParcelGrant]:
    stmt = select(ParcelGrant).where(
        ParcelGrant.parcel_id == parcel.id, ParcelGrant.state == GrantState.ACTIVE
    )
    if kind is not None:
        stmt = stmt.where(ParcelGrant.kind == kind)
    return list(session.scalars(stmt.order_by(ParcelGrant.issued_at)))


def issue(
    session: Session,
    parcel: Parcel,
    *,
    kind: GrantKind,
    compartment: int,
    secrets: CodeSecrets,
    validity: timedelta,
    now: datetime,
    source: str,
    notify: bool,
) -> IssuedCode:
    """A new grant for ``parcel``'s locker, queued for the locker; history line ``code_issued``.

    ``notify`` puts the code into that line's webhook (the recipient's notification channel).
    """
    if parcel.locker_id is None:
        raise ConflictError(f"parcel {parcel.id} goes to an address, not a locker: no codes")
    grant_id = uuid.uuid4()
    code = code_for_grant(secrets, locker_id=parcel.locker_id, grant_id=grant_id)
    code_hash = hash_code(derive_locker_key(secrets.master_secret, parcel.locker_id), code)
    row = ParcelGrant(
        grant_id=grant_id,
        parcel_id=parcel.id,
        kind=kind,
        locker_id=parcel.locker_id,
        compartment=compartment,
        code_hash=code_hash,
        issued_at=now,
        valid_until=now + validity,
        state=GrantState.ACTIVE,
        ended_at=None,
    )
    session.add(row)
    message = Grant(
        locker_id=parcel.locker_id,
        grant_id=grant_id,
        compartment=compartment,
        code_hash=code_hash,
        kind=kind,
        valid_from=now,
        valid_until=row.valid_until,
        single_use=True,
    )
    session.add(
        OutboundMessage(
            topic=locker_topic(parcel.locker_id, Channel.GRANTS),
            payload=encode(message),
            qos=1,
            retain=False,
            created_at=now,
            sent_at=None,
        )
    )
    record(
        session,
        parcel,
        kind=f"{kind}_code_issued",
        at=now,
        source=source,
        detail={
            "grant_id": str(grant_id),
            "compartment": compartment,
            "valid_until": row.valid_until.isoformat(),
        },
        code_grant_id=grant_id if notify else None,
    )
    return IssuedCode(grant=row, code=code)


def end(
    session: Session,
    parcel: Parcel,
    grant: ParcelGrant,
    *,
    state: str,
    now: datetime,
    source: str,
    secrets: CodeSecrets,
    reason: str = "",
) -> None:
    """End an active grant (revoked, expired, jammed); a revoked one is withdrawn on the locker."""
    grant.state = state
    grant.ended_at = now
    if state == GrantState.REVOKED:
        send_command(
            session,
            locker_id=grant.locker_id,
            name="revoke_grant",
            args={"grant_id": str(grant.grant_id)},
            master_secret=secrets.master_secret,
            now=now,
            ttl=MAX_LIFETIME,
        )
    record(
        session,
        parcel,
        kind=f"code_{state}",
        at=now,
        source=source,
        reason=reason,
        detail={"grant_id": str(grant.grant_id), "kind": grant.kind},
    )
